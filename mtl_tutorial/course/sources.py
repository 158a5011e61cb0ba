"""A lesson's exercises read from its one source, the jupytext `.py`: stubs, marked solutions, points, quiz.

A solution cell carries `tags=["solution"]` and `points=N` in its `# %%` line and ends with the check
call, `mtl.exercises.check_x(answer, ...)`; the code cell before it is the student's stub. The lesson says
where the solutions are with `build.SOLUTIONS_SENTENCE`, which each copy rewords.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

CHECK_CALL = re.compile(r"^mtl\.exercises\.(check_\w+)\((\w+)", re.MULTILINE)
HEADING = re.compile(r"\*\*Exercise (\d+): (.+?)\.?\*\*")


class LessonError(ValueError):
    """A lesson source whose exercise markers do not add up; the message names the file and the cell."""


@dataclass
class Exercise:
    """One exercise of a lesson: the check that grades it, the name the student defines, its points."""

    lesson: str
    number: int
    title: str
    check: str
    answer: str
    points: int
    stub: str  # the student's cell, as handed out
    solution: str  # the solution cell's code, without its check call

    @property
    def name(self) -> str:
        return f"exercise {self.number}: {self.title}"


@dataclass
class Lesson:
    name: str
    notebook: nbformat.NotebookNode
    exercises: list[Exercise]


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])


def is_quiz(cell) -> bool:
    return cell.cell_type == "code" and "quiz" in cell.metadata.get("tags", [])


def without_check_call(source: str) -> str:
    """The cell's code up to its `mtl.exercises.check_...` line."""
    return CHECK_CALL.split(source, maxsplit=1)[0].rstrip() + "\n"


def read_lesson(path: str | Path) -> Lesson:
    """The lesson at `path` (a jupytext .py or an .ipynb) and its marked exercises, in order."""
    import jupytext

    path = Path(path)
    notebook = jupytext.read(path)
    exercises, heading = [], None
    for index, cell in enumerate(notebook.cells):
        found = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        heading = found.group(2) if found else heading
        if not is_solution(cell):
            continue
        where = f"{path}, cell {index + 1}"
        call = CHECK_CALL.search(cell.source)
        if call is None:
            raise LessonError(
                f"{where}: a solution cell must end with its check, mtl.exercises.check_x(answer)"
            )
        points = cell.metadata.get("points")
        if not isinstance(points, int) or points < 0:
            raise LessonError(
                f'{where}: give the solution cell its points, e.g. `# %% tags=["solution"] '
                f"points=1` (got {points!r})"
            )
        stub = notebook.cells[index - 1] if index else None
        if stub is None or stub.cell_type != "code" or call.group(0) not in stub.source:
            raise LessonError(
                f"{where}: the cell before a solution must be its stub, calling {call.group(0)})"
            )
        exercises.append(
            Exercise(
                path.stem,
                len(exercises) + 1,
                heading or call.group(2),
                call.group(1),
                call.group(2),
                points,
                stub.source,
                without_check_call(cell.source),
            )
        )
    return Lesson(path.stem, notebook, exercises)


def distinctive_lines(exercise: Exercise) -> list[str]:
    """The lines of a solution that its stub does not have: what must never reach a student copy."""
    solution = exercise.solution
    tree = ast.parse(solution)
    body_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for statement in body:
                if not isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                    body_lines.add(ast.get_source_segment(solution, statement).splitlines()[0].strip())
    return sorted(line for line in body_lines if len(line) > 12 and line not in exercise.stub)

"""`mtl-tutorial course build`: student copies, instructor copies, an answer key and an instructor's README.

Everything comes from the lessons' own sources; the student copy of a lesson is its notebook less the
solution cells, with the exercises' and the quiz's outputs cleared and the quiz's answers sealed.
"""

from __future__ import annotations

import ast
import base64
import copy
import inspect
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import nbformat

from ..lessons import LESSONS
from .notebook import USES_ANSWERS
from .sources import Lesson, is_quiz, is_solution, read_lesson

REPOSITORY = Path(__file__).resolve().parents[2]
LESSONS_DIR = REPOSITORY / "notebooks"
BENCHMARKS = {
    "cpu": REPOSITORY / "benchmarks" / "lessons-cpu.json",
    "gpu": REPOSITORY / "benchmarks" / "lessons-gpu-h200.json",
}
PASSED_MARK = "✅"
# the lessons say where the solutions are with this sentence; each copy says it as is true of that copy
SOLUTIONS_SENTENCE = re.compile(r"\s+".join("The hidden cell after each exercise holds a solution".split())
                                + r"[^.]*\.")
SOLUTIONS_SAID = {
    "student": "This copy has no solutions: hand it in, and your teacher grades it with these same checks.",
    "instructor": "The cell after each exercise holds a solution: it fills the function in and runs the "
    "same check.",
}


def lessons_in(folder: str | Path = LESSONS_DIR) -> list[Lesson]:
    """Every lesson of `folder` (its jupytext .py sources), in order; the paired .ipynb gives the outputs."""
    paths = sorted(Path(folder).glob("[0-9][0-9]_*.py"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no lesson sources (NN_name.py) here")
    lessons = []
    for path in paths:
        lesson = read_lesson(path)
        paired = path.with_suffix(".ipynb")
        if paired.exists():
            lesson.notebook = nbformat.read(paired, as_version=4)
        lessons.append(lesson)
    return lessons


def seal(source: str) -> str:
    """A quiz cell's code, compressed and base64-encoded: it runs as before, its answers are not in sight."""
    return base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")


def sealed_quiz_cell(cell) -> nbformat.NotebookNode:
    title = next(
        (line for line in cell.source.splitlines() if line.startswith("# @title")), "# @title The quiz"
    )
    title = title.split(" (")[0] + " (its answers are sealed: choose, then press Check)"
    sealed = copy.deepcopy(cell)
    sealed.source = f'{title}\nmtl.course.run_sealed(\n    "{seal(cell.source)}",\n    globals())'
    sealed.outputs, sealed.execution_count = [], None
    return sealed


def student_copy(lesson: Lesson) -> nbformat.NotebookNode:
    """The lesson without its solutions: no solution cell, no output of an exercise or of a cell that uses
    the answers (it showed the solved run), a sealed quiz, no ✅."""
    notebook = copy.deepcopy(lesson.notebook)
    notebook.metadata.pop("jupytext", None)
    stubs = {exercise.stub.strip() for exercise in lesson.exercises}
    cells = []
    for cell in notebook.cells:
        if is_solution(cell):
            continue
        if is_quiz(cell):
            cell = sealed_quiz_cell(cell)
        if cell.cell_type == "code" and (
            cell.source.strip() in stubs
            or USES_ANSWERS.match(cell.source.split("\n", 1)[0])
            or PASSED_MARK in json.dumps(cell.outputs)
        ):
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    notebook.cells = cells
    return reworded(notebook, SOLUTIONS_SAID["student"])


def instructor_copy(lesson: Lesson) -> nbformat.NotebookNode:
    """The lesson as it is, solutions shown (not folded)."""
    notebook = copy.deepcopy(lesson.notebook)
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        if is_solution(cell):
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
    return reworded(notebook, SOLUTIONS_SAID["instructor"])


def reworded(notebook: nbformat.NotebookNode, sentence: str) -> nbformat.NotebookNode:
    """The notebook with the lesson's sentence on where the solutions are replaced by `sentence`."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = SOLUTIONS_SENTENCE.sub(sentence, cell.source)
    return notebook


GENERIC_HELPERS = {"call", "where", "as_number", "as_tensor", "as_vector"}  # their words fit every exercise


def mistakes_named(check_name: str) -> list[str]:
    """The diagnoses a check can give: its `Wrong(...)` messages and its typical wrong answers (and those of
    the helpers it calls), with the values it fills in shown as `…`."""
    from .. import exercises

    check = inspect.unwrap(getattr(exercises, check_name))
    module = inspect.getmodule(check)
    found, seen, todo = [], set(), [check]
    while todo:
        tree = ast.parse(inspect.getsource(todo.pop(0)).lstrip())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Wrong" and node.args:
                found.append(words_of(node.args[0]))
            elif (
                isinstance(node, ast.Tuple)
                and len(node.elts) == 2
                and isinstance(node.elts[1], ast.JoinedStr | ast.Constant)
            ):
                found.append(words_of(node.elts[1]))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in seen:
                seen.add(node.func.id)
                helper = getattr(module, node.func.id, None)
                if (
                    inspect.isfunction(helper)
                    and helper.__module__ == module.__name__
                    and node.func.id not in GENERIC_HELPERS
                ):
                    todo.append(helper)
    return [text for text in dict.fromkeys(found) if len(text.strip("… ").split()) > 2]


def words_of(node: ast.expr) -> str:
    """The literal words of a string expression (constants, f-strings, `+` of both); values become `…`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(words_of(part) if isinstance(part, ast.Constant) else "…" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return words_of(node.left) + words_of(node.right)
    return "…"


def what_it_checks(check_name: str) -> str:
    from .. import exercises

    doc = inspect.getdoc(inspect.unwrap(getattr(exercises, check_name))) or ""
    return " ".join(doc.split())


def measured_minutes() -> dict[str, dict[str, float]]:
    """{scale: {lesson: minutes}} from the benchmarks' lesson timings, where they exist."""
    minutes = {}
    for scale, path in BENCHMARKS.items():
        if path.exists():
            seconds = json.loads(path.read_text(encoding="utf-8")).get("seconds", {})
            minutes[scale] = {lesson: value / 60 for lesson, value in seconds.items()}
    return minutes


def answer_key(lessons: list[Lesson]) -> str:
    lines = ["# Answer key", ""]
    for lesson in lessons:
        for exercise in lesson.exercises:
            lines += [
                f"## {lesson.name}, {exercise.name} ({points(exercise.points)})",
                "",
                f"Graded by `mtl.exercises.{exercise.check}({exercise.answer})`.",
                "",
                "```python",
                exercise.solution.strip(),
                "```",
                "",
            ]
    return "\n".join(lines)


def instructors_readme(lessons: list[Lesson]) -> str:
    minutes = measured_minutes()
    scales = list(minutes)
    lines = [
        "# Instructor's guide",
        "",
        "`student/` goes to the class (no solutions, quizzes sealed); `instructor/` holds the solutions; "
        "`answer_key.md` lists every solution; grade the collected notebooks with "
        "`mtl-tutorial course grade SUBMISSIONS... --key answer_key.json --out DIR`. Grading runs the "
        "students' code: run it where that is harmless, e.g. the container of TEACHING.md in the repository.",
        "",
        "## Schedule",
        "",
        "| lesson | exercises | points | "
        + " | ".join(f"minutes at the {s} scale" for s in scales)
        + " | takes from earlier lessons |",
        "|---|---|---|" + "---|" * len(scales) + "---|",
    ]
    for lesson in lessons:
        times = [f"{minutes[s][lesson.name]:.1f}" if lesson.name in minutes[s] else "–" for s in scales]
        lines.append(
            f"| {lesson.name} | {len(lesson.exercises)} | {sum(e.points for e in lesson.exercises)} | "
            + " | ".join(times)
            + f" | {earlier_work(lesson, lessons)} |"
        )
    totals = [f"{sum(minutes[s][lesson.name] for lesson in lessons):.1f}"
              if all(lesson.name in minutes[s] for lesson in lessons) else "–" for s in scales]
    lines += [
        f"| all | {sum(len(lesson.exercises) for lesson in lessons)} | "
        f"{sum(e.points for lesson in lessons for e in lesson.exercises)} | " + " | ".join(totals) + " | |",
        "",
        "Times: one run of the lesson top to bottom, from benchmarks/LESSONS.md (the machines are "
        "named there; – where none was measured); a class needs the reading and the exercises on top.",
        "",
        "## The exercises",
        "",
    ]
    for lesson in lessons:
        for exercise in lesson.exercises:
            lines += [
                f"### {lesson.name}, {exercise.name} ({points(exercise.points)})",
                "",
                f"`{exercise.check}` checks: {what_it_checks(exercise.check)}",
                "",
                "The mistakes it names (its own words; `…` is filled in with the student's values):",
                "",
            ]
            lines += [f"- {mistake}" for mistake in mistakes_named(exercise.check)] + [""]
    return "\n".join(lines)


def earlier_work(lesson: Lesson, lessons: list[Lesson]) -> str:
    """What `lesson` takes from the lessons before it: the run it reads back, the answers it grades again."""
    manifest, taken = {entry.stem: entry for entry in LESSONS}, []
    if lesson.name in manifest and (read := manifest[lesson.name].reads_run_of):
        first = read
        while manifest[first].reads_run_of:  # the lesson that trained the run first
            first = manifest[first].reads_run_of
        taken.append(f"the run of {read} (without it, it trains that run: about {first}'s time more)")
    checks = {exercise.check for exercise in lesson.exercises}
    again = [earlier.name for earlier in lessons[: lessons.index(lesson)]
             if any(exercise.check in checks for exercise in earlier.exercises)]
    if again:
        taken.append(f"the answers to {', '.join(again)}, pasted in and graded again")
    return "; ".join(taken) or "–"


def points(count: int) -> str:
    return f"{count} point" + ("" if count == 1 else "s")


KEY_FIELDS = {"lesson", "number", "title", "check", "answer", "points"}  # of each answer_key.json entry


def key_entries(lessons: list[Lesson]) -> list[dict]:
    return [
        {
            "lesson": e.lesson,
            "number": e.number,
            "title": e.title,
            "check": e.check,
            "answer": e.answer,
            "points": e.points,
        }
        for lesson in lessons
        for e in lesson.exercises
    ]


def build_wheel(into: Path, repository: Path = REPOSITORY) -> Path:
    """The package's wheel (`pip wheel --no-deps`), built from `repository` (default: this one)."""
    if not (repository / "pyproject.toml").exists():
        raise FileNotFoundError(
            f"{repository}: no pyproject.toml; build the archive from a repository checkout"
        )
    with tempfile.TemporaryDirectory() as scratch:
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                scratch,
                str(repository),
            ],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            raise RuntimeError(f"pip wheel failed for {repository}:\n{pip.stderr}")
        wheel = next(Path(scratch).glob("mtl_tutorial-*.whl"))
        return Path(shutil.copy2(wheel, into / wheel.name))


def build_course(out: str | Path, lessons_dir: str | Path = LESSONS_DIR, archive: bool = False) -> Path:
    """Write student/, instructor/, answer_key.md, answer_key.json and README.md into `out`
    (and student.zip, the student notebooks with the package's wheel, if `archive`)."""
    lessons = lessons_in(lessons_dir)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "answer_key.json").exists():
        raise FileExistsError(f"{out} is not empty and holds no earlier build (no answer_key.json): choose a "
                              "new or empty folder")
    for folder, copy_of in (("student", student_copy), ("instructor", instructor_copy)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for lesson in lessons:
            nbformat.write(copy_of(lesson), out / folder / f"{lesson.name}.ipynb")
    (out / "answer_key.md").write_text(answer_key(lessons), encoding="utf-8")
    (out / "answer_key.json").write_text(json.dumps(key_entries(lessons), indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(instructors_readme(lessons), encoding="utf-8")
    if archive:
        wheel = build_wheel(out)
        with zipfile.ZipFile(out / "student.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
            for lesson in lessons:
                bundle.write(out / "student" / f"{lesson.name}.ipynb", f"{lesson.name}.ipynb")
            bundle.write(wheel, wheel.name)
    return out


def exercises_of(key: str | Path | None = None) -> list[dict]:
    """The graded exercises: from an answer_key.json the build wrote, or from this repository's lessons."""
    if key is not None:
        try:
            entries = json.loads(Path(key).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{key} is not the answer_key.json of a course build: {error}") from None
        if not isinstance(entries, list) or not all(isinstance(entry, dict) and KEY_FIELDS <= entry.keys()
                                                    for entry in entries):
            raise ValueError(f"{key} is not the answer_key.json of a course build: it must list exercises "
                             f"with the fields {', '.join(sorted(KEY_FIELDS))}")
        return entries
    if not LESSONS_DIR.is_dir():  # an installed wheel: the lessons stayed in the repository
        raise FileNotFoundError(f"{LESSONS_DIR}: no lessons beside this installed package; grade with the "
                                "answer_key.json that `course build` wrote (--key class/answer_key.json)")
    return key_entries(lessons_in())

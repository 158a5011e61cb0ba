"""`mtl-tutorial course grade`: run each submitted notebook, then check its answers apart from it.

Each notebook runs top to bottom in a fresh kernel (at the CI scale unless MTL_TUTORIAL_SCALE says
otherwise), within a time limit per cell and per notebook: that tells the student whether it runs. The
points come from elsewhere: each exercise's answer is taken from the notebook's source and handed, with
the notebook's imports, to a separate process (`course.checker`) that imports the package's checks fresh
and reports their verdicts through a channel of its own. Nothing the notebook prints or redefines counts.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import csv
import html
import json
import os
import secrets
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..lessons import SCALE_VARIABLE
from .build import exercises_of

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Limits:
    cell_seconds: float = 120.0  # one cell of the notebook, and one exercise's check
    notebook_seconds: float = 1200.0


@dataclass
class Grade:
    student: str
    lesson: str
    exercise: str
    points: int
    out_of: int
    feedback: str


@dataclass
class Submission:
    path: Path
    student: str
    lesson: str
    notebook: nbformat.NotebookNode = field(repr=False)
    ran: str = ""


def submissions_in(paths: list[str | Path], lessons: set[str]) -> list[Submission]:
    """Each notebook named: a file, or every .ipynb below a folder. The student is the notebook's folder's
    name, the lesson the one whose name (01_data, ...) its file name holds."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.rglob("*.ipynb"))
        elif path.suffix == ".ipynb" and path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: not a notebook (.ipynb) nor a folder of notebooks")
    found = []
    for path in files:
        lesson = next((name for name in sorted(lessons) if name in path.name), None)
        if lesson is None:
            raise ValueError(
                f"{path}: its name names no lesson; name it after one of {', '.join(sorted(lessons))}"
            )
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception as error:
            raise ValueError(f"{path}: not a readable notebook ({error})") from None
        found.append(Submission(path, path.parent.name, lesson, notebook))
    return found


def run_notebook(notebook: nbformat.NotebookNode, limits: Limits) -> str:
    """Run a copy of the notebook in a fresh kernel, in a scratch folder; one line on how it went."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    copy = nbformat.from_dict(json.loads(json.dumps(notebook)))
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(
            copy,
            timeout=limits.cell_seconds,
            allow_errors=True,
            interrupt_on_timeout=True,
            kernel_name="python3",
            resources={"metadata": {"path": folder}},
            shutdown_kernel="immediate",  # stopped once the last cell ran: a graceful shutdown took 2 s more
        )
        try:
            running = client.async_execute(env=grading_environment())
            asyncio.run(asyncio.wait_for(running, limits.notebook_seconds))
        except asyncio.TimeoutError:
            return f"the notebook did not finish within {limits.notebook_seconds:.0f} s; graded as it stood"
        except DeadKernelError:
            return f"the notebook's kernel died at cell {dead_cell(copy)}; graded from the notebook's code"
        except Exception as error:
            return f"the notebook could not run ({type(error).__name__}: {error}); graded from its code"
    errors = [
        index
        for index, cell in enumerate(copy.cells, start=1)
        if cell.cell_type == "code"
        and any(output.get("output_type") == "error" for output in cell.get("outputs", []))
    ]
    took = f"{time.monotonic() - start:.0f} s"
    if errors:
        return f"the notebook ran in {took}, with an error in cell {', '.join(map(str, errors))}"
    return f"the notebook ran top to bottom in {took}"


def grading_environment() -> dict[str, str]:
    """The environment a notebook and its checks run in: this process's, at the CI scale unless it names a
    scale. Given to the kernel and the checker; this process's own environment is left as it was."""
    return {**os.environ, SCALE_VARIABLE: os.environ.get(SCALE_VARIABLE, "ci")}


def dead_cell(notebook: nbformat.NotebookNode) -> int:
    ran = [index for index, cell in enumerate(notebook.cells, start=1) if cell.get("execution_count")]
    return (ran[-1] + 1) if ran else 1


def code_of(cell) -> ast.Module | None:
    """A code cell's Python (IPython's magics and shell lines left out), or None if it does not parse."""
    lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def answer_program(notebook: nbformat.NotebookNode, answer: str) -> tuple[str, ast.stmt | None]:
    """The code that defines `answer` as the notebook would: every top-level import of the notebook, then
    the definitions of the last cell that defines it (its helpers with it). Nothing else of the notebook."""
    imports, defining = [], None
    for cell in notebook.cells:
        tree = code_of(cell) if cell.cell_type == "code" else None
        if tree is None:
            continue
        imports += [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        if any(binds(node, answer) for node in tree.body):
            defining = tree
    if defining is None:
        return "", None
    kept = [node for node in defining.body if isinstance(node, DEFINITIONS) or is_plain_assignment(node)]
    definition = [node for node in kept if binds(node, answer)][-1]
    program = "\n".join(dict.fromkeys(ast.unparse(node) for node in imports))
    return program + "\n\n" + "\n\n".join(ast.unparse(node) for node in kept) + "\n", definition


def binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, DEFINITIONS):
        return node.name == name
    return is_plain_assignment(node) and any(target.id == name for target in node.targets)


def is_plain_assignment(node: ast.stmt) -> bool:
    """`name = ...`: kept (`collate = my_collate`); attribute or item assignments are not."""
    return isinstance(node, ast.Assign) and all(isinstance(target, ast.Name) for target in node.targets)


def package_names(program: str) -> set[str]:
    """The names the program's imports bind to the package or to what it exports."""
    names = set()
    for node in ast.parse(program).body:
        if isinstance(node, ast.Import):
            names |= {
                alias.asname or alias.name for alias in node.names if alias.name.startswith("mtl_tutorial")
            }
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_tutorial"):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def only_the_package(definition: ast.stmt, program: str) -> str | None:
    """`mtl.pad_batch` when the answer is the package's own function, or a function that only returns a call
    of it; otherwise None."""
    names = package_names(program)
    if isinstance(definition, ast.Assign):
        value = definition.value
    elif isinstance(definition, ast.FunctionDef):
        body = definition.body[1:] if ast.get_docstring(definition) else definition.body
        if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
            return None
        value = body[0].value.func
    else:
        return None
    root = value
    while isinstance(root, ast.Attribute):
        root = root.value
    return ast.unparse(value) if isinstance(root, ast.Name) and root.id in names else None


def check_answers(jobs: list[dict], limits: Limits) -> dict[str, dict]:
    """The checker process's verdict on each job; one that runs too long or kills the process is scored 0
    with the reason, and a new process takes the rest."""
    verdicts, waiting = {}, list(jobs)
    while waiting:
        token = secrets.token_hex(16)
        read, write = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "mtl_tutorial.course.checker", str(write)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=[write],
            text=True,
            env=grading_environment(),
        )
        os.close(write)
        process.stdin.write(json.dumps({"token": token, "exercises": waiting}))
        process.stdin.close()
        lines, closed = read_verdicts(read, process, token, waiting, limits.cell_seconds + startup_seconds())
        os.close(read)
        for verdict in lines:
            verdicts[verdict["id"]] = verdict
        waiting = waiting[len(lines) :]
        if waiting:
            stuck = waiting.pop(0)
            if closed:  # the process is ending (it died), unless it closed the pipe and went on
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
            alive = process.poll() is None  # else the time ran out: it is stuck past the limit
            process.kill()
            process.wait()
            verdicts[stuck["id"]] = {
                "passed": False,
                "message": (
                    f"your answer was still running after {limits.cell_seconds:.0f} s (an endless loop?)"
                    if alive
                    else f"your answer stopped the checking process (exit status {process.returncode})"
                ),
            }
        else:  # every verdict is in: stop the process rather than wait out its teardown of torch (0.6 s)
            process.kill()
            process.wait()
    return verdicts


def startup_seconds() -> float:
    return 120.0  # importing torch and the checks, and loading the data, before the first verdict


def read_verdicts(pipe: int, process, token: str, jobs: list[dict], limit: float) -> tuple[list[dict], bool]:
    """The verdict lines carrying `token`, in order, until the process ends or one takes over `limit` s;
    and whether the pipe closed (the process ended) rather than the time ran out."""
    verdicts, buffer, deadline = [], b"", time.monotonic() + limit
    while len(verdicts) < len(jobs):
        ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return verdicts, False
        chunk = os.read(pipe, 65536)
        if not chunk:
            return verdicts, True
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                verdict = json.loads(line)
            except ValueError:
                continue
            expected = jobs[len(verdicts)]["id"] if len(verdicts) < len(jobs) else None
            if isinstance(verdict, dict) and verdict.get("token") == token and verdict.get("id") == expected:
                verdicts.append(verdict)
                deadline = time.monotonic() + limit - startup_seconds()
    return verdicts, False


def grade_submission(submission: Submission, exercises: list[dict], limits: Limits) -> list[Grade]:
    submission.ran = run_notebook(submission.notebook, limits)
    jobs, grades, package_answers = [], {}, {}
    for exercise in exercises:
        key = f"{exercise['lesson']}/{exercise['number']}"
        program, definition = answer_program(submission.notebook, exercise["answer"])
        if definition is None:
            grades[key] = f"your notebook does not define {exercise['answer']}"
            continue
        package_answers[key] = only_the_package(definition, program)
        jobs.append({"id": key, "check": exercise["check"], "answer": exercise["answer"], "program": program})
    verdicts = check_answers(jobs, limits) if jobs else {}
    results = []
    for exercise in exercises:
        key = f"{exercise['lesson']}/{exercise['number']}"
        verdict = verdicts.get(key, {"passed": False, "message": grades.get(key, "")})
        points, feedback = exercise["points"] if verdict["passed"] else 0, verdict["message"]
        if verdict["passed"] and package_answers.get(key):
            points = 0
            feedback = (
                f"your answer only calls the package's own {package_answers[key]}: the exercise is to "
                f"write it yourself (the check said: {feedback})"
            )
        results.append(
            Grade(
                submission.student,
                submission.lesson,
                f"exercise {exercise['number']}: {exercise['title']}",
                points,
                exercise["points"],
                feedback,
            )
        )
    return results


def feedback_page(student: str, submissions: list[Submission], grades: list[Grade]) -> str:
    total, out_of = sum(grade.points for grade in grades), sum(grade.out_of for grade in grades)
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>Feedback for {html.escape(student)}</title>",
        f"<h1>Feedback for {html.escape(student)}: {total} of {out_of} points</h1>",
    ]
    for submission in submissions:
        parts.append(f"<h2>{html.escape(submission.lesson)}</h2><p>{html.escape(submission.ran)}.</p><table>")
        parts.append("<tr><th>exercise</th><th>points</th><th>what the check said</th></tr>")
        for grade in (grade for grade in grades if grade.lesson == submission.lesson):
            parts.append(
                f"<tr><td>{html.escape(grade.exercise)}</td><td>{grade.points} / {grade.out_of}</td>"
                f"<td><pre>{html.escape(grade.feedback)}</pre></td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def grade(
    paths: list[str | Path], out: str | Path, key: str | Path | None = None, limits: Limits | None = None
) -> list[Grade]:
    """Grade every submission under `paths`; write grades.csv and feedback/STUDENT.html into `out`."""
    limits = limits or Limits()
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)  # an --out that cannot be written stops here, first
    exercises = exercises_of(key)
    submissions = submissions_in(paths, {exercise["lesson"] for exercise in exercises})
    grades = []
    for submission in submissions:
        graded = [e for e in exercises if e["lesson"] == submission.lesson]
        grades += grade_submission(submission, graded, limits)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "lesson", "exercise", "points", "out_of", "feedback"])
        writer.writerows([g.student, g.lesson, g.exercise, g.points, g.out_of, g.feedback] for g in grades)
    for student in dict.fromkeys(submission.student for submission in submissions):
        mine = [submission for submission in submissions if submission.student == student]
        page = feedback_page(student, mine, [grade for grade in grades if grade.student == student])
        (out / "feedback" / f"{student}.html").write_text(page, encoding="utf-8")
    return grades

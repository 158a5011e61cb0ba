"""Teaching a class: the build (student copies leak no solution), the grader (real checks, apart from the
submission) and the skipping of cells whose answers are missing. The slow cases grade one lesson,
03_sampling, which trains nothing, at the CI scale."""

import csv
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mtl_tutorial.course import build, grade, notebook, sources
from mtl_tutorial.exercises.verdicts import NOT_DONE
from mtl_tutorial.data import DATA_DIR_VARIABLE
from mtl_tutorial.lessons import LESSONS, RUNS_VARIABLE, SCALE_VARIABLE

REPO = Path(__file__).resolve().parents[1]
SAMPLING = "03_sampling"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build.build_course(tmp_path_factory.mktemp("course"))


def test_the_build_writes_both_copies_an_answer_key_and_the_instructors_readme(built):
    lessons = sorted(path.stem for path in (REPO / "notebooks").glob("*.py"))
    for folder in ("student", "instructor"):
        assert sorted(path.stem for path in (built / folder).glob("*.ipynb")) == lessons
    key = json.loads((built / "answer_key.json").read_text())
    assert {entry["check"] for entry in key} >= {"check_collate", "check_temperature", "check_train_step"}
    assert all(entry["points"] >= 1 for entry in key)
    readme = (built / "README.md").read_text()
    assert "| 03_sampling | 3 | 3 | 0.3 |" in readme  # 17 s at the CPU scale, from benchmarks/LESSONS.md
    assert "you raised the sizes to the power T = …" in readme  # a mistake check_temperature names
    assert f"| all | {len(key)} | {sum(entry['points'] for entry in key)} |" in readme
    assert "the run of 04_training (without it, it trains that run: about 00_overview's time more)" in readme
    assert "the answers to 01_data, 02_model, 03_sampling, 04_training, pasted in and graded again" in readme
    assert "course grade SUBMISSIONS... --key answer_key.json --out DIR" in readme
    assert "`Head(hidden_size, num_labels, dropout=0.1)`" in readme  # the name the student writes
    assert "pd.Series(train_labels).mode()[0]" in (built / "answer_key.md").read_text()


def test_no_solution_reaches_a_student_copy(built):
    answers_used = 0
    for lesson in build.lessons_in():
        student = (built / "student" / f"{lesson.name}.ipynb").read_text(encoding="utf-8")
        instructor = (built / "instructor" / f"{lesson.name}.ipynb").read_text(encoding="utf-8")
        assert "✅" not in student and "# Solution" not in student
        elsewhere = json.dumps([cell for cell in lesson.notebook.cells if not sources.is_solution(cell)])
        for exercise in lesson.exercises:
            lines = [
                line
                for line in sources.distinctive_lines(exercise)  # those the lesson does not show
                if json.dumps(line)[1:-1] not in elsewhere
            ]
            assert lines, exercise.name
            for line in lines:
                assert json.dumps(line)[1:-1] not in student, (lesson.name, line)
                assert json.dumps(line)[1:-1] in instructor
        assert "Question(" not in student  # the quiz is sealed: its answers are not in sight
        using = [cell for cell in nbformat.reads(student, as_version=4).cells
                 if cell.cell_type == "code" and cell.source.startswith("# uses your answers:")]
        assert all(not cell.outputs for cell in using), lesson.name  # they showed the solved run
        answers_used += len(using)
        if lesson.exercises:
            assert "Question(" in instructor and "mtl.course.run_sealed(" in student
    assert answers_used >= 2  # lesson 7's run of the student's pieces and its comparison with fit's


def test_each_copy_says_where_the_solutions_are_as_is_true_of_it(built):
    """The lessons say "The hidden cell after each exercise holds a solution"; a student copy has none."""
    for lesson in build.lessons_in():
        said = {
            folder: " ".join(
                cell.source
                for cell in nbformat.read(built / folder / f"{lesson.name}.ipynb", as_version=4).cells
                if cell.cell_type == "markdown"
            )
            for folder in ("student", "instructor")
        }
        if lesson.exercises:
            assert build.SOLUTIONS_SAID["student"] in said["student"], lesson.name
            assert build.SOLUTIONS_SAID["instructor"] in said["instructor"], lesson.name
        student = said["student"].replace(build.SOLUTIONS_SAID["student"], "")
        assert "solution" not in student.lower() and "hidden cell" not in student, lesson.name
        assert "hidden cell" not in said["instructor"], lesson.name


@pytest.mark.slow  # the command in a process of its own, pip building the wheel, then installing it
def test_the_archive_holds_every_student_notebook_and_a_wheel_of_the_whole_package(tmp_path):
    """`mtl-tutorial course build --archive`, as a teacher runs it; the wheel installs and imports."""
    out = tmp_path / "class"
    subprocess.run([sys.executable, "-m", "mtl_tutorial", "course", "build", "--out", str(out), "--archive"],
                   check=True, capture_output=True, text=True)
    with zipfile.ZipFile(out / "student.zip") as bundle:
        names = bundle.namelist()
        notebooks = sorted(name for name in names if name.endswith(".ipynb"))
        assert notebooks == [f"{each.stem}.ipynb" for each in LESSONS]
        for name in notebooks:
            assert bundle.read(name) == (out / "student" / name).read_bytes()
    [wheel] = [name for name in names if name.endswith(".whl")]
    assert wheel.startswith("mtl_tutorial-") and len(names) == len(LESSONS) + 1
    shipped = set(zipfile.ZipFile(out / wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "mtl_tutorial"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert {"mtl_tutorial/course/grade.py", "mtl_tutorial/plots/__init__.py"} <= set(tracked)
    assert sorted(set(tracked) - shipped) == []  # every module, subpackage and data file of the package
    installed = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(installed), str(out / wheel)], check=True, capture_output=True)
    imported = subprocess.run(
        [sys.executable, "-c", "import mtl_tutorial.course.grade, mtl_tutorial.exercises, mtl_tutorial.plots"
         "\nfrom mtl_tutorial.experiments import SHORT_EXPERIMENT\nprint(mtl_tutorial.__file__, "
         "SHORT_EXPERIMENT.exists())"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, check=True).stdout.split()
    assert Path(imported[0]).is_relative_to(installed) and imported[1] == "True"


def test_an_installed_package_without_the_lessons_asks_for_the_answer_key(built, monkeypatch, tmp_path):
    """A wheel has no notebooks/ beside it (the grading container of TEACHING.md): the grader says to use
    --key, and with the key the build wrote it finds every exercise."""
    monkeypatch.setattr(build, "LESSONS_DIR", tmp_path / "site-packages" / "notebooks")
    with pytest.raises(FileNotFoundError, match=r"no lessons beside this installed package.*--key"):
        build.exercises_of()
    assert build.exercises_of(built / "answer_key.json") == build.key_entries(build.lessons_in())


def test_a_sealed_quiz_runs_as_the_cell_did():
    source = (
        "Question = mtl.widgets.Question\nright = 'b'\n"
        "mtl.widgets.quiz([Question('Which?', ['a', 'b'], right, 'because')])"
    )
    import mtl_tutorial as mtl

    sealed = build.seal(source)
    assert "right" not in sealed and "because" not in sealed
    quiz = notebook.run_sealed(sealed, {"mtl": mtl})
    assert quiz.items[0].question.answer == "b"


def test_a_solution_cell_without_points_is_named():
    source = REPO / "notebooks" / f"{SAMPLING}.py"
    text = source.read_text().replace('tags=["solution"] points=1', 'tags=["solution"]', 1)
    broken = Path(pytest.importorskip("tempfile").mkdtemp()) / f"{SAMPLING}.py"
    broken.write_text(text)
    with pytest.raises(
        sources.LessonError, match=r"03_sampling.py, cell \d+: give the solution cell its points"
    ):
        sources.read_lesson(broken)


def cells(*sources_):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources_])


def test_the_answer_is_taken_from_the_last_cell_defining_it_with_the_notebooks_imports_only():
    submitted = cells(
        "import torch\nimport mtl_tutorial as mtl\nx = torch.zeros(3)",
        "def collate(examples, pad_id):\n    raise NotImplementedError\n\n\n"
        "mtl.exercises.check_collate(collate)",
        "from math import ceil\ndef helper():\n    return 1\n"
        "mtl.exercises.Verdict = None\ncollate = mtl.pad_batch\nprint('✅ passed')",
    )
    program, definition = grade.answer_program(submitted, "collate")
    assert "import torch" in program and "from math import ceil" in program and "def helper" in program
    assert "Verdict" not in program and "print" not in program and "torch.zeros" not in program
    assert grade.only_the_package(definition, program) == "mtl.pad_batch"
    wrapped = cells(
        "from mtl_tutorial import pad_batch\ndef collate(examples, pad_id):\n"
        "    '''Mine.'''\n    return pad_batch([e['input_ids'] for e in examples], pad_id)"
    )
    assert grade.only_the_package(*grade.answer_program(wrapped, "collate")[::-1]) == "pad_batch"
    own = cells(
        "import mtl_tutorial as mtl\ndef forward(self, ids):\n    out = self.encoder(ids)\n"
        "    return mtl.model.sequence_representation(out)"
    )
    assert grade.only_the_package(*grade.answer_program(own, "forward")[::-1]) is None


def test_a_cell_that_uses_an_undone_answer_is_skipped_with_the_reason(tmp_path):
    generated = cells(
        "import mtl_tutorial as mtl\nmtl.course.skip_cells_without_answers()",
        "def encode(text):\n    raise NotImplementedError('your code here')",
        "# uses your answers: encode, collate\nprint(encode('a'), collate)",
        "def encode(text):\n    return text.upper()\ncollate = len",
        "# uses your answers: encode, collate\nprint(encode('a'), collate('ab'))",
    )
    NotebookClient(generated, timeout=120, resources={"metadata": {"path": str(tmp_path)}},
                   shutdown_kernel="immediate").execute()
    skipped, ran = generated.cells[2].outputs[0].text, generated.cells[4].outputs[0].text
    assert skipped.startswith("Skipped: this cell uses your encode, collate, not written yet.")
    assert ran == "A 2\n"


TEMPERATURE_TIMES_T = (
    "    weights = {task: size ** temperature for task, size in sizes.items()}\n"
    "    return {task: weight / sum(weights.values()) for task, weight in weights.items()}\n"
)
FORGERY = (
    "import mtl_tutorial as mtl\n"
    "class Verdict:\n    passed = True\n"
    "mtl.exercises.Verdict = Verdict\n"
    "mtl.exercises.check_temperature = lambda function: print('✅ passed: Lesson 3, exercise 1')\n"
)


def answered(
    student_copy: nbformat.NotebookNode, answers: dict[str, str], after: str = ""
) -> nbformat.NotebookNode:
    """The student copy with the body of each function named in `answers` replaced by its text."""
    copy = nbformat.from_dict(json.loads(json.dumps(student_copy)))
    for cell in copy.cells:
        for name, body in answers.items():
            if cell.cell_type == "code" and f"def {name}(" in cell.source:
                head, stub = cell.source.split("    raise NotImplementedError", 1)
                cell.source = head + body + stub.split("\n", 1)[1]
                if after:
                    cell.source = after + cell.source
    return copy


@pytest.fixture(scope="module")
def graded(built, tmp_path_factory, tweeteval_dir):
    """Four students hand in lesson 3: the solutions; nothing; a typical mistake; a forgery, then a dead
    kernel. One grading run, at the CI scale, with a 20 s limit per cell (lesson 3's take 5). An answer
    that never returns has a test of its own, with a shorter limit."""
    folder = tmp_path_factory.mktemp("submissions")
    student = nbformat.read(built / "student" / f"{SAMPLING}.ipynb", as_version=4)
    forged = answered(student, {"temperature_probabilities": "    return {}\n"}, after=FORGERY)
    handed_in = {
        "teacher": nbformat.read(built / "instructor" / f"{SAMPLING}.ipynb", as_version=4),
        "untouched": student,
        "mistaken": answered(student, {"temperature_probabilities": TEMPERATURE_TIMES_T}),
        "forging": answered(forged, {"draw_schedule": "    import os\n    os._exit(3)\n"}),
    }
    for name, submitted in handed_in.items():
        (folder / name).mkdir()
        nbformat.write(submitted, folder / name / f"{SAMPLING}.ipynb")
    out = tmp_path_factory.mktemp("graded")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv(SCALE_VARIABLE, "ci")
        environment.setenv(DATA_DIR_VARIABLE, str(tweeteval_dir))
        grades = grade.grade([folder], out, built / "answer_key.json", grade.Limits(cell_seconds=20))
    by_student = {}
    for row in grades:
        by_student.setdefault(row.student, []).append(row)
    return out, by_student


@pytest.mark.slow
def test_the_solutions_get_full_marks_and_an_untouched_copy_runs_saying_not_done_yet(graded):
    out, grades = graded
    assert [row.points for row in grades["teacher"]] == [row.out_of for row in grades["teacher"]] == [1, 1, 1]
    assert all(
        row.points == 0 and row.feedback.startswith("not done yet: your function raised NotImplementedError")
        for row in grades["untouched"]
    )
    page = (out / "feedback" / "untouched.html").read_text()
    assert "the notebook ran top to bottom in" in page and "0 of 3 points" in page
    rows = list(csv.reader((out / "grades.csv").open(encoding="utf-8")))
    assert rows[0] == ["student", "lesson", "exercise", "points", "out_of", "feedback"]
    assert len(rows) == 1 + 4 * 3  # four students, three exercises each


@pytest.mark.slow
def test_a_typical_mistake_scores_zero_with_the_checks_own_words(graded):
    first, *_ = graded[1]["mistaken"]
    assert first.points == 0 and "you raised the sizes to the power T" in first.feedback


@pytest.mark.slow
def test_a_dead_kernel_and_a_forgery_each_score_zero_with_the_reason_and_grading_goes_on(graded):
    forging = graded[1]["forging"]
    assert forging[0].points == 0 and "✅" not in forging[0].feedback
    assert forging[1].points == 0 and "NotImplementedError" in forging[1].feedback
    assert forging[2].points == 0 and "stopped the checking process (exit status 3)" in forging[2].feedback
    page = (graded[0] / "feedback" / "forging.html").read_text()
    assert "kernel died" in page


@pytest.mark.slow  # a checking process stopped at the limit, and a second one for the answers after it
def test_an_answer_still_running_at_the_limit_scores_zero_and_the_answers_after_it_are_checked(
    built, tweeteval_dir, monkeypatch
):
    student = nbformat.read(built / "student" / f"{SAMPLING}.ipynb", as_version=4)
    looping = answered(student, {"temperature_probabilities": TEMPERATURE_TIMES_T,
                                 "draws_per_epoch": "    while True:\n        pass\n"})
    monkeypatch.setattr(grade, "run_notebook", lambda notebook, limits: "not run: the checks alone")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tweeteval_dir))
    exercises = [each for each in grade.exercises_of(built / "answer_key.json") if each["lesson"] == SAMPLING]
    submission = grade.Submission(Path("looping") / f"{SAMPLING}.ipynb", "looping", SAMPLING, looping)
    mistaken, stuck, after = grade.grade_submission(submission, exercises, grade.Limits(cell_seconds=3))
    assert mistaken.points == 0 and "you raised the sizes to the power T" in mistaken.feedback
    assert stuck.points == 0 and "your answer was still running after 3 s" in stuck.feedback
    assert after.points == 0 and "NotImplementedError" in after.feedback  # checked by a fresh process


def test_a_notebook_is_graded_at_the_ci_scale_and_the_callers_environment_is_left_alone(monkeypatch):
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)  # a teacher grading from a notebook of their own
    at_the_ci_scale = cells(f"import os\nassert os.environ[{SCALE_VARIABLE!r}] == 'ci'")
    ran = grade.run_notebook(at_the_ci_scale, grade.Limits())
    assert ran.startswith("the notebook ran top to bottom"), ran
    assert SCALE_VARIABLE not in os.environ  # its own lessons keep the scale they had


def test_a_cell_still_running_at_the_limit_is_interrupted_and_named_and_the_notebook_goes_on():
    endless = cells("x = 1", "while True:\n    pass", "assert x == 1", "raise RuntimeError('the last cell')")
    ran = grade.run_notebook(endless, grade.Limits(cell_seconds=2))
    assert re.fullmatch(r"the notebook ran in \d+ s, with an error in cell 2, 4", ran), ran


@pytest.mark.slow  # a whole lesson at the CI scale: only a whole run shows that no later cell fails
@pytest.mark.parametrize("name", [pytest.param(each.stem, marks=pytest.mark.lesson(each.stem))
                                  for each in LESSONS])
def test_every_student_copy_runs_top_to_bottom_its_checks_saying_not_done_yet(
    name, built, tweeteval_dir, lesson_runs, tmp_path, monkeypatch
):
    """Run all of a student copy with its exercises left undone, as a student who only reads would: no cell
    fails, and each exercise's check says "not done yet". Its runs are trained in the session's runs folder
    (conftest.py), in lesson order (lessons 4 and 5 read lesson 0's and 4's runs); nbval's lessons read them
    back."""
    for variable, value in {SCALE_VARIABLE: "ci", DATA_DIR_VARIABLE: str(tweeteval_dir),
                            RUNS_VARIABLE: str(lesson_runs)}.items():
        monkeypatch.setenv(variable, value)
    lesson = sources.read_lesson(REPO / "notebooks" / f"{name}.py")
    student = nbformat.read(built / "student" / f"{name}.ipynb", as_version=4)
    client = NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}},
                            shutdown_kernel="immediate")  # as nbval stops its kernels: 2 s sooner
    client.comm_open_handlers = {}  # no front end for Output widgets: see benchmarks/lesson_times.py
    client.execute()
    failed = [(index, output.ename, output.evalue) for index, cell in enumerate(student.cells, 1)
              if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]
    assert failed == []
    stubs = {exercise.stub.strip() for exercise in lesson.exercises}
    said = [json.dumps(cell.outputs) for cell in student.cells if cell.source.strip() in stubs]
    assert len(said) == len(lesson.exercises)
    for outputs in said:
        assert f"{NOT_DONE}: " in outputs and "NotImplementedError" in outputs, outputs[:300]

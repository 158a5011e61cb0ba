"""The lesson manifest (`lessons.LESSONS`) and the scales (`lessons.SCALES`) against the notebooks on disk
and the README: adding a lesson is one manifest entry plus its notebook pair (and its README row)."""

import dataclasses
import re
from pathlib import Path

import jupytext
import pytest

from mtl_tutorial import exercises, lessons
from mtl_tutorial.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def source_of(lesson: lessons.Lesson) -> str:
    return (REPO / "notebooks" / f"{lesson.stem}.py").read_text(encoding="utf-8")


def test_the_manifest_lists_every_notebook_in_order():
    stems = [lesson.stem for lesson in lessons.LESSONS]
    assert stems == sorted(path.stem for path in (REPO / "notebooks").glob("*.py"))
    assert [lesson.number for lesson in lessons.LESSONS] == list(range(len(stems)))
    assert lessons.lesson("04_training").title == "Training: one loop for every task"
    with pytest.raises(KeyError, match="no lesson '09_nothing': the lessons are 00_overview, 01_data"):
        lessons.lesson("09_nothing")


@pytest.mark.parametrize("lesson", lessons.LESSONS, ids=lambda lesson: lesson.stem)
def test_a_lessons_entry_matches_its_notebook(lesson):
    notebook = jupytext.read(REPO / "notebooks" / f"{lesson.stem}.py")
    headings = [line[2:] for cell in notebook.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("# ")]
    assert headings[0] == (lesson.title if lesson.number == 0 else f"Lesson {lesson.number} — {lesson.title}")
    called = re.findall(r"exercises\.(check_\w+)\(", source_of(lesson))
    assert sorted(set(called)) == sorted(lesson.exercises), f"{lesson.stem} calls {sorted(set(called))}"
    for name in lesson.exercises:
        assert callable(getattr(exercises, name)), name
    for run in lesson.runs:
        assert f'"{run.split("/")[0]}"' in source_of(lesson), f"{lesson.stem} never opens {run}"
    if lesson.reads_run_of:
        earlier = lessons.lesson(lesson.reads_run_of)
        assert earlier.number < lesson.number and set(earlier.runs) & set(lesson.runs)


def test_the_readme_has_one_row_per_lesson_with_its_colab_badge():
    rows = re.findall(r"^\| `(\d\d_\w+)` \|.*$", README, flags=re.MULTILINE)
    assert rows == [lesson.stem for lesson in lessons.LESSONS]
    for lesson, row in zip(lessons.LESSONS, re.findall(r"^\| `\d\d_\w+` \|.*$", README, flags=re.MULTILINE)):
        assert lessons.colab_url(lesson.stem) in row


def test_every_scale_is_a_row_of_the_readme_and_a_valid_config(monkeypatch):
    monkeypatch.delenv("MTL_TUTORIAL_ENCODER", raising=False)
    assert sorted(re.findall(r"^\| `([a-z]+)` \| ", README, flags=re.MULTILINE)) == sorted(lessons.SCALES)
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    for name, scale in lessons.SCALES.items():
        assert set(scale.settings) <= fields, name
        config = lessons.lesson_config(scale=name)
        assert {setting: getattr(config, setting) for setting in scale.settings} == scale.settings
        described = lessons.describe_scale(config, name)
        assert described.startswith(f"{scale.description}; tasks emotion, sentiment")
    with pytest.raises(ValueError, match="unknown scale 'laptop': choose one of ci, cpu, gpu"):
        lessons.lesson_config(scale="laptop")


def test_ci_runs_the_readmes_full_test_command_and_a_bare_pytest_the_fast_tier():
    commands = re.findall(r"^(.*python -m pytest tests.*)$", README, flags=re.MULTILINE)
    assert commands[0] == "python -m pytest tests"  # fast: pyproject's addopts leave out the slow marker
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    full = commands[1]
    assert full in ci.splitlines() and ' -m "" ' in full and "notebooks --nbval-lax" in full
    assert "addopts = \"-m 'not slow'\"" in (REPO / "pyproject.toml").read_text(encoding="utf-8")

"""Each lesson is a pair, NAME.py (jupytext percent source) and NAME.ipynb (with outputs): they must agree.

Edit the .py, then `jupytext --sync notebooks/NAME.py` (or re-execute it, see the README's "Lessons").
"""

from pathlib import Path

import jupytext
import pytest

from mtl_tutorial.lessons import LESSONS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def cells(path: Path) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in jupytext.read(path).cells]


def test_every_lesson_is_a_pair():
    stems = [lesson.stem for lesson in LESSONS]  # tests/test_manifest.py: the manifest lists every .py
    assert stems == sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("lesson", [lesson.stem for lesson in LESSONS])
def test_the_py_and_the_ipynb_have_the_same_cells(lesson):
    source, notebook = cells(NOTEBOOKS / f"{lesson}.py"), cells(NOTEBOOKS / f"{lesson}.ipynb")
    for number, (in_source, in_notebook) in enumerate(zip(source, notebook), start=1):
        assert in_source == in_notebook, \
            f"{lesson}: cell {number} differs; run `jupytext --sync notebooks/{lesson}.py`"
    assert len(source) == len(notebook), \
        f"{lesson}: {len(source)} cells in the .py, {len(notebook)} in the .ipynb"


@pytest.mark.parametrize("lesson", [lesson.stem for lesson in LESSONS])
def test_the_committed_outputs_come_from_one_run_at_the_cpu_lesson_scale(lesson):
    """What a student on a laptop sees: every code cell run once, top to bottom, at the CPU lesson scale
    (its settings cell printed so), not the CI scale's smoke test."""
    from mtl_tutorial.lessons import SCALES

    notebook = jupytext.read(NOTEBOOKS / f"{lesson}.ipynb")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.get("execution_count") for cell in code]
    assert None not in counts, f"{lesson}: cell {counts.index(None) + 1} was not run; re-execute the notebook"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), \
        f"{lesson}: its cells were not run once each, top to bottom ({counts})"
    settings = next(cell for cell in code if "describe_scale(" in cell.source)
    printed = "".join(output.get("text", "") for output in settings.get("outputs", []))
    assert printed.startswith(SCALES["cpu"].description), \
        f"{lesson}: its settings cell printed {printed.splitlines()[:1]}, not the CPU lesson scale"

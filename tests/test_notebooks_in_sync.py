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

"""The package's layout: one owner per concern, dependencies one way, a declared public API."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import mtl_tutorial

PACKAGE = Path(mtl_tutorial.__file__).parent
# Lower layers first; a module may import only modules of its own layer or below.
LAYERS = [{"checksums", "files", "dependencies", "hardware"},
          {"data", "tables", "sampling", "metrics", "combine"}, {"config", "batching"},
          {"model", "conflict", "sharing"}, {"runs"}, {"evaluate"}, {"train", "tracking"},
          {"lessons", "experiments", "exercises", "course", "export", "optimisation"}, {"plots"},
          {"widgets", "cli"}]
LAYER = {name: index for index, names in enumerate(LAYERS) for name in names}
RUN_FOLDER_NAMES = ('"config.json"', '"history.json"', '"history.csv"', '"results.json"', '"best"', '"last"',
                    '"training_state.pt"', '"dev_curves.png"', '"logs"')


def top_modules() -> set[str]:
    """The package's modules and sub-packages (a folder with an __init__.py is one entry, like exercises/)."""
    files = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    return files | {path.parent.name for path in PACKAGE.glob("*/__init__.py")}


def source_files(module: str) -> list[Path]:
    """A module's file, or every file of a sub-package."""
    folder = PACKAGE / module
    return sorted(folder.glob("*.py")) if folder.is_dir() else [PACKAGE / f"{module}.py"]


def package_imports(path: Path) -> set[str]:
    """The package's modules that `path` imports (`from .x` in a module, `from ..x` in a sub-package)."""
    level = 1 if path.parent == PACKAGE else 2
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == level:
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return found


def own_imports(folder: Path) -> dict[str, set[str]]:
    """For each module of a sub-package, the modules of the same sub-package it imports (`from .x`)."""
    return {path.stem: {node.module for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
            for path in folder.glob("*.py")}


def test_every_module_is_in_a_layer_and_imports_only_below_it():
    modules = top_modules()
    assert modules <= set(LAYER), f"put {modules - set(LAYER)} in a layer"
    for module in modules:
        for path in source_files(module):
            for imported in package_imports(path):
                assert LAYER[imported] <= LAYER[module], f"{path.name} imports {imported}, which is above it"


def test_the_exercises_package_has_its_own_layers_and_short_modules():
    """verdicts < fixtures < one module per lesson, which never import each other; none over ~400 lines."""
    folder = PACKAGE / "exercises"
    lessons = {path.stem for path in folder.glob("lesson*_*.py")}
    assert len(lessons) == 8, sorted(lessons)
    below = {"verdicts": set(), "fixtures": set(), **{lesson: {"verdicts", "fixtures"} for lesson in lessons}}
    for module, imported in own_imports(folder).items():
        if module != "__init__":
            assert imported <= below[module], f"exercises/{module} imports {imported - below[module]}"
    for path in folder.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 400, f"exercises/{path.name} is too long"


def test_only_runs_spells_the_run_folder_names():
    for path in PACKAGE.rglob("*.py"):
        if path.stem != "runs":
            text = path.read_text(encoding="utf-8")
            assert not [name for name in RUN_FOLDER_NAMES if name in text], path.name


def test_the_public_api_is_declared_and_every_module_is_described():
    for name in mtl_tutorial.__all__:
        assert getattr(mtl_tutorial, name) is not None
    modules = top_modules()
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    for module in modules:
        assert module in mtl_tutorial.__doc__, f"the package docstring does not describe {module}"
        assert f"`mtl_tutorial.{module}`" in readme, f"README's module table lacks {module}"
        importlib.import_module(f"mtl_tutorial.{module}")


def test_notebooks_use_one_import_style():
    for path in sorted((PACKAGE.parent / "notebooks").glob("*.py")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        imports = [line for line in lines if "mtl_tutorial" in line and line.startswith(("import", "from"))]
        assert imports == ["import mtl_tutorial as mtl"], f"{path.name}: {imports}"


def test_importing_the_package_leaves_the_slow_optional_imports_for_the_runs_that_need_them():
    """PEFT (LoRA runs; transformers' schedule module loads it too), torchjd (gradient aggregation) and the
    plots cost seconds in every kernel and script that imports the package; each loads where it is used."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mtl_tutorial\nprint(*sorted(name for name in sys.modules if "
         "name.split('.')[0] in ('peft', 'torchjd', 'matplotlib') or name == 'transformers.trainer_utils'))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []

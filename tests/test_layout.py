"""The package's layout: one owner per concern, dependencies one way, a declared public API."""

import ast
import importlib
from pathlib import Path

import mtl_tutorial

PACKAGE = Path(mtl_tutorial.__file__).parent
# Lower layers first; a module may import only modules of its own layer or below.
LAYERS = [{"checksums", "files", "dependencies", "hardware"}, {"data", "sampling", "metrics", "combine"},
          {"config", "batching"}, {"model", "conflict"}, {"runs"}, {"evaluate"}, {"train", "tracking"},
          {"lessons", "exercises", "course", "export"}, {"plots"}, {"widgets", "cli"}]
LAYER = {name: index for index, names in enumerate(LAYERS) for name in names}
RUN_FOLDER_NAMES = ('"config.json"', '"history.json"', '"history.csv"', '"results.json"', '"best"', '"last"',
                    '"training_state.pt"', '"dev_curves.png"', '"logs"')


def package_modules() -> set[str]:
    """The package's modules and subpackages (mtl_tutorial/course/ counts as one, `course`)."""
    return ({path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}) | {
        path.parent.name for path in PACKAGE.glob("*/__init__.py")}


def package_imports(module: str) -> set[str]:
    """The package's modules that `module` imports (for a subpackage: that its files import from above it)."""
    files, level = ([PACKAGE / f"{module}.py"], 1) if (PACKAGE / f"{module}.py").exists() else (
        sorted((PACKAGE / module).glob("*.py")), 2)
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == level:
                found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return found


def test_every_module_is_in_a_layer_and_imports_only_below_it():
    modules = package_modules()
    assert modules <= set(LAYER), f"put {modules - set(LAYER)} in a layer"
    for module in modules:
        for imported in package_imports(module):
            assert LAYER[imported] <= LAYER[module], f"{module} imports {imported}, which is above it"


def test_only_runs_spells_the_run_folder_names():
    for path in PACKAGE.glob("*.py"):
        if path.stem != "runs":
            text = path.read_text(encoding="utf-8")
            assert not [name for name in RUN_FOLDER_NAMES if name in text], path.name


def test_the_public_api_is_declared_and_every_module_is_described():
    for name in mtl_tutorial.__all__:
        assert getattr(mtl_tutorial, name) is not None
    modules = package_modules()
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

"""The package's layout: one owner per concern, dependencies one way, a declared public API."""

import ast
import importlib
from pathlib import Path

import mtl_tutorial

PACKAGE = Path(mtl_tutorial.__file__).parent
# Lower layers first; a module may import only modules of its own layer or below.
LAYERS = [{"checksums", "files"}, {"data", "sampling", "metrics", "combine"}, {"config", "batching"},
          {"model", "conflict", "sharing"}, {"runs"}, {"evaluate"}, {"train"},
          {"lessons", "exercises", "sharing_exercises"}, {"plots"},
          {"widgets", "cli"}]
LAYER = {name: index for index, names in enumerate(LAYERS) for name in names}
RUN_FOLDER_NAMES = ('"config.json"', '"history.json"', '"history.csv"', '"results.json"', '"best"', '"last"',
                    '"training_state.pt"', '"dev_curves.png"')


def package_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def test_every_module_is_in_a_layer_and_imports_only_below_it():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
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
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
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

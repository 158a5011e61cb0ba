"""The Colab cell (every notebook's first code cell), run as Colab runs it: in a fresh environment.

A fresh virtual environment sees the heavy dependencies (torch, transformers, ...) through a folder of
links, but not this package: the cell must install it, from a `git+file://` clone of this repository,
in a kernel where a stand-in `google.colab` module has been imported.
"""

import http.server
import json
import shutil
import subprocess
import sysconfig
import threading
import venv
from pathlib import Path

import jupytext
import nbclient
import nbformat
import pytest

from mtl_tutorial import lessons

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "notebooks").glob("*.py"))
FAKE_COLAB = {"google/colab/__init__.py": "from . import output\n",
              "google/colab/output.py": "enabled = False\n\ndef enable_custom_widget_manager():\n"
                                        "    global enabled\n    enabled = True\n"}


def colab_cell(path: Path) -> str:
    return next(cell.source for cell in jupytext.read(path).cells if cell.cell_type == "code")


def test_every_notebook_has_the_same_colab_cell_naming_the_packages_repository():
    cells = {path.stem: colab_cell(path) for path in LESSONS}
    assert len(set(cells.values())) == 1, "the Colab cells differ; copy the one in 00_overview.py"
    cell = cells["00_overview"]
    assert f'PACKAGE_URL = "{lessons.PACKAGE_URL}"' in cell
    assert "mtl-tutorial[notebooks] @ {url}" in cell and "enable_custom_widget_manager()" in cell
    assert '"GIT_TERMINAL_PROMPT": "0"' in cell and "--quiet" not in cell
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for lesson in cells:
        assert lessons.colab_url(lesson) in readme
    assert readme.count("colab.research.google.com/github/") == len(cells)
    assert f"`{lessons.PACKAGE_URL}`" in readme


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory):
    """A kernel in a fresh virtual environment without this package, with a stand-in google.colab."""
    root = tmp_path_factory.mktemp("colab")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dependencies = root / "dependencies"  # what this environment has installed, less this package
    dependencies.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("mtl_tutorial", "__editable__")) and entry.suffix != ".pth":
            (dependencies / entry.name).symlink_to(entry)
    (Path(site) / "dependencies.pth").write_text(f"{dependencies}\n")
    for name, text in FAKE_COLAB.items():
        (root / "fake" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "fake" / name).write_text(text)
    spec = root / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "colab",
        "language": "python", "env": {"PYTHONPATH": str(root / "fake"), "HF_HUB_OFFLINE": "1"}}))
    return root


def run_in_colab(root: Path, cells: list[str], monkeypatch,
                 folder: Path | None = None) -> nbformat.NotebookNode:
    """Run `cells` after `import google.colab` in the fresh environment's kernel, in `folder` (default
    `root`, which holds no wheel); errors stay in outputs."""
    monkeypatch.setenv("JUPYTER_PATH", str(root / "jupyter"))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)
                                               for source in ["import google.colab", *cells]])
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="colab", allow_errors=True,
                            resources={"metadata": {"path": str(folder or root)}},
                            shutdown_kernel="immediate").execute()
    return notebook


def pointed_at(cell: str, url: str) -> str:
    assert cell.count(lessons.PACKAGE_URL) == 1
    return cell.replace(lessons.PACKAGE_URL, url)


def snapshot_of_this_repository(folder: Path) -> Path:
    """A git repository holding this working tree as it is (committed or not), as a clone would."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, names):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=folder, check=True, capture_output=True)
    return folder


@pytest.mark.slow  # a fresh virtual environment and kernel, pip installing the package
def test_the_colab_cell_installs_the_package_and_its_widgets_work(colab_kernel, monkeypatch):
    """Run once: every notebook's cell is this very text (the test above), and each install takes seconds."""
    clone = snapshot_of_this_repository(colab_kernel / "clone")
    url = f"git+file://localhost{clone}"  # pip 23.x rejects git+file:/// (an empty host)
    notebook = run_in_colab(colab_kernel, [
        pointed_at(colab_cell(LESSONS[0]), url),
        ("import mtl_tutorial\nfrom mtl_tutorial import widgets\n"
         "print(mtl_tutorial.__file__, google.colab.output.enabled)\n"
         "widgets.temperature_panel({'emotion': 3257, 'sentiment': 45615})"),
    ], monkeypatch)
    install, check = notebook.cells[1:]
    assert [output.output_type for output in install.outputs] == ["stream"], install.outputs
    assert install.outputs[0].text == f"Installing mtl-tutorial[notebooks] from {url} ...\n"
    printed, shown = check.outputs
    where, enabled = printed.text.split()
    assert Path(where).is_relative_to(colab_kernel / "venv")  # installed there, not this checkout
    assert enabled == "True"
    assert "application/vnd.jupyter.widget-view+json" in shown.data


class AsksForAPassword(http.server.BaseHTTPRequestHandler):
    """What GitHub answers for a repository that does not exist (or is private): a password, please."""

    def do_GET(self):
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
        self.end_headers()

    def log_message(self, *arguments):
        pass


@pytest.mark.slow  # a fresh virtual environment and kernel, pip failing twice
def test_a_placeholder_or_unreachable_repository_stops_with_a_readable_line(colab_kernel, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AsksForAPassword)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cell = colab_cell(LESSONS[0])
        asking = f"git+http://127.0.0.1:{server.server_port}/someone/mtl-tutorial"
        missing = f"git+file://localhost{colab_kernel}/no-such-clone"
        cells = [cell, pointed_at(cell, asking), pointed_at(cell, missing)]
        notebook = run_in_colab(colab_kernel, cells, monkeypatch)
    finally:
        server.shutdown()
    placeholder, password, nothing_there = notebook.cells[1:]
    fix = ("put the course's mtl_tutorial-*.whl beside this notebook (Files panel) or in your mounted Drive, "
           "or set PACKAGE_URL to git+https://github.com/<owner>/mtl-tutorial; then run this cell again.")
    assert [output.output_type for output in placeholder.outputs] == ["error"]
    assert placeholder.outputs[0].traceback == [
        f"No mtl_tutorial wheel beside this notebook and no repository set: {fix}"]
    for cell, url, reason in [(password, asking, "terminal prompts disabled"),
                              (nothing_there, missing, "does not appear to be a git repository")]:
        *streams, error = cell.outputs
        expected = f"pip could not install mtl-tutorial from {url} (its error is above): {fix}"
        assert error.traceback == [expected]
        stderr = "".join(output.text for output in streams if output.name == "stderr")
        assert reason in stderr and "git clone" in stderr  # pip's own error, shown


def test_a_wheel_beside_the_notebook_is_installed_without_any_repository(colab_kernel, monkeypatch):
    """What a class without a public repository does: the course's archive, a student copy and the wheel."""
    from mtl_tutorial.course import build

    python = colab_kernel / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "mtl-tutorial"], capture_output=True)
    folder = colab_kernel / "class"
    folder.mkdir()
    wheel = build.build_wheel(folder, snapshot_of_this_repository(colab_kernel / "for-the-wheel"))
    where = "import mtl_tutorial\nprint(mtl_tutorial.__file__)"
    notebook = run_in_colab(colab_kernel, [colab_cell(LESSONS[0]), where], monkeypatch, folder)
    install, check = notebook.cells[1:]
    assert [output.text for output in install.outputs] == [
        f"Installing mtl-tutorial[notebooks] from file://{wheel} ...\n"]
    assert Path(check.outputs[0].text.strip()).is_relative_to(colab_kernel / "venv")

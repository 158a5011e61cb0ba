"""The lessons' interactive parts as a student meets them: JupyterLab in a real browser (headless Chromium).

A JupyterLab server on 127.0.0.1 (a free port, a token) serves a temporary copy of the lessons of the
manifest (`lessons.LESSONS`), made from their .py sources. Playwright drives Debian's Chromium: in each
lesson it runs only the settings cells and the cells a test needs, then moves, presses and types as a
student would: the temperature slider, a quiz, an exercise answered wrong then right, Train with good and
bad input, the labeller. Every lesson is run whole once by nbval, so no test here runs one whole. A
screenshot of each part goes to tests/screenshots/ (git-ignored). Select these tests with `-m browser`;
they are skipped only where Chromium is not installed.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest
from playwright.sync_api import sync_playwright

from mtl_tutorial.lessons import LESSONS

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "tests" / "screenshots"
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LAB_SETTINGS = {  # every cell in the page (no windowing, no space after the last); kernels start; no news
    "notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False,
                                   "autoStartDefaultKernel": True},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
CELL_SECONDS = 600  # one cell; at the CI scale the slowest (a training run) takes a minute or two
TRAINING_MS = 300_000  # a run started with the Train button
VIEWPORT = {"width": 1280, "height": 1400}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """A JupyterLab server over a folder of lessons, started and stopped by the `lab` fixture."""

    def __init__(self, root: Path, env: dict):
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.log = root.parent / "jupyterlab.log"
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={self.token}",
                   "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: open, run all, read the cells
                   f"--LabApp.user_settings_dir={root.parent / 'settings'}",
                   f"--LabApp.workspaces_dir={root.parent / 'workspaces'}"]
        with open(self.log, "w") as log:
            self.server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def wait_until_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                log = self.log.read_text()[-3000:]
                raise RuntimeError(f"JupyterLab exited with {self.server.returncode}:\n{log}")
            try:
                urllib.request.urlopen(self.url("api/status"), timeout=5)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer in {seconds} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Shut down every kernel and the server; kill the server if it does not go."""
        try:
            request = urllib.request.Request(self.url("api/shutdown"), method="POST")
            urllib.request.urlopen(request, timeout=30)
        except OSError:
            pass  # not up, or already gone: the server process is ended below
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tweeteval_dir):
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it, so in CI this test must run")
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("lab")
    root = folder / "notebooks"
    root.mkdir()
    for lesson in LESSONS:
        notebook = jupytext.read(REPO / "notebooks" / f"{lesson.stem}.py")
        notebook.metadata.pop("jupytext", None)
        nbformat.write(notebook, root / f"{lesson.stem}.ipynb")
    for name, values in LAB_SETTINGS.items():
        path = folder / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    home = {name: str(folder / name.lower()) for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                                                          "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}
    env = {**os.environ, **home, "MTL_TUTORIAL_SCALE": "ci", "MTL_TUTORIAL_DATA_DIR": str(tweeteval_dir),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    server = Lab(root, env)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(120_000)
            page.goto(lab.url("lab"))
            page.wait_for_function("() => window.jupyterapp")
            page.evaluate("async () => { await window.jupyterapp.restored; }")
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the lesson gets the whole width
            yield page
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------
# What a student does: open a lesson, run its settings and the cells of one part, look at it
# ---------------------------------------------------------------------------------------------

OPEN_LESSON = """async (path) => {
    if (window.lesson) { await window.lesson.sessionContext.shutdown(); window.lesson.dispose(); }
    window.lesson = await window.jupyterapp.commands.execute('docmanager:open', {path});
    await window.lesson.context.ready;
    await window.lesson.sessionContext.ready;
}"""
KERNEL_IDLE = "() => window.lesson.sessionContext.session?.kernel?.status === 'idle'"
CELLS = "() => window.lesson.content.widgets.map(cell => [cell.model.type, cell.model.sharedModel.source])"
RUN_CELL = """async (index) => {  // as Shift+Enter does, without moving on
    const notebook = window.lesson.content;
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    await window.jupyterapp.commands.execute('notebook:run-cell');
}"""
CELL_STATE = """(index) => {
    const cell = window.lesson.content.widgets[index];
    return {count: cell.model.executionCount,
            busy: window.lesson.sessionContext.session.kernel.status !== 'idle',
            errors: cell.model.outputs.toJSON().filter(output => output.output_type === 'error')
                                              .map(output => output.ename + ': ' + output.evalue)};
}"""
WIDGETS = """() => {
    const cells = window.lesson.content.widgets.filter(cell => cell.model.type === 'code');
    const shown = cells.filter(cell => cell.model.outputs.toJSON().some(
        output => output.data && output.data['application/vnd.jupyter.widget-view+json']));
    return {views: shown.length,
            rendered: shown.filter(cell => cell.outputArea.node.querySelector('.jupyter-widgets')).length,
            broken: window.lesson.content.node.innerText.includes('Error displaying widget')};
}"""


def open_lesson(page, lesson: str, *parts: str) -> int:
    """Open `lesson` in a new kernel, run its settings (the code cells above its first section) and then
    the cell holding each of `parts`, one by one; check that none failed and every widget rendered.
    Returns how many widgets are shown."""
    page.evaluate(OPEN_LESSON, f"{lesson}.ipynb")
    page.wait_for_function(KERNEL_IDLE)
    cells = page.evaluate(CELLS)
    first_section = next(index for index, (kind, source) in enumerate(cells)
                         if kind == "markdown" and "\n## " in f"\n{source}")
    settings = [index for index, (kind, _) in enumerate(cells[:first_section]) if kind == "code"]
    for index in settings + [cell_index(cells, part) for part in parts]:
        run_cell(page, lesson, index)
    shown = page.evaluate(WIDGETS)
    assert shown["rendered"] == shown["views"] and not shown["broken"], f"{lesson}: a widget failed: {shown}"
    assert "Traceback" not in visible_text(page, ".jp-Notebook"), f"{lesson}: a traceback is shown"
    return shown["views"]


def cell_index(cells: list, text: str) -> int:
    """The first code cell whose source holds `text`."""
    return next(index for index, (kind, source) in enumerate(cells) if kind == "code" and text in source)


def run_cell(page, lesson: str, index: int) -> None:
    """Run one cell, as Shift+Enter does, and wait until it has finished without an error."""
    before = page.evaluate(CELL_STATE, index)["count"]
    page.evaluate(RUN_CELL, index)
    started = time.monotonic()
    while True:
        state = page.evaluate(CELL_STATE, index)
        assert not state["errors"], f"{lesson}: cell {index} failed: {state['errors']}"
        if state["count"] not in (None, before) and not state["busy"]:
            return
        assert time.monotonic() - started < CELL_SECONDS, f"{lesson}: cell {index} still runs"
        time.sleep(0.5)


def visible_text(page, selector: str) -> str:
    """What a reader sees in `selector`: text inside collapsed or hidden parts does not count."""
    return page.locator(selector).first.inner_text()


def screenshot(cell, name: str) -> None:
    """A picture of one cell, its widget and output, in tests/screenshots/."""
    cell.screenshot(path=SCREENSHOTS / f"{name}.png")


def cell_with(page, text: str):
    """The code cell whose source contains `text` (its output area holds the widget it shows)."""
    return page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea-editor", has_text=text))


def control(panel, kind: str, label: str):
    """The widget of `kind` (slider, dropdown, text, ...) described as `label` in a panel."""
    return panel.locator(f".widget-{kind}", has=panel.page.locator("label.widget-label", has_text=label))


def figure_in(locator) -> str | None:
    """The data of the (last) figure drawn in `locator` (None before the first); it changes when redrawn."""
    return locator.evaluate("""node => {
        const images = node.querySelectorAll('.widget-output img');
        return images.length > 0 ? images[images.length - 1].src : null;
    }""")


PROBABILITIES = """node => {  // the table under the figure: a task's name heads its first row only
    let task = null;
    return [...node.querySelectorAll('.widget-output table tbody tr')].map(row => {
        const heads = [...row.querySelectorAll('th')].map(th => th.innerText);
        if (heads.length === 2) task = heads[0];
        return [task, heads[heads.length - 1], row.querySelector('td').innerText];
    });
}"""
FIGURE_CHANGED = """([node, before]) => {
    const images = node.querySelectorAll('.widget-output img');
    return images.length > 0 && images[images.length - 1].src !== before;
}"""
TABLE_SHOWN = """node => node.querySelectorAll('.widget-output table tbody tr').length > 0"""


# ---------------------------------------------------------------------------------------------
# The interactive parts, in lesson order (lesson 5's labeller reads the run that lesson 4's Train trains)
# ---------------------------------------------------------------------------------------------


def test_lesson_3_the_temperature_slider_redraws_the_figure_and_a_quiz_answers(page):
    shown = open_lesson(page, "03_sampling", "sizes = {", "widgets.temperature_panel(", "widgets.quiz(")
    assert shown == 2  # the temperature panel and the quiz
    panel = cell_with(page, "widgets.temperature_panel(")
    panel.scroll_into_view_if_needed()
    before = figure_in(panel)
    assert panel.locator(".widget-readout").inner_text() == "2.00"
    readout = panel.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("8")
    page.keyboard.press("Enter")
    page.wait_for_function(FIGURE_CHANGED, arg=[panel.element_handle(), before])
    assert panel.locator(".widget-readout").inner_text() == "8.00"
    screenshot(panel, "03_sampling-panel")
    # the quiz cell opens with its code folded away (its answers are in it); its widget still shows
    quiz = page.locator(".jp-CodeCell").filter(has=page.get_by_role("button", name="Check"))
    quiz.scroll_into_view_if_needed()
    assert quiz.locator(".jp-InputPlaceholder").is_visible()
    quiz.locator(".widget-radio-box input").first.check()
    quiz.get_by_role("button", name="Check").first.click()
    page.wait_for_function("node => /Right|Not quite/.test(node.innerText)", arg=quiz.element_handle())
    screenshot(quiz, "03_sampling-quiz")


WRONG_TEMPERATURE = """def temperature_probabilities(sizes, temperature):
    return {task: 1 / len(sizes) for task in sizes}


mtl.exercises.check_temperature(temperature_probabilities)"""
RIGHT_TEMPERATURE = """def temperature_probabilities(sizes, temperature):
    weights = {task: size ** (1 / temperature) for task, size in sizes.items()}
    return {task: weight / sum(weights.values()) for task, weight in weights.items()}


mtl.exercises.check_temperature(temperature_probabilities)"""


def test_lesson_3_an_exercise_answered_wrong_then_right(page):
    exercise = "raise NotImplementedError(\"weigh each size"
    open_lesson(page, "03_sampling", exercise)
    cells = page.evaluate(CELLS)
    index = cell_index(cells, exercise)
    cell = page.locator(".jp-CodeCell").nth([kind for kind, _ in cells[:index]].count("code"))
    verdict = cell.locator(".jp-OutputArea")
    assert "❌" in verdict.inner_text() and "NotImplementedError" in verdict.inner_text()  # not written yet
    for answer, expected in [(WRONG_TEMPERATURE, "❌"), (RIGHT_TEMPERATURE, "✅")]:
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(answer)  # as pasted: the editor adds no indentation of its own
        run_cell(page, "03_sampling", index)
        assert expected in verdict.inner_text(), verdict.inner_text()
        if answer == WRONG_TEMPERATURE:  # the check names the mistake
            assert "your probabilities are uniform" in verdict.inner_text()
    screenshot(cell, "03_sampling-exercise")


def test_lesson_4_train_draws_the_dev_curves_and_a_bad_encoder_is_one_readable_line(page, lab):
    open_lesson(page, "04_training", "widgets.training_panel(")
    panel = cell_with(page, "widgets.training_panel(")
    status = panel.locator("div.widget-label")
    assert status.inner_text().startswith("Choose, then press Train")
    panel.scroll_into_view_if_needed()
    before = figure_in(panel)

    # a small run, chosen in the widgets: 1 epoch, 100 tweets per task
    control(panel, "slider", "epochs").locator(".widget-readout").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    control(panel, "dropdown", "training tweets").locator("select").select_option("100 tweets per task")
    panel.get_by_role("button", name="Train").click()
    status.filter(has_text=re.compile("^(Done|Training stopped)")).wait_for(timeout=TRAINING_MS)
    assert status.inner_text().startswith("Done: runs/multitask holds the run"), status.inner_text()
    page.wait_for_function(FIGURE_CHANGED, arg=[panel.element_handle(), before])
    run = lab.root / "runs" / "multitask"
    config = json.loads((run / "config.json").read_text())
    assert (config["epochs"], config["max_train_examples"]) == (1, 100)
    results = (run / "results.json").read_bytes()

    # a mistyped encoder: one readable line, the traceback folded away, the run above kept
    encoder = control(panel, "text", "encoder").locator("input")
    encoder.fill("no-such-encoder")
    encoder.press("Enter")
    panel.get_by_role("button", name="Train").click()
    failed = status.filter(has_text="Training stopped")
    failed.wait_for(timeout=TRAINING_MS)
    line = failed.inner_text()
    kept = "(runs/multitask still holds the previous run)"
    assert line.startswith(f"Training stopped {kept}: cannot load encoder 'no-such-encoder'"), line
    assert "Traceback" not in visible_text(page, ".jp-Notebook")
    details = panel.locator(".widget-accordion")
    details.wait_for(state="visible")  # its own message, which the page may draw after the status line's
    assert details.inner_text().strip() == "details"  # folded
    screenshot(panel, "04_training-panel")
    assert (run / "results.json").read_bytes() == results
    assert json.loads((run / "config.json").read_text()) == config
    assert not [path.name for path in run.parent.iterdir() if path.name.startswith(".")]  # nothing half-done

    details.get_by_text("details").click()  # unfolded, they hold the whole traceback
    assert "Traceback (most recent call last)" in visible_text(page, ".jp-Notebook")


def test_lesson_5_the_labeller_shows_every_heads_probabilities(page):
    # lesson 4's run is read back (trained here if that test did not leave one)
    parts = ["folder = runs", "run = mtl.open_or_train(", "widgets.prediction_panel("]
    open_lesson(page, "05_evaluation", *parts)
    panel = cell_with(page, "widgets.prediction_panel(")
    panel.scroll_into_view_if_needed()
    before = figure_in(panel)
    tweet = "my flight got cancelled and nobody at the desk will help, furious"
    panel.locator("textarea").fill(tweet)
    panel.get_by_role("button", name="Label it").click()
    page.wait_for_function(FIGURE_CHANGED, arg=[panel.element_handle(), before])
    page.wait_for_function(TABLE_SHOWN, arg=panel.element_handle())  # a message after the figure's
    heads = {}
    for task, label, probability in panel.evaluate(PROBABILITIES):
        heads.setdefault(task, []).append((label, float(probability)))
    assert list(heads) == ["emotion", "sentiment"]
    assert [label for label, _ in heads["emotion"]] == ["anger", "joy", "optimism", "sadness"]
    assert [label for label, _ in heads["sentiment"]] == ["negative", "neutral", "positive"]
    for labels in heads.values():
        assert sum(probability for _, probability in labels) == pytest.approx(1.0, abs=0.01)
    screenshot(panel, "05_evaluation-panel")

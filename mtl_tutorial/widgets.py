"""Sliders and buttons over the package's functions, for the lesson notebooks (ipywidgets 8).

Each builder returns a small dataclass holding its widgets and the function its button runs: a
notebook shows it, a test sets the widgets' values and calls `.click()` on the button.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import traceback
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from . import plots
from .config import SHARINGS, TrainConfig
from .data import TWEETEVAL_TASKS
from .evaluate import label_tweet
from .lessons import train_run
from .model import PACKAGED_ENCODER, encoder_setting
from .runs import TrainingRun, best_models, is_finished, open_run, saved_config
from .sampling import SAMPLERS

# offered in the encoder box; a student may also type any hub id or folder
ENCODERS = (PACKAGED_ENCODER, "roberta-base", "distilroberta-base", "bert-base-uncased")
TRAIN_CAPS = (100, 400, 1000, 3000, 10000)  # training tweets per task offered besides "all"
TRAIN_SHARES = (0.125, 0.25, 0.5)  # or a share of every task, which keeps their size ratio
WIDE = {"width": "420px"}  # a layout, given as a dict so that importing creates no widget
LABEL_STYLE = {"description_width": "130px"}


def show(output: widgets.Output, *things) -> None:
    """Replace what `output` shows with `things` (figures, tables, text); figures are closed after."""
    with output:
        clear_output(wait=True)
        for thing in things:
            display(thing)
    for thing in things:
        if isinstance(thing, Figure):
            plt.close(thing)


class Shown:
    """A panel shows its `box` when it is the last expression of a notebook cell."""

    def _ipython_display_(self):
        display(self.box)


# ---------------------------------------------------------------------------------------------
# Lesson 3: move the temperature, watch the task mix change
# ---------------------------------------------------------------------------------------------


@dataclass
class TemperaturePanel(Shown):
    sizes: dict[str, int]
    slider: widgets.FloatSlider
    output: widgets.Output
    box: widgets.VBox
    figure: Figure | None = None

    def draw(self, change=None) -> Figure:
        """Redraw the sampling probabilities at the slider's temperature."""
        self.figure = plots.temperature_effect(self.sizes, self.slider.value)
        show(self.output, self.figure)
        return self.figure


def temperature_panel(sizes: dict[str, int], temperature: float = 2.0) -> TemperaturePanel:
    """A temperature slider over `plots.temperature_effect`: T = 1 is proportional, large T nearly uniform."""
    slider = widgets.FloatSlider(value=temperature, min=1.0, max=20.0, step=0.5, description="temperature T",
                                 continuous_update=False, layout=WIDE, style=LABEL_STYLE)
    output = widgets.Output()
    panel = TemperaturePanel(sizes, slider, output, widgets.VBox([slider, output]))
    slider.observe(panel.draw, names="value")
    panel.draw()
    return panel


# ---------------------------------------------------------------------------------------------
# Lesson 4: choose what to train, press Train, watch the dev curves
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainingPanel(Shown):
    settings: TrainConfig
    folder: Path
    tasks: widgets.SelectMultiple
    encoder: widgets.Combobox
    sampler: widgets.Dropdown
    sharing: widgets.Dropdown  # hard, lora or soft (their own settings come from `settings`)
    temperature: widgets.FloatSlider
    epochs: widgets.IntSlider
    train_cap: widgets.Dropdown
    tensorboard: widgets.Checkbox  # report_to: the curves also go to RUN/logs/ for TensorBoard
    caps: dict[str, dict]  # label -> the config's caps on training tweets
    button: widgets.Button
    status: widgets.Label
    output: widgets.Output
    log: widgets.Output
    details: widgets.Accordion
    box: widgets.VBox
    run: TrainingRun | None = None
    figure: Figure | None = None

    def config(self) -> TrainConfig:
        """The lesson's settings with the choices made in the widgets."""
        model = encoder_setting(self.encoder.value.strip())
        return dataclasses.replace(
            self.settings, tasks=list(self.tasks.value), model=model, sampler=self.sampler.value,
            sharing=self.sharing.value,
            temperature=self.temperature.value, epochs=self.epochs.value, **self.caps[self.train_cap.value],
            report_to="tensorboard" if self.tensorboard.value else None,
        )

    def train(self) -> TrainingRun:
        """Train the chosen run into `folder`, redrawing the curves every epoch, and return it.

        The run in `folder` is replaced only when the new one has finished. A failure is shown as one
        line in `status` (its traceback under "details") and raised; `self.run` stays the previous run.
        """
        self.button.disabled = True
        self.details.layout.display = "none"
        failure = None
        with self.output:  # in a kernel, Output swallows what is raised inside it: catch it in here
            try:  # the last run's curves stay until the first epoch of this one is drawn
                config = self.config()
                tasks = " + ".join(config.tasks)
                self.status.value = f"Training {tasks} for {config.epochs} epochs into {self.folder} ..."
                self.status.tooltip = None
                run = train_run(config, self.folder, on_epoch_end=self.show_epoch, progress=True)
            except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (each is reported, then raised)
                failure = error
        self.button.disabled = False
        if failure is not None:
            self.report(failure)
            raise failure
        self.run = run
        self.status.value = f"Done: {self.folder} holds the run (history.csv, best/<task>/, results.json)."
        return run

    def open_or_train(self) -> TrainingRun:
        """The chosen run: read back and drawn if `folder` already holds it finished, else `train` it."""
        if is_finished(self.folder) and saved_config(self.folder) == self.config():
            self.run = open_run(self.folder)
            self.show_epoch(self.run.history)
            self.status.value = (f"Read back: {self.folder} already holds this run, finished "
                                 "(Train trains it again).")
            return self.run
        return self.train()

    def press(self, button=None) -> None:
        """What the Train button does: `train`; a failure shows in the panel (no caller to raise to)."""
        with contextlib.suppress(Exception):  # already in the status line and the details
            self.train()

    def report(self, error: BaseException) -> None:
        """One status line for a failed run, what matters first; the traceback goes in the details."""
        kept = "nothing was written"
        if saved_config(self.folder) is not None:
            kept = f"{self.folder} still holds the previous run"
        why = "." if isinstance(error, KeyboardInterrupt) else f": {first_line(error)}"
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped"
        self.log.outputs = ()
        self.log.append_stdout("".join(traceback.format_exception(error)))
        self.details.layout.display = None
        self.status.value = self.status.tooltip = f"Training {what} ({kept}){why}"  # the tooltip: all of it

    def show_epoch(self, history: pd.DataFrame) -> None:
        """Called by `fit` after every epoch: draw the dev curves so far and the history table."""
        epochs = int(history["epoch"].max())
        self.figure = plots.dev_curves(history, title=f"after epoch {epochs} of {self.epochs.value}")
        columns = ["epoch", "task", "train_loss", "dev_loss", "dev_accuracy", "dev_official", "best_so_far"]
        show(self.output, self.figure, history[columns].round(4))
        seconds = history["seconds"].iloc[-1]
        self.status.value = f"Epoch {epochs} of {self.epochs.value} done ({seconds:.0f} s)."


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its kind when it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def cap_label(cap: int | None = None, share: float | None = None) -> str:
    if share and cap:
        return f"{share:.1%} of every task, at most {cap:,} tweets each"
    if share:
        return f"{share:.1%} of every task (ratio kept)"
    return "all tweets" if cap is None else f"{cap:,} tweets per task"


def training_caps(settings: TrainConfig) -> dict[str, dict]:
    """The training-set sizes the panel offers, by label: shares of every task, tweets per task, or all,
    and the caps of `settings` themselves (a share and a cap together too)."""
    shares = sorted({*TRAIN_SHARES, settings.train_fraction} - {None})
    sizes = sorted({*TRAIN_CAPS, settings.max_train_examples} - {None})
    caps = {cap_label(share=share): {"train_fraction": share, "max_train_examples": None} for share in shares}
    caps.update({cap_label(size): {"train_fraction": None, "max_train_examples": size}
                 for size in [*sizes, None]})
    caps[chosen_cap(settings)] = {"train_fraction": settings.train_fraction,
                                  "max_train_examples": settings.max_train_examples}
    return caps


def chosen_cap(settings: TrainConfig) -> str:
    """The label of the caps in `settings`."""
    return cap_label(settings.max_train_examples, settings.train_fraction)


def training_panel(settings: TrainConfig, folder: str | Path) -> TrainingPanel:
    """Widgets to choose tasks, encoder, sampler, sharing, epochs, training-set cap, TensorBoard logs; a Train
    button.

    The other settings (learning rate, dev/test caps, ...) come from `settings`; each finished run
    replaces the one in `folder`, which the next lesson reads.
    """
    caps = training_caps(settings)
    own_tasks = sorted(set(settings.tasks) - set(TWEETEVAL_TASKS))  # folders of the course's format
    controls = dict(
        tasks=widgets.SelectMultiple(options=[*TWEETEVAL_TASKS, *own_tasks], value=settings.tasks, rows=6,
                                     description="tasks", layout=WIDE, style=LABEL_STYLE),
        encoder=widgets.Combobox(options=ENCODERS, value=settings.model or PACKAGED_ENCODER,
                                 ensure_option=False, description="encoder", layout=WIDE, style=LABEL_STYLE),
        sampler=widgets.Dropdown(options=list(SAMPLERS), value=settings.sampler, description="task sampler",
                                 style=LABEL_STYLE),
        sharing=widgets.Dropdown(options=list(SHARINGS), value=settings.sharing, description="sharing",
                                 style=LABEL_STYLE),
        temperature=widgets.FloatSlider(value=settings.temperature, min=min(1.0, settings.temperature),
                                        max=max(10.0, settings.temperature), step=0.5,
                                        description="temperature", style=LABEL_STYLE),
        epochs=widgets.IntSlider(value=settings.epochs, min=1, max=max(10, settings.epochs),
                                 description="epochs", style=LABEL_STYLE),
        train_cap=widgets.Dropdown(options=list(caps), value=chosen_cap(settings),
                                   description="training tweets", style=LABEL_STYLE),
        tensorboard=widgets.Checkbox(value=settings.report_to is not None, indent=False,
                                     description="also log the curves for TensorBoard (in the run's logs/)"),
    )
    button = widgets.Button(description="Train", button_style="primary", icon="play")
    status = widgets.Label("Choose, then press Train (several tasks: Ctrl- or Cmd-click).")
    output, log = widgets.Output(), widgets.Output()
    details = widgets.Accordion([log], titles=("details",), selected_index=None, layout={"display": "none"})
    box = widgets.VBox([*controls.values(), button, status, details, output])
    panel = TrainingPanel(settings, Path(folder), **controls, caps=caps, button=button, status=status,
                          output=output, log=log, details=details, box=box)
    button.on_click(panel.press)
    return panel


# ---------------------------------------------------------------------------------------------
# Lesson 5: type a tweet, see what every head says
# ---------------------------------------------------------------------------------------------


@dataclass
class PredictionPanel(Shown):
    models: dict
    text: widgets.Textarea
    button: widgets.Button
    output: widgets.Output
    box: widgets.VBox
    answer: pd.DataFrame | None = None
    figure: Figure | None = None

    def predict(self, text: str | None = None) -> pd.DataFrame:
        """What the Label button does (for `text`, if given, else the typed tweet): every head's
        probabilities, drawn and in a table."""
        if text is not None:
            self.text.value = text
        self.answer = label_tweet(self.models, self.text.value)
        self.figure = plots.head_probabilities(self.answer, self.text.value)
        show(self.output, self.figure, self.answer.set_index(["task", "label"]).round(3))
        return self.answer


def prediction_panel(folder: str | Path,
                     text: str = "i can't believe it's snowing again in april") -> PredictionPanel:
    """A text box and a Label button over a run's best checkpoint of each task."""
    area = widgets.Textarea(value=text, description="tweet", layout=widgets.Layout(width="520px"))
    button = widgets.Button(description="Label it", button_style="primary", icon="tags")
    output = widgets.Output()
    panel = PredictionPanel(best_models(folder), area, button, output, widgets.VBox([area, button, output]))
    button.on_click(lambda _: panel.predict())
    return panel


# ---------------------------------------------------------------------------------------------
# Every lesson: a quiz on what its cells showed, the answers revealed on demand
# ---------------------------------------------------------------------------------------------


@dataclass
class Question:
    """One multiple-choice question: its options, the right one, and one line on why it is right."""

    text: str
    options: list[str]
    answer: str
    why: str

    def __post_init__(self):
        self.options = [str(option) for option in self.options]
        self.answer = str(self.answer)
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValueError(f"question {self.text!r} needs two or more different options, "
                             f"got {self.options}")
        if self.answer not in self.options:
            raise ValueError(f"question {self.text!r}: answer {self.answer!r} is not one of {self.options}")


@dataclass
class QuizItem:
    question: Question
    choice: widgets.RadioButtons
    button: widgets.Button
    feedback: widgets.HTML
    box: widgets.VBox

    def reveal(self, button=None) -> str:
        """What the Check button does: mark the chosen option right or wrong, and say why."""
        picked, answer, why = self.choice.value, self.question.answer, self.question.why
        if picked is None:
            verdict = f"The answer is: {answer}. {why}"
        elif picked == answer:
            verdict = f"✅ Right. {why}"
        else:
            verdict = f"❌ Not quite: you chose {picked!r}, the answer is {answer!r}. {why}"
        self.feedback.value = f"<div style='margin: 0 0 1em 1.5em'>{html.escape(verdict, quote=False)}</div>"
        return verdict


@dataclass
class Quiz(Shown):
    items: list[QuizItem]
    box: widgets.VBox

    def score(self) -> str:
        """How many questions the current choices answer rightly, in words."""
        right = sum(item.choice.value == item.question.answer for item in self.items)
        return f"{right} of {len(self.items)} right"


def quiz(questions: list[Question]) -> Quiz:
    """A quiz: each question with its options, and a Check button that reveals the answer and the reason."""
    if not questions:
        raise ValueError("a quiz needs at least one question")
    items = []
    for number, question in enumerate(questions, start=1):
        title = widgets.HTML(f"<b>{number}. {html.escape(question.text, quote=False)}</b>")
        choice = widgets.RadioButtons(options=question.options, value=None, layout={"width": "auto"})
        button = widgets.Button(description="Check", icon="check", tooltip="show the answer")
        feedback = widgets.HTML("")
        item = QuizItem(question, choice, button, feedback, widgets.VBox([title, choice, button, feedback]))
        button.on_click(item.reveal)
        items.append(item)
    return Quiz(items, widgets.VBox([item.box for item in items]))

"""What the lesson notebooks share: the list of lessons, the repository, their scale, runs trained once,
lesson 5's comparisons and lesson 8's recorded experiment.

A run that one lesson trains is read back by the next (`open_or_train`), so a student who opens lesson 5
first still gets lesson 4's run, and nobody trains the same thing twice.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .config import TrainConfig
from .data import task_name
from .evaluate import predictions_on_test
from .files import recover_interrupted_writes, staged_folder
from .hardware import gpu_precision
from .metrics import confusion_table, official_metric_name, official_score
from .runs import (LAST_FOLDER, TrainingRun, exclusive_run_folder, has_checkpoint, is_finished,
                   load_history, load_run_tasks, open_run, saved_config)
from .train import fit

# The repository on GitHub: the notebooks' Colab cells and README's badges must agree (tested)
REPOSITORY = "OWNER/mtl-tutorial"
PACKAGE_URL = f"git+https://github.com/{REPOSITORY}"
SCALE_VARIABLE = "MTL_TUTORIAL_SCALE"  # "ci", "cpu" or "gpu": the lessons' scale, whatever the hardware
ENCODER_VARIABLE = "MTL_TUTORIAL_ENCODER"  # a hub id or folder that replaces the scale's encoder
RUNS_VARIABLE = "MTL_TUTORIAL_RUNS"  # where the lessons keep their runs (default: runs/ beside the notebook)
GUESSED_SPEED = {"ci": 40, "cpu": 40, "gpu": 200}  # training tweets/s before a run has measured this machine


# ---------------------------------------------------------------------------------------------
# The lessons: one entry each, read by the README's check, the tests and benchmarks/lesson_times.py
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lesson:
    """One lesson: the notebook pair `notebooks/<stem>.py` (the source) and `.ipynb`, and what it does."""

    stem: str  # "04_training"
    title: str  # its first heading, after "Lesson N — "
    trains: str  # what it trains, in words
    runs: tuple[str, ...] = ()  # the run folders it opens in the runs folder: trained, or read back
    exercises: tuple[str, ...] = ()  # the `mtl_tutorial.exercises.check_...` functions it calls
    reads_run_of: str | None = None  # the earlier lesson whose run it reads back (else trains it itself)

    @property
    def number(self) -> int:
        return int(self.stem.split("_")[0])


LESSONS = (
    Lesson("00_overview", "Multi-task learning for tweets — the whole pipeline on one page",
           "the multi-task run on emotion + sentiment", runs=("multitask",)),
    Lesson("01_data", "The data: two tasks, one kind of text", "nothing",
           exercises=("check_encode", "check_collate", "check_majority_baseline")),
    Lesson("02_model", "The model: one shared encoder, one head per task", "nothing (one backward pass)",
           exercises=("check_mean_pooling", "check_head", "check_forward")),
    Lesson("03_sampling", "Task sampling: which task trains at each step?", "nothing",
           exercises=("check_temperature", "check_draws_per_epoch", "check_schedule")),
    Lesson("04_training", "Training: one loop for every task",
           "a few batches by hand and with fit, then the multi-task run from its Train button",
           runs=("by-hand-vs-fit", "multitask"), exercises=("check_train_step", "check_best_epochs"),
           reads_run_of="00_overview"),
    Lesson("05_evaluation", "Evaluation: what did the model learn, and did sharing help?",
           "the single-task baselines", runs=("multitask", "single/emotion", "single/sentiment"),
           exercises=("check_sentiment_score", "check_stance_score", "check_confusion"),
           reads_run_of="04_training"),
    Lesson("06_conflict", "When tasks pull apart", "nothing (one step's gradients)",
           exercises=("check_pcgrad_projection", "check_mgda_two_tasks", "check_uncertainty_loss")),
    Lesson("07_capstone", "Capstone: your pieces, one run, and a third task",
           "your assembled run and fit's at the capstone scale, then fit with irony added",
           runs=("capstone/fit", "capstone/with-irony"),
           exercises=("check_collate", "check_head", "check_forward", "check_schedule", "check_train_step",
                      "check_best_epochs")),
    Lesson("08_sharing", "How much to share", "nothing (it builds the three models to count parameters)",
           exercises=("check_lora_update", "check_soft_penalty")),
)


def lesson(stem: str) -> Lesson:
    """The lesson whose notebook is `notebooks/<stem>.py`."""
    for each in LESSONS:
        if each.stem == stem:
            return each
    raise KeyError(f"no lesson {stem!r}: the lessons are {', '.join(each.stem for each in LESSONS)}")


def colab_url(notebook: str) -> str:
    """The address that opens `notebooks/<notebook>.ipynb` of the repository in Google Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{notebook}.ipynb"


def on_colab() -> bool:
    """True inside Google Colab, whose runtime forgets its files when it stops."""
    return "google.colab" in sys.modules


# ---------------------------------------------------------------------------------------------
# The lessons' scale
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """One of the lessons' scales: what it is for, and the settings it gives `TrainConfig`."""

    description: str
    settings: dict  # TrainConfig fields; the others keep their defaults
    precision_of_the_gpu: bool = False  # mixed precision as the GPU at hand runs it natively


SCALES = {
    "ci": Scale("CI scale: a smoke test of every cell (MTL_TUTORIAL_SCALE=ci)",
                dict(model=None, pooling="mean", epochs=2, learning_rate=1e-4, max_train_examples=400,
                     max_eval_examples=300, gradient_probe_batches=1)),  # the default 4: 1/6 of a run
    # benchmarks/LESSONS.md: the settings tried, their scores and times on a 2-core CPU
    "cpu": Scale("CPU lesson scale: a laptop without a GPU, minutes per training lesson",
                 dict(model=None, pooling="mean", epochs=3, learning_rate=2e-4, sampler="uniform",
                      train_fraction=0.125, max_eval_examples=500)),
    "gpu": Scale("full recipe: the original tutorial's, on a GPU",
                 dict(model="roberta-base", pooling="pooler", epochs=5, learning_rate=2e-5),
                 precision_of_the_gpu=True),
}


# Lesson 7 trains three runs; its scale is the lesson scale with fewer training tweets per task, one device
# at full precision (so that the student's loop and fit's compute the same numbers) and no gradient probe
CAPSTONE_CAPS = {"ci": dict(max_train_examples=64, max_eval_examples=64),
                 "cpu": dict(max_train_examples=1000),  # emotion keeps its eighth; sentiment is cut to 1,000
                 "gpu": dict(max_train_examples=5000, epochs=3)}


def lesson_scale() -> str:
    """The scale the lessons run at: "gpu" with a GPU, "cpu" without one, unless MTL_TUTORIAL_SCALE names
    one ("ci" for the tests)."""
    chosen = os.environ.get(SCALE_VARIABLE)
    if chosen:
        if chosen not in SCALES:
            raise ValueError(f"{SCALE_VARIABLE}={chosen!r}: choose one of {', '.join(SCALES)}")
        return chosen
    return "gpu" if torch.cuda.is_available() else "cpu"


def lesson_config(tasks=("emotion", "sentiment"), scale: str | None = None, **changes) -> TrainConfig:
    """The lessons' training settings at one of the `SCALES` (default: `lesson_scale()`).

    gpu: the original tutorial's recipe: roberta-base, pooler output, all data, 5 epochs at lr 2e-5.
    cpu: the packaged MiniLM on an eighth of every task (sizes keep their ratio), uniform sampling, 3 epochs.
    ci:  MiniLM on 400 training and 300 dev/test tweets per task, 2 epochs, a one-batch gradient probe: only
         proves the cells run.
    MTL_TUTORIAL_ENCODER replaces the encoder of any scale; `changes` override any setting (with
    strategy="all-tasks", which samples nothing, the scale's sampler is dropped).
    """
    scale = scale or lesson_scale()
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    settings = dict(SCALES[scale].settings)
    if changes.get("strategy", "sample") != "sample":
        settings.pop("sampler", None)
    if SCALES[scale].precision_of_the_gpu:
        settings["mixed_precision"] = gpu_precision()
    if os.environ.get(ENCODER_VARIABLE):
        settings["model"] = os.environ[ENCODER_VARIABLE]
    return TrainConfig(tasks=list(tasks), **{**settings, **changes})


def capstone_config(tasks=("emotion", "sentiment"), scale: str | None = None, **changes) -> TrainConfig:
    """Lesson 7's settings: `lesson_config` at the same scale, with `CAPSTONE_CAPS`' smaller caps, one
    device at full precision and no gradient probe; `changes` override any setting."""
    scale = scale or lesson_scale()
    return lesson_config(tasks, scale, **{**CAPSTONE_CAPS[scale], "mixed_precision": "no",
                                          "gradient_probe_batches": 0, **changes})


def describe_scale(config: TrainConfig, scale: str | None = None) -> str:
    """What a run of `config` will train on, in words: the scale, encoder, epochs and each cap on the data."""
    scale = scale or lesson_scale()
    encoder = config.model or "the packaged MiniLM (offline)"
    lines = [f"encoder {encoder}, pooling {config.pooling!r}, {config.epochs} epochs at learning rate "
             f"{config.learning_rate:g}, {describe_sampling(config)}, "
             f"tweets cut at {config.max_length} tokens"]
    if config.train_fraction:
        lines.append(f"CAPPED: {config.train_fraction:.1%} of every task's training tweets (a random sample; "
                     "the tasks keep their size ratio)")
    if config.max_train_examples:
        lines.append(f"CAPPED: at most {config.max_train_examples} training tweets per task "
                     "(a random sample)")
    if config.max_eval_examples:
        lines.append(f"CAPPED: at most {config.max_eval_examples} dev and {config.max_eval_examples} "
                     "test tweets per task, so every score below is an estimate")
    if not (config.train_fraction or config.max_train_examples or config.max_eval_examples):
        lines.append("all training, dev and test tweets of every task")
    other = ", ".join(name for name in SCALES if name != scale)
    return (f"{SCALES[scale].description}; tasks {', '.join(config.tasks)}:\n  " + "\n  ".join(lines)
            + f"\n  (another scale: set the environment variable {SCALE_VARIABLE} to {other})")


def describe_sampling(config: TrainConfig) -> str:
    """How a run of `config` chooses what trains at each step, in a few words."""
    if config.strategy == "all-tasks":
        return f"every task at every step, combined by {config.combine}"
    if config.sampler == "temperature":
        return f"temperature sampling (T={config.temperature:g})"
    return f"{config.sampler} sampling"


# ---------------------------------------------------------------------------------------------
# Runs: trained once, read back by the next notebook
# ---------------------------------------------------------------------------------------------


def train_run(config: TrainConfig, folder: str | Path, on_epoch_end=None,
              progress: bool = False) -> TrainingRun:
    """Train `config` into `folder`, replacing the run that was there only once the new one has finished.

    The new run trains in a hidden folder beside it, so a failure (a mistyped encoder, an interrupted
    kernel, a crash) leaves the previous run whole: one lesson folder, one complete run.
    """
    folder = Path(folder)
    recover_interrupted_writes(folder.parent, folder.name)
    if folder.exists() and any(folder.iterdir()) and saved_config(folder) is None:
        raise ValueError(f"{folder} holds files that are not a training run; choose another folder")
    with exclusive_run_folder(folder), staged_folder(folder) as staging:
        run = fit(config, staging, on_epoch_end=on_epoch_end, progress=progress)
    return TrainingRun(folder, run.history, run.results)


def open_or_train(config: TrainConfig, folder: str | Path, on_epoch_end=None,
                  progress: bool = False) -> TrainingRun:
    """The run of `config` in `folder`: read back if it finished, resumed if it stopped, else trained anew."""
    folder = Path(folder)
    recover_interrupted_writes(folder.parent, folder.name)
    if saved_config(folder) != config:
        return train_run(config, folder, on_epoch_end, progress)
    if is_finished(folder):
        return open_run(folder)
    return fit(config, folder, resume=True, on_epoch_end=on_epoch_end, progress=progress)


def single_task_configs(config: TrainConfig, folder: str | Path) -> dict[Path, TrainConfig]:
    """The single-task baselines of a multi-task `config`: each task alone, same settings, folder/<task>."""
    return {Path(folder) / task_name(task): dataclasses.replace(config, tasks=[task])
            for task in config.tasks}


def single_task_runs(config: TrainConfig, folder: str | Path) -> dict[str, TrainingRun]:
    """The single-task baselines of a multi-task `config`, read back or trained (see `open_or_train`)."""
    baselines = single_task_configs(config, folder)
    return {place.name: open_or_train(single, place) for place, single in baselines.items()}


def runs_folder(chosen: str | Path | None = None) -> Path:
    """Where lessons keep their runs: `chosen`, else $MTL_TUTORIAL_RUNS, else runs/ beside the notebook."""
    return Path(chosen or os.environ.get(RUNS_VARIABLE) or "runs")


def training_plan(plan: dict[str | Path, TrainConfig]) -> str:
    """What `open_or_train` will do for each folder of `plan` (read back, resume or train) and about how long.

    The time is the tweets to train and score over the speed of this machine's earlier runs of the same
    encoder, or a guess for the scale when there are none yet.
    """
    plan = {Path(folder): config for folder, config in plan.items()}
    speed, measured = measured_speed(plan), True
    lines, total = [], 0.0
    for folder, config in plan.items():
        recover_interrupted_writes(folder.parent, folder.name)
        saved = saved_config(folder)
        same_run = saved == config
        if same_run and is_finished(folder):
            lines.append(f"{folder}: finished, read back")
            continue
        done = epochs_done(folder) if same_run else 0
        rate = speed.get(config.model)
        measured = measured and rate is not None
        minutes = training_minutes(config, rate or GUESSED_SPEED[lesson_scale()], config.epochs - done)
        total += minutes
        step = (f"resumes after epoch {done} of {config.epochs}" if done
                else "trains now, replacing the run of other settings there" if saved
                else "trains now")
        lines.append(f"{folder}: {step}, {in_words(minutes)}")
    if total:
        source = ("at the speed of this machine's earlier runs" if measured
                  else "a guess: this machine has no finished run of that encoder yet")
        lines.append(f"in all {in_words(total)}, {source}")
    return "\n".join(lines)


def in_words(minutes: float) -> str:
    """A duration as the plan prints it: "under a minute" or "about N min"."""
    return "under a minute" if minutes < 1 else f"about {minutes:.0f} min"


def epochs_done(folder: Path) -> int:
    """How many epochs a stopped run has behind it (0 if it never finished one)."""
    return int(load_history(folder)["epoch"].max()) if has_checkpoint(folder) else 0


def measured_speed(plan: dict[Path, TrainConfig]) -> dict[str | None, float]:
    """Training tweets per second, by encoder, from the histories of the runs beside the plan's folders."""
    speeds = {}
    for folder in {place for folder in plan for place in folder.parent.glob("*") if is_finished(place)}:
        speeds.setdefault(saved_config(folder).model, []).extend(load_history(folder)["examples_per_second"])
    return {model: statistics.median(values) for model, values in speeds.items()}


def training_minutes(config: TrainConfig, speed: float, epochs: int) -> float:
    """Minutes to train `epochs` epochs of `config` at `speed` tweets/s; scoring runs about 3x as fast."""
    tasks = load_run_tasks(config).values()
    train = sum(len(task.splits["train"]) for task in tasks)
    dev, test = (sum(len(task.splits[split]) for task in tasks) for split in ("dev", "test"))
    return (epochs * (train + dev / 3) + test / 3) / speed / 60


# ---------------------------------------------------------------------------------------------
# Lesson 5's comparisons: multi-task against single-task, the best epoch against the last
# ---------------------------------------------------------------------------------------------


def with_vs_without(with_task: TrainingRun, without: TrainingRun) -> pd.DataFrame:
    """Test scores x 100 of the tasks both runs trained, without the added task and with it, and the
    difference (with - without); then the added task's own score beside its majority baseline."""
    rows = []
    for task, result in with_task.results.items():
        before = without.results.get(task)
        rows.append({"task": task, "without": 100 * before["test"]["official"] if before else float("nan"),
                     "with": 100 * result["test"]["official"],
                     "majority baseline": 100 * result["test_majority_baseline"]["official"]})
    table = pd.DataFrame(rows).set_index("task")
    table["with - without"] = table["with"] - table["without"]
    return table


def multitask_vs_single_task(multitask: TrainingRun, single: dict[str, TrainingRun]) -> pd.DataFrame:
    """Test scores per task (each from its best dev epoch): single-task, multi-task, their difference."""
    rows = []
    for task, result in multitask.results.items():
        alone = single[task].results[task]
        rows.append({"task": task, "metric": result["official_metric"],
                     "majority baseline": result["test_majority_baseline"]["official"],
                     "single-task": alone["test"]["official"], "multi-task": result["test"]["official"],
                     "multi - single": result["test"]["official"] - alone["test"]["official"]})
    return pd.DataFrame(rows).set_index("task")


def confusion_of(predictions: pd.DataFrame) -> pd.DataFrame:
    """The confusion table of a `predictions_on_test` frame: rows are the truth, columns the prediction."""
    names = list(predictions["true"].cat.categories)
    return confusion_table(predictions["true"].cat.codes, predictions["predicted"].cat.codes, names)


def score_of(predictions: pd.DataFrame, task: str) -> float:
    """The official TweetEval score of a `predictions_on_test` frame."""
    names = predictions["true"].cat.categories
    return official_score(task, predictions["true"].cat.codes, predictions["predicted"].cat.codes, len(names))


def best_vs_last(run: TrainingRun | str | Path) -> pd.DataFrame:
    """Test score of each task's best dev epoch beside the last one's (what the original tutorial tested)."""
    run = run if isinstance(run, TrainingRun) else open_run(run)
    last_epoch = int(run.history["epoch"].max())
    rows = []
    for task, result in run.results.items():
        last = score_of(predictions_on_test(run.folder, task, LAST_FOLDER), task)
        rows.append({"task": task, "metric": official_metric_name(task),
                     "best dev epoch": result["best_epoch"], "test, best epoch": result["test"]["official"],
                     "last epoch": last_epoch, "test, last epoch": last})
    return pd.DataFrame(rows).set_index("task")

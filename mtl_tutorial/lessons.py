"""What the lesson notebooks share: where the package lives, the lessons' scale, and runs trained once.

A run that one lesson trains is read back by the next (`open_or_train`), so a student who opens lesson 5
first still gets lesson 4's run, and nobody trains the same thing twice.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from .config import TrainConfig
from .data import task_name
from .files import recover_interrupted_writes, staged_folder
from .runs import TrainingRun, exclusive_run_folder, is_finished, open_run, saved_config
from .train import fit

REPOSITORY = "OWNER/mtl-tutorial"  # on GitHub; the notebooks' Colab cells and README's badges must agree (tested)
PACKAGE_URL = f"git+https://github.com/{REPOSITORY}"
QUICK_VARIABLE = "MTL_TUTORIAL_QUICK"  # "1" forces the quick setting, even on a GPU (tests and CI)


def colab_url(notebook: str) -> str:
    """The address that opens `notebooks/<notebook>.ipynb` of the repository in Google Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{notebook}.ipynb"


# ---------------------------------------------------------------------------------------------
# The lesson's scale
# ---------------------------------------------------------------------------------------------


def quick_mode() -> bool:
    """True when the lessons must be quick: there is no GPU, or MTL_TUTORIAL_QUICK=1 asks for it."""
    return os.environ.get(QUICK_VARIABLE) == "1" or not torch.cuda.is_available()


def lesson_config(tasks=("emotion", "sentiment"), **changes) -> TrainConfig:
    """The lessons' training settings: the original tutorial's recipe on a GPU, a small one on a CPU.

    Full: roberta-base, pooler output, all data, 5 epochs at lr 2e-5. Quick: the packaged MiniLM,
    400 training and 300 dev/test tweets per task, 2 epochs at lr 1e-4. `changes` override either.
    """
    if quick_mode():
        config = TrainConfig(tasks=list(tasks), model=None, pooling="mean", epochs=2, learning_rate=1e-4,
                             max_train_examples=400, max_eval_examples=300)
    else:
        # native bf16 only (Ampere and newer); a T4 would emulate it, so it gets fp16
        precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
        config = TrainConfig(tasks=list(tasks), model="roberta-base", pooling="pooler", epochs=5, learning_rate=2e-5,
                             mixed_precision=precision)
    return dataclasses.replace(config, **changes)


def describe_scale(config: TrainConfig) -> str:
    """What a run of `config` will train on, in words: encoder, epochs and every cap on the data."""
    encoder = config.model or "the packaged MiniLM (offline)"
    lines = [f"encoder {encoder}, pooling {config.pooling!r}, {config.epochs} epochs at learning rate "
             f"{config.learning_rate:g}, tweets cut at {config.max_length} tokens"]
    if config.max_train_examples:
        lines.append(f"CAPPED: at most {config.max_train_examples} training tweets per task (a random sample)")
    if config.max_eval_examples:
        lines.append(f"CAPPED: at most {config.max_eval_examples} dev and {config.max_eval_examples} test tweets "
                     "per task, so every score below is an estimate")
    if not (config.max_train_examples or config.max_eval_examples):
        lines.append("all training, dev and test tweets of every task")
    setting = "quick setting (CPU, or MTL_TUTORIAL_QUICK=1)" if quick_mode() else "full recipe (GPU)"
    return f"{setting}, tasks {', '.join(config.tasks)}:\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------------------------------
# Runs: trained once, read back by the next notebook
# ---------------------------------------------------------------------------------------------


def train_run(config: TrainConfig, folder: str | Path, on_epoch_end=None, progress: bool = False) -> TrainingRun:
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


def open_or_train(config: TrainConfig, folder: str | Path, on_epoch_end=None, progress: bool = False) -> TrainingRun:
    """The run of `config` in `folder`: read back if it finished, resumed if it stopped, else trained anew."""
    folder = Path(folder)
    recover_interrupted_writes(folder.parent, folder.name)
    if saved_config(folder) != config:
        return train_run(config, folder, on_epoch_end, progress)
    if is_finished(folder):
        return open_run(folder)
    return fit(config, folder, resume=True, on_epoch_end=on_epoch_end, progress=progress)


def single_task_runs(config: TrainConfig, folder: str | Path) -> dict[str, TrainingRun]:
    """The single-task baselines of a multi-task `config`: each task alone, same settings, in folder/<task>."""
    return {task_name(task): open_or_train(dataclasses.replace(config, tasks=[task]), Path(folder) / task_name(task))
            for task in config.tasks}

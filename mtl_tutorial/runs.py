"""The run folder: what a training run writes, and how it is read back or resumed.

    config.json          the TrainConfig              history.json / .csv   one row per epoch and task
    results.json         each task's test score       best/<task>/           the best model of each task
    last/                the resumable checkpoint     dev_curves.png         drawn by the command line
    logs/                the curves for TensorBoard (with report_to="tensorboard")

With hard sharing best/<task>/ and last/ hold whole models. With lora or soft sharing best/<task>/ holds only
the task's part (its adapter or encoder copy, and its head) and last/ the weights training changes; reading
them back rebuilds the model from config.json, so the run's encoder must be at hand.

This is the only module that spells these names. Every file is written beside its place and renamed,
and a write that fails (a full disk, a quota) says in one line what it was saving, leaving the old file whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from safetensors.torch import load_file, save_file
from torch import nn

from .batching import BatchStream
from .config import TrainConfig
from .data import Task, load_tasks, task_name
from .files import recover_interrupted_writes, saving, staged_folder, write_atomically, write_json_atomically
from .model import MultiTaskModel, load_model, read_model_description, restore_weights, save_model
from .sharing import (TASK_DESCRIPTION_FILE, build_shared_model, load_task_checkpoint, load_trained_weights,
                      read_task_description, save_task_checkpoint, sharing_of, trained_weights)

CONFIG_FILE, RESULTS_FILE = "config.json", "results.json"
HISTORY_JSON, HISTORY_CSV = "history.json", "history.csv"
BEST_FOLDER, LAST_FOLDER, STATE_FILE = "best", "last", "training_state.pt"
TRAINED_WEIGHTS_FILE = "trained.safetensors"  # last/ of a lora or soft run: the weights training changes
DEV_CURVES_FILE = "dev_curves.png"
TRACKING_FOLDER = "logs"  # Accelerate's trackers write here (a project named so, in the run folder)


class RunFolderBusy(OSError):
    """Another process is training into this run folder right now."""


@dataclass
class TrainingRun:
    """What `fit` returns: the run's folder, its per-epoch history and its final results."""

    folder: Path
    history: pd.DataFrame
    results: dict


@dataclass
class TrainingState:
    """Everything a run carries from one epoch to the next. `state_dict` is what last/ keeps beside the
    model's weights: with it a resumed run goes on exactly as if it had never stopped."""

    model: MultiTaskModel
    tokenizer: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    streams: dict[str, BatchStream]
    combiner: nn.Module | None = None  # for strategy "all-tasks": how the tasks are combined at each step
    best: dict[str, dict] = field(default_factory=dict)  # each task's best dev scores so far, and their epoch
    history: list[dict] = field(default_factory=list)  # one row per finished epoch and task
    epoch: int = 0  # the last finished epoch

    def state_dict(self) -> dict:
        """Optimizer, schedule, data positions, learned task weights, best scores, history: all but the
        weights. (The adaptive sampler needs no more: its mix follows from the history's dev scores.)"""
        return {"epoch": self.epoch, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "streams": {name: stream.state_dict() for name, stream in self.streams.items()},
                "best": self.best, "history": self.history,
                **({"combiner": self.combiner.state_dict()} if self.combiner is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for name, stream in self.streams.items():
            stream.load_state_dict(state["streams"][name])
        if self.combiner is not None:
            self.combiner.load_state_dict(state["combiner"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], state["history"]


def best_folder(folder: str | Path, task: str) -> Path:
    """Where the run keeps `task`'s best checkpoint (the epoch with its best dev score)."""
    return Path(folder) / BEST_FOLDER / task


def last_folder(folder: str | Path) -> Path:
    """Where the run keeps its last finished epoch, to resume from."""
    return Path(folder) / LAST_FOLDER


# ---------------------------------------------------------------------------------------------
# Reading and writing the run's files
# ---------------------------------------------------------------------------------------------


def load_config(folder: str | Path) -> TrainConfig:
    """The settings a run was trained with."""
    path = Path(folder) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(saved, dict) and "model_type" in saved:  # transformers' config.json of a saved model
            raise OSError(f"{folder} holds a saved model, not a training run: give the run folder it is in "
                          "(the one with history.csv)")
        return TrainConfig(**saved)
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a training run: {CONFIG_FILE} is missing") from None
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is damaged or was not written by mtl_tutorial: {error}") from None


def saved_config(folder: str | Path) -> TrainConfig | None:
    """The settings of the run in `folder`, or None when no run was started there."""
    return load_config(folder) if (Path(folder) / CONFIG_FILE).exists() else None


def save_config(folder: Path, config: TrainConfig) -> None:
    path = Path(folder) / CONFIG_FILE
    with saving("the run's settings", path):
        write_json_atomically(dataclasses.asdict(config), path)


def load_history(folder: str | Path) -> pd.DataFrame:
    """A run's history: one row per (epoch, task) with train loss, dev scores and speed."""
    return pd.DataFrame(json.loads((Path(folder) / HISTORY_JSON).read_text(encoding="utf-8")))


def save_history(folder: Path, history: list[dict]) -> None:
    with saving("the history", folder / HISTORY_JSON):
        write_json_atomically(history, folder / HISTORY_JSON)
    table = pd.DataFrame(history)
    with saving("the history", folder / HISTORY_CSV):
        write_atomically(folder / HISTORY_CSV, lambda temporary: table.to_csv(temporary, index=False))


def save_results(folder: Path, results: dict) -> None:
    with saving("the test results", Path(folder) / RESULTS_FILE):
        write_json_atomically(results, Path(folder) / RESULTS_FILE)


def is_finished(folder: str | Path) -> bool:
    """True when the run got as far as its test scores."""
    return (Path(folder) / RESULTS_FILE).exists()


def open_run(folder: str | Path) -> TrainingRun:
    """A finished run read back from its folder: its history and its test results."""
    folder = Path(folder)
    if not is_finished(folder):
        load_config(folder)  # a folder that is no run at all is named as such
        raise FileNotFoundError(f"{folder} has not finished: it has no {RESULTS_FILE} (test scores) yet; "
                                "continue it with fit(config, folder, resume=True) or `mtl-tutorial train "
                                "... --resume`")
    results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    return TrainingRun(folder, load_history(folder), results)


def save_dev_curves(folder: str | Path, figure) -> Path:
    """Save a drawing of the run's dev curves (a matplotlib Figure) into the run folder."""
    path = Path(folder) / DEV_CURVES_FILE
    with saving("the drawing of the dev curves", path):
            write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=120, format="png"))
    return path


# ---------------------------------------------------------------------------------------------
# The run's tasks and models
# ---------------------------------------------------------------------------------------------


def load_run_tasks(config: TrainConfig, names: list[str] | None = None) -> dict[str, Task]:
    """The run's tasks (or only those called `names`), with its caps on training and evaluation examples."""
    entries = [entry for entry in config.tasks if names is None or task_name(entry) in names]
    tasks = load_tasks(entries, **config.data_location())
    return {name: task.capped(training_cap(config, len(task.splits["train"])),
                              config.max_eval_examples, config.seed)
            for name, task in tasks.items()}


def training_cap(config: TrainConfig, size: int) -> int | None:
    """How many of a task's `size` training tweets the run keeps: its share, then its cap (None = all)."""
    caps = [config.max_train_examples] if config.max_train_examples else []
    if config.train_fraction is not None:
        caps.append(max(1, round(config.train_fraction * size)))
    return min(caps, default=None)


def run_task_names(folder: str | Path) -> list[str]:
    """The task names of a run, in training order, as its saved models record them (not its config,
    whose tasks may be folders)."""
    best = Path(folder) / BEST_FOLDER
    saved = sorted(path for path in best.iterdir() if path.is_dir() and not path.name.startswith(".")) \
        if best.is_dir() else []
    if not saved:
        raise OSError(f"run {folder} has no saved model yet: its {BEST_FOLDER}/ folder is empty or missing")
    return list(best_description(saved[0])["task_labels"])


def holds_task_part(checkpoint: Path) -> bool:
    """True for a lora or soft run's best checkpoint: one task's part of the model, not a whole model."""
    return (Path(checkpoint) / TASK_DESCRIPTION_FILE).exists()


def best_description(checkpoint: Path) -> dict:
    """What a best checkpoint says of itself: its task labels, pooling, epoch and dev scores."""
    if holds_task_part(checkpoint):
        return read_task_description(checkpoint)
    return read_model_description(checkpoint)


def load_best(folder: str | Path, task: str):
    """`task`'s best checkpoint of a run, ready for `predict`: (model, tokenizer). A lora or soft checkpoint
    holds only the task's part, put into a model rebuilt from the run's settings (its encoder at hand)."""
    checkpoint = best_folder(folder, task)
    if not holds_task_part(checkpoint):
        return load_model(checkpoint)
    model, tokenizer = build_shared_model(best_description(checkpoint)["task_labels"], load_config(folder))
    load_task_checkpoint(model, checkpoint)
    return model.eval(), tokenizer


def best_models(folder: str | Path) -> dict:
    """Each task's best checkpoint of a run, loaded once: {task: (model, tokenizer)}. With lora or soft
    sharing one model holds every task's best part, so it is the same model for every task."""
    names = run_task_names(folder)
    if not holds_task_part(best_folder(folder, names[0])):
        return {task: load_model(best_folder(folder, task)) for task in names}
    model, tokenizer = load_best(folder, names[0])
    for task in names[1:]:
        load_task_checkpoint(model, best_folder(folder, task))
    return {task: (model, tokenizer) for task in names}


def restore_best(model, folder: str | Path, task: str) -> None:
    """Put `task`'s best checkpoint into the run's own model, in place (lora, soft: its part only)."""
    if sharing_of(model) == "hard":
        restore_weights(model, best_folder(folder, task))
    else:
        load_task_checkpoint(model, best_folder(folder, task))


def load_last(folder: str | Path):
    """The model of the run's last finished epoch (last/), ready for `predict`: (model, tokenizer)."""
    checkpoint = last_folder(folder)
    if not (checkpoint / TRAINED_WEIGHTS_FILE).exists():
        return load_model(checkpoint)
    task_labels = best_description(best_folder(folder, run_task_names(folder)[0]))["task_labels"]
    model, tokenizer = build_shared_model(task_labels, load_config(folder))
    load_trained_weights(model, load_file(checkpoint / TRAINED_WEIGHTS_FILE))
    return model.eval(), tokenizer


def is_run(folder: str | Path) -> bool:
    """True when `folder` is a run folder (rather than one saved model)."""
    return (Path(folder) / BEST_FOLDER).is_dir()


# ---------------------------------------------------------------------------------------------
# One run per folder at a time; preparing the folder; saving and restoring the resumable checkpoint
# ---------------------------------------------------------------------------------------------


def lock_file(folder: Path) -> Path:
    """The lock of a run folder lives beside it (`.NAME.lock`), so taking it writes nothing in the folder."""
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def exclusive_run_folder(folder: Path):
    """Hold the run folder for this process only; a second process is refused with the holder's pid.

    The operating system drops an flock when its process dies, even by SIGKILL, so a crashed run's
    lock never blocks its `--resume`. A run that ends (well or with an error) removes its lock file.
    """
    path = lock_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusy(f"{folder} is being trained by {holder}: one run per folder at a time; "
                                "wait for it to finish or choose another folder") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # the holder before us removed this file as we took it: take the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # still holding the lock, so no one else holds this file
        handle.close()  # closing releases the lock


def prepare_folder(folder: Path, config: TrainConfig, resume: bool) -> bool:
    """Check that the run folder is new, empty, or holds this very run; return True in the last case."""
    if not (folder / CONFIG_FILE).exists():
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ValueError(f"{folder} exists and is not a training run (it has no {CONFIG_FILE}); "
                             "choose a new or empty folder")
        return False
    saved = load_config(folder)  # the settings that change no number (compare=False) may differ
    pairs = [(item.name, getattr(config, item.name), getattr(saved, item.name))
             for item in dataclasses.fields(config) if item.compare]
    differences = [f"{name} is {here!r} here but {there!r} there"
                   for name, here, there in pairs if here != there]
    if differences:
        raise ValueError(f"{folder} already holds a different run ({'; '.join(differences)}); "
                         "choose another folder")
    if not resume:
        raise ValueError(f"{folder} already holds this run: pass resume=True (--resume) to continue it")
    return True


def recover_run_folder(folder: Path) -> None:
    """After a crash: finish or undo the writes that were cut short (see files.recover_interrupted_writes)."""
    for place in (folder, folder / BEST_FOLDER):
        recover_interrupted_writes(place)


def save_best(folder: Path, task: str, model, tokenizer, epoch: int, dev: dict) -> None:
    """Keep this epoch's model as `task`'s best checkpoint: with hard sharing the whole model, with lora or
    soft sharing only `task`'s part (its adapter or its encoder copy, and its head)."""
    with saving(f"{task}'s best checkpoint (epoch {epoch})", best_folder(folder, task)):
        if sharing_of(model) == "hard":
            save_model(model, tokenizer, best_folder(folder, task), {"epoch": epoch, "dev": dev})
        else:
            save_task_checkpoint(model, task, best_folder(folder, task), {"epoch": epoch, "dev": dev})


def saved_best_epoch(folder: Path, task: str) -> int | None:
    """The epoch of the model kept in best/<task>/, or None when there is none (or it cannot be read)."""
    try:
        return best_description(best_folder(folder, task)).get("epoch")
    except OSError:
        return None


def save_checkpoint(folder: Path, state: TrainingState) -> None:
    """Everything needed to continue after `state.epoch`: the model's weights and `state.state_dict()`.

    The history travels in the checkpoint, so a crash between writing last/ and history.json loses nothing.
    """
    with saving(f"the checkpoint of epoch {state.epoch}", last_folder(folder)), \
            staged_folder(last_folder(folder)) as staging:
        if sharing_of(state.model) == "hard":
            save_model(state.model, state.tokenizer, staging)
        else:  # the frozen encoder is rebuilt from the run's settings
            save_file(trained_weights(state.model), staging / TRAINED_WEIGHTS_FILE)
        # through a Python file: a full disk raises OSError, not torch's RuntimeError "unexpected pos"
        with open(staging / STATE_FILE, "wb") as handle:
            torch.save(state.state_dict(), handle)


def has_checkpoint(folder: Path) -> bool:
    return (last_folder(folder) / STATE_FILE).exists()


def restore_checkpoint(folder: Path, state: TrainingState) -> None:
    """Load the run's last/ into `state`: the model's weights, and everything `state_dict` holds."""
    checkpoint = last_folder(folder)
    try:
        if sharing_of(state.model) == "hard":
            restore_weights(state.model, checkpoint)
        else:
            load_trained_weights(state.model, load_file(checkpoint / TRAINED_WEIGHTS_FILE))
        # weights_only: tensors, numbers and strings only, so loading runs no code
        state.load_state_dict(torch.load(checkpoint / STATE_FILE, weights_only=True))
    except Exception as error:  # torch, pickle and a foreign file each raise their own kinds
        reason = (str(error).splitlines() or [""])[0][:300]
        raise OSError(f"cannot resume from {checkpoint}: it is damaged or not this run's checkpoint "
                      f"({error.__class__.__name__}: {reason})") from error

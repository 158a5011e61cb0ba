"""Lesson 4's checks (notebooks/04_training): one training step, each task's best epoch, and a
hand-written loop compared with `fit`."""

from __future__ import annotations

import contextlib
import copy
import math
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import TrainConfig
from ..train import linear_warmup_schedule, make_optimizer, train_step
from .fixtures import real_batch, task, tiny_model
from .verdicts import Wrong, as_number, call, exercise, name_the_mistake


RECORDED_HISTORY = Path(__file__).parent.parent / "recorded" / "history_5_epochs.csv"


class PlainTorch:
    """What `train.train_step` asks of Accelerate, done by plain torch on one device without mixed
    precision; it keeps the gradient norm it found before each clipping."""

    def __init__(self):
        self.norms_before_clipping: list[float] = []

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm: float) -> torch.Tensor:
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        self.norms_before_clipping.append(float(norm))
        return norm


def one_device_run(model: nn.Module, optimizer, scheduler, one_device: PlainTorch,
                   max_grad_norm: float) -> SimpleNamespace:
    """The parts of a `train.Run` that `train.train_step` uses: the model, Accelerate (here plain torch),
    the clipping norm, the model as the state holds it (for its penalty), the optimizer and its schedule."""
    return SimpleNamespace(model=model, accelerator=one_device,
                           config=SimpleNamespace(max_grad_norm=max_grad_norm),
                           state=SimpleNamespace(model=model, optimizer=optimizer, scheduler=scheduler))


def gradient_norm(model: nn.Module) -> float | None:
    """The norm of all gradients together, or None when no parameter has one."""
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else None


@dataclass
class StepRecord:
    """What happened during a training step: the order of the calls and the gradient each update used."""

    events: list[str]
    norm_at_update: list[float | None]


def watched_training(model: nn.Module, steps: int):
    """A fresh optimiser and linear schedule for `model`, both watched: (optimizer, scheduler, record).
    Each optimizer.step() records the gradient norm it is about to use, each scheduler.step() that it ran."""
    optimizer = make_optimizer(model, TrainConfig(learning_rate=1e-3))
    record = StepRecord([], [])
    update = optimizer.step

    def watched_update(self, *args, **kwargs):
        record.events.append("optimizer.step")
        record.norm_at_update.append(gradient_norm(model))
        return update(*args, **kwargs)

    # a method of the optimiser, set before the schedule is made: the schedule wraps optimizer.step in turn
    optimizer.step = types.MethodType(watched_update, optimizer)
    scheduler = linear_warmup_schedule(optimizer, 0, steps)
    schedule = scheduler.step

    def watched_schedule(*args, **kwargs):
        record.events.append("scheduler.step")
        return schedule(*args, **kwargs)

    scheduler.step = watched_schedule
    return optimizer, scheduler, record


@contextlib.contextmanager
def watched_calls(record: StepRecord):
    """Within this block, every loss.backward() and torch.nn.utils.clip_grad_norm_ is recorded in `record`."""
    clip, backward = torch.nn.utils.clip_grad_norm_, torch.autograd.backward

    def watched_clip(*args, **kwargs):
        record.events.append("clip")
        return clip(*args, **kwargs)

    def watched_backward(*args, **kwargs):  # loss.backward() calls torch.autograd.backward
        record.events.append("backward")
        return backward(*args, **kwargs)

    torch.nn.utils.clip_grad_norm_, torch.autograd.backward = watched_clip, watched_backward
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_, torch.autograd.backward = clip, backward


def largest_difference(model: nn.Module, other: nn.Module) -> float:
    return max(float((a - b).detach().abs().max()) for a, b in zip(model.parameters(), other.parameters()))


@exercise("Lesson 4, exercise 1: one multi-task training step")
def check_train_step(step, data_dir: str | None = None) -> str:
    """`train_step(model, batch, task, optimizer, scheduler, max_grad_norm) -> loss`: forward through the
    task's head, cross-entropy, backward, clip the gradient, optimiser step, schedule step, clear the
    gradients. Run twice (a sentiment batch, then an emotion batch) on a tiny model, against the package's
    `train_step`."""
    names = ("sentiment", "emotion")
    initial = tiny_model({name: task(name, data_dir).label_names for name in names})
    batches = [(name, real_batch(name, 0, 16, data_dir)) for name in names]
    max_grad_norm = 0.05  # small, so that clipping changes every step

    reference, one_device = copy.deepcopy(initial), PlainTorch()
    optimizer, scheduler, _ = watched_training(reference, len(batches))
    expected_losses, expected_models = [], []
    for name, batch in batches:
        run = one_device_run(reference, optimizer, scheduler, one_device, max_grad_norm)
        expected_losses.append(float(train_step(run, batch, name)))
        expected_models.append(copy.deepcopy(reference))
    assert min(one_device.norms_before_clipping) > 2 * max_grad_norm, "clipping must change these steps"

    model = copy.deepcopy(initial)
    optimizer, scheduler, record = watched_training(model, len(batches))
    left_over = []
    for number, (name, batch) in enumerate(batches):
        before, seen = copy.deepcopy(model), len(record.events)
        try:
            with watched_calls(record), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns when the schedule steps first; we explain it
                loss = as_number(call(step, model, batch, name, optimizer, scheduler, max_grad_norm),
                                 "your step")
        except Wrong as wrong:
            raise type(wrong)(f"step {number + 1} ({name} batch): {wrong}") from None  # a stub stays NotDone
        explain_step(record, seen, f"step {number + 1} ({name} batch)", name, batch, loss,
                     expected_losses[number], before, largest_difference(model, expected_models[number]),
                     left_over, max_grad_norm)
        left_over.append(gradient_norm(model) or 0.0)
    note = (" You clear the gradients at the start of the step rather than at its end: that works too, but "
            "they are then kept in memory between steps." if left_over[0] else "")
    return (f"loss {expected_losses[0]:.4f} on a sentiment batch, then {expected_losses[1]:.4f} on an "
            f"emotion batch; the gradient clipped from norm {one_device.norms_before_clipping[0]:.2f} to "
            f"{max_grad_norm} BEFORE optimizer.step(), the schedule stepped after it, and after two steps "
            "every weight equals what the package's train_step gives." + note)


def explain_step(record: StepRecord, seen: int, which: str, name: str, batch: dict, loss: float,
                 expected_loss: float, before: nn.Module, difference: float, left_over: list[float],
                 max_grad_norm: float) -> None:
    """Raise `Wrong` with the first mistake that one call of a student's training step shows."""
    events = record.events[seen:]
    updates = [i for i, event in enumerate(events) if event == "optimizer.step"]
    if not updates:
        raise Wrong(f"{which}: optimizer.step() was never called, so the weights did not change")
    norm = record.norm_at_update[len(record.norm_at_update) - len(updates)]  # the first update of this step
    if norm is None and "backward" not in events[:updates[0]]:
        raise Wrong(f"{which}: when optimizer.step() ran there was no gradient: loss.backward() was never "
                    "called before it")
    if norm is None or norm == 0.0:
        cleared = "removed them (set them to None)" if norm is None else "set them to zeros"
        raise Wrong(f"{which}: loss.backward() ran, but when optimizer.step() ran the gradients were gone: "
                    f"zero_grad() {cleared} between loss.backward() and optimizer.step(), so the update "
                    "learnt nothing from this batch. Clear the gradients after optimizer.step() instead")
    if not math.isclose(loss, expected_loss, rel_tol=1e-5):
        with torch.no_grad():
            other_heads = [
                (float(before.loss(batch, other)),
                 (f"your loss is that of the {other} head on a {name} batch: pass `task` to the model, so "
                  "that every batch goes through its own task's head"))
                for other in before.tasks
                if other != name and len(before.task_labels[other]) > int(batch["labels"].max())]
        mistake = name_the_mistake(loss, [
            *other_heads,
            (expected_loss * len(batch["labels"]),
             ("you summed the loss over the batch (reduction='sum'); the mean keeps the step size "
              "independent of the batch size")),
        ], lambda a, b: math.isclose(a, b, rel_tol=1e-5))
        raise Wrong(f"{which}: your loss is {loss:.4f}, the package's is {expected_loss:.4f}" + (
            mistake or ": compute F.cross_entropy(model(input_ids, attention_mask, task), labels)"))
    if norm > max_grad_norm * 1.001:
        if "clip" in events[updates[0]:]:
            raise Wrong(f"{which}: your clipping runs after optimizer.step(), so the step used the unclipped "
                        f"gradient (norm {norm:.3f}, above max_grad_norm = {max_grad_norm}). Clip between "
                        "loss.backward() and optimizer.step()")
        raise Wrong(f"{which}: optimizer.step() used an unclipped gradient (norm {norm:.3f}, above "
                    f"max_grad_norm = {max_grad_norm}). Clip it with "
                    "torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between "
                    "loss.backward() and optimizer.step()")
    schedules = [i for i, event in enumerate(events) if event == "scheduler.step"]
    if not schedules:
        raise Wrong(f"{which}: the learning rate never moved: call scheduler.step() after optimizer.step()")
    if schedules[0] < updates[0]:
        raise Wrong(f"{which}: you stepped the schedule before the optimizer, so this update used the next "
                    "step's learning rate: call scheduler.step() after optimizer.step()")
    if difference > 1e-6:
        if left_over and left_over[0] > 0:
            raise Wrong(f"{which}: after step 1 your gradients were still there (norm {left_over[0]:.3f}), "
                        "and loss.backward() ADDS to them, so step 2 used the sum of the sentiment and the "
                        "emotion gradients. Call optimizer.zero_grad() after optimizer.step()")
        raise Wrong(f"{which}: your weights after the step differ from the package's train_step (largest "
                    f"difference {difference:.2g}): forward, loss, backward, clip, optimizer.step(), "
                    "scheduler.step(), zero_grad(), in that order and once each")


def best_epochs_by_fit(history: pd.DataFrame) -> dict[str, int]:
    """Each task's best epoch as `fit` chose it while training: the last epoch whose row says best_so_far."""
    flagged = history[history["best_so_far"].astype(bool)]
    return {name: int(rows["epoch"].max()) for name, rows in flagged.groupby("task", sort=False)}


def recorded_history() -> pd.DataFrame:
    """The history of a real 5-epoch run of the packaged MiniLM on emotion + sentiment (recorded/README)."""
    return pd.read_csv(RECORDED_HISTORY)


# A made-up history (5 epochs) in which every wrong rule picks other epochs than the right one: emotion's
# dev loss, accuracy, macro-F1 (its official score, tied at epochs 3 and 4) and macro-recall peak apart,
# and so do sentiment's (its official score is macro-recall). The real run's measures peak too close.
MEASURES_APART = {
    "emotion": {"dev_loss": [1.20, 1.00, 0.95, 1.05, 1.10], "dev_accuracy": [0.50, 0.62, 0.60, 0.58, 0.59],
                "dev_macro_f1": [0.30, 0.45, 0.52, 0.52, 0.50],
                "dev_macro_recall": [0.32, 0.50, 0.49, 0.51, 0.53]},
    "sentiment": {"dev_loss": [0.95, 0.90, 0.88, 0.86, 0.99], "dev_accuracy": [0.52, 0.58, 0.57, 0.61, 0.60],
                  "dev_macro_f1": [0.35, 0.48, 0.50, 0.47, 0.46],
                  "dev_macro_recall": [0.40, 0.58, 0.50, 0.49, 0.48]},
}


def history_of_measures_apart() -> pd.DataFrame:
    """`MEASURES_APART` as a history table like fit's: one row per epoch and task, with dev_official and
    best_so_far (strictly better than every earlier epoch) as fit writes them."""
    rows = []
    for epoch in range(1, 6):
        for name, measures in MEASURES_APART.items():
            row = {"epoch": epoch, "task": name, **{key: value[epoch - 1] for key, value in measures.items()}}
            row["dev_official"] = row["dev_macro_recall" if name == "sentiment" else "dev_macro_f1"]
            earlier = [r["dev_official"] for r in rows if r["task"] == name]
            rows.append({**row, "best_so_far": row["dev_official"] > max(earlier, default=-1.0)})
    return pd.DataFrame(rows)


def as_epoch(value) -> int | None:
    """An epoch number from a student's answer (int, NumPy integer, or a whole float), else None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def epochs_by(rows: dict[str, pd.DataFrame], column: str, lowest: bool = False) -> dict[str, int]:
    """Each task's epoch of the highest (or lowest) value of `column`, the first of equal ones."""
    return {name: int(own.loc[own[column].idxmin() if lowest else own[column].idxmax(), "epoch"])
            for name, own in rows.items()}


def wrong_rules(table: pd.DataFrame, rows: dict[str, pd.DataFrame]) -> list[tuple[dict, str]]:
    """What typical wrong rules choose on `table`, each with its explanation."""
    mean_best = int(table.groupby("epoch")["dev_official"].mean().idxmax())
    last_of_equal = {name: int(own.loc[own["dev_official"] == own["dev_official"].max(), "epoch"].max())
                     for name, own in rows.items()}
    return [
        ({name: int(own["epoch"].max()) for name, own in rows.items()},
         "you took the last epoch (the original tutorial's mistake): the best is where the dev score peaks"),
        (epochs_by(rows, "dev_loss", lowest=True),
         ("you took the epoch of the lowest dev LOSS; the best epoch is judged by the task's official dev "
          "score, dev_official")),
        (epochs_by(rows, "dev_accuracy"),
         ("you took the epoch of the highest dev ACCURACY; the best epoch is judged by the task's official "
          "dev score, dev_official")),
        (epochs_by(rows, "dev_macro_f1"),
         ("you used dev_macro_f1 for every task, but each task has its own official score (sentiment's is "
          "macro-recall): use dev_official")),
        (epochs_by(rows, "dev_macro_recall"),
         ("you used dev_macro_recall for every task, but each task has its own official score (emotion's is "
          "macro-F1): use dev_official")),
        (last_of_equal,
         ("of epochs with equal scores you took the last; fit keeps the first, since a later epoch must be "
          "strictly better to replace it")),
        ({name: mean_best for name in rows},
         ("you picked one epoch for all the tasks (the best mean score); the tasks need not peak together, "
          "so each gets its own")),
        ({name: int(own["dev_official"].idxmax()) for name, own in rows.items()},
         "you returned row numbers of the table, not epochs: read the 'epoch' column of the best row"),
    ]


@exercise("Lesson 4, exercise 2: each task's best epoch")
def check_best_epochs(best_epochs, history: pd.DataFrame | None = None) -> str:
    """`best_epochs(history) -> {task: epoch}`: for every task, the epoch of its highest official dev score
    (`dev_official`; the first of equal ones). Tried on a made-up history whose measures peak apart, on a
    recorded 5-epoch run, and on `history` if given."""
    histories = {"a made-up history whose measures peak apart": history_of_measures_apart(),
                 "the recorded 5-epoch run": recorded_history()}
    if history is not None:
        histories["your run"] = history
    found = []
    for which, table in histories.items():
        expected = best_epochs_by_fit(table)
        answer = call(best_epochs, table.copy())
        if not isinstance(answer, dict):
            raise Wrong(f"your function returned a {type(answer).__name__}; return a dict {{task: epoch}}")
        if set(answer) != set(expected):
            raise Wrong(f"on {which} your keys are {sorted(map(str, answer))}; expected one per task: "
                        f"{sorted(expected)}")
        given = {name: as_epoch(epoch) for name, epoch in answer.items()}
        if given != expected:
            rows = {name: table[table["task"] == name] for name in expected}
            mistake = name_the_mistake(given, wrong_rules(table, rows), lambda a, b: a == b)
            name = next(name for name in expected if given[name] != expected[name])
            own = rows[name]
            scores = ", ".join(f"{e}: {score:.3f}" for e, score in zip(own["epoch"], own["dev_official"]))
            raise Wrong(f"on {which}, {name}'s best epoch is {expected[name]}, you said {answer[name]!r}"
                        + mistake + f". Its dev scores by epoch: {scores}")
        found.append(f"{which}: " + ", ".join(f"{name} {epoch}" for name, epoch in expected.items()))
    return ("; ".join(found) + ". These are the epochs fit keeps as best/<task>/: each task is tested with "
            "its own best checkpoint.")


def hand_loop_vs_fit(steps: list[dict], history: pd.DataFrame, epoch: int = 1,
                     tolerance: float = 1e-4) -> pd.DataFrame:
    """Per task, the mean training loss of a hand-written loop's steps beside `fit`'s for the same epoch.

    `steps` holds one dict per step: {"task": name, "loss": float, "size": tweets in the batch}. When both
    loops start from the same seed they see the same batches, so the losses agree to within `tolerance`.
    """
    log = pd.DataFrame(steps, columns=None if steps else ["task", "loss", "size"])
    missing = sorted({"task", "loss", "size"} - set(log.columns))
    if missing:
        raise ValueError(f"each step needs 'task', 'loss' and 'size'; missing {missing}")
    in_fit = history[history["epoch"] == epoch].set_index("task")
    unknown = [name for name in dict.fromkeys(log["task"]) if name not in in_fit.index]
    if unknown:
        raise ValueError(f"fit's history has no row for task {unknown[0]!r} in epoch {epoch}")
    rows = []
    for name in [name for name in in_fit.index if name in set(log["task"])]:  # in fit's order of tasks
        own, fitted = log[log["task"] == name], in_fit.loc[[name]]
        by_hand = float((own["loss"] * own["size"]).sum() / own["size"].sum())
        rows.append({"task": name, "steps": len(own), "tweets": int(own["size"].sum()),
                     "fit's tweets": int(fitted["train_examples"].iloc[0]), "hand-written loop": by_hand,
                     "fit": float(fitted["train_loss"].iloc[0])})
    table = pd.DataFrame(rows).set_index("task")
    table["difference"] = table["hand-written loop"] - table["fit"]
    table["same"] = (table["difference"].abs() <= tolerance) & (table["tweets"] == table["fit's tweets"])
    return table

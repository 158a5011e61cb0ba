"""Lesson step 4, watching a run: its curves in TensorBoard, through Accelerate's trackers.

With `report_to="tensorboard"` a run also writes RUN/logs/: every `log_every` steps each task's training
loss and the learning rate; after every epoch each task's dev scores, the task mix, the task weights and the
gradient probe's cosines. `tensorboard --logdir RUN/logs` draws them; a resumed run appends to them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import LRScheduler

from .config import TrainConfig
from .runs import TRACKING_FOLDER

# what the history calls a column, and the tag its value has in TensorBoard (one curve per task)
EPOCH_TAGS = {"train_loss": "train/epoch_loss", "sampling_probability": "task_mix",
              "weight": "task_weight", "gradient_cosine": "gradient_cosine"}


def start_tracking(accelerator: Accelerator, config: TrainConfig, step: int) -> None:
    """Open the run's tracker at global step `step` (0, or the checkpoint's when resuming).

    A resumed run writes a new event file beside the old ones; what the old ones logged after the
    checkpoint (the epoch that was cut short) is hidden by TensorBoard (`purge_step`), then logged again.
    """
    if config.report_to is None:
        return
    if config.report_to not in [str(tracker) for tracker in accelerator.log_with]:
        raise ValueError(f"report_to={config.report_to!r} needs an Accelerator made with "
                         f"log_with={config.report_to!r} and the run folder as project_dir")
    resumed = {"purge_step": step + 1} if step else {}
    accelerator.init_trackers(TRACKING_FOLDER, init_kwargs={config.report_to: resumed})
    if not step:  # TensorBoard's Text tab: the settings beside the curves (indented: shown as code)
        settings = json.dumps(dataclasses.asdict(config), indent=1)
        accelerator.log({"config": "    " + settings.replace("\n", "\n    ")}, step=0)


def stop_tracking(accelerator: Accelerator) -> None:
    """Close the run's trackers. (Not `accelerator.end_training()`: it also ends the processes' group.)"""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()


@dataclass
class StepLog:
    """Each task's training loss and the learning rate, logged every `every` steps and at an epoch's end.

    The epoch's running loss sums stay on the device (train.EpochRecord); a log reads them, and the examples
    counted so far, in one transfer: an interval's loss is what the sums grew by over the examples between.
    """

    accelerator: Accelerator
    every: int
    steps: int  # in this epoch
    tracking: bool
    taken: int = 0  # steps of this epoch so far
    logged: dict[str, tuple[float, float]] = field(default_factory=dict)  # task -> (loss sum, examples)

    def after_step(self, scheduler: LRScheduler, loss_sum: dict[str, torch.Tensor],
                   examples: dict[str, int]) -> None:
        """Called after every optimizer step with the epoch's running sums. The schedule counts the steps
        (its count is restored on resume) and has the learning rate it reached (that of the next step)."""
        self.taken += 1
        step = scheduler.last_epoch
        if not self.tracking or (step % self.every and self.taken < self.steps):
            return
        device = self.accelerator.device
        counts = torch.tensor([float(examples[task]) for task in loss_sum], device=device)
        totals = self.accelerator.reduce(torch.cat([torch.stack(list(loss_sum.values())), counts]), "sum")
        totals = totals.tolist()  # the one wait for the device in `every` steps
        values = {"train/learning_rate": scheduler.get_last_lr()[0]}
        for task, loss, seen in zip(loss_sum, totals, totals[len(loss_sum):]):
            before_loss, before_seen = self.logged.get(task, (0.0, 0.0))
            if seen > before_seen:  # the task trained in this interval
                values[f"train/loss/{task}"] = (loss - before_loss) / (seen - before_seen)
            self.logged[task] = (loss, seen)
        self.accelerator.log(values, step=step)


def log_epoch(accelerator: Accelerator, rows: list[dict], step: int) -> None:
    """Log an epoch's history rows (one per task) at global step `step`: dev scores, mix, weights, probe."""
    values = {"epoch": rows[0]["epoch"], "speed/examples_per_second": rows[0]["examples_per_second"]}
    for row in rows:
        task = row["task"]
        values |= {f"dev/{key.removeprefix('dev_')}/{task}": float(value) for key, value in row.items()
                   if key.startswith("dev_")}
        values |= {f"{tag}/{task}": float(row[column]) for column, tag in EPOCH_TAGS.items() if column in row}
    accelerator.log(values, step=step)

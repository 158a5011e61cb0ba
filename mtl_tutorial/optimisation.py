"""Lesson 4's optimiser explained: a run's first steps, taken as `fit` takes them, every number kept.

Each step's loss, the learning rate its scheduler gave, the gradient's norm before clipping and how far
AdamW moved the weights; the whole run's learning-rate schedule; cross-entropy from one batch's logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed

from .batching import BatchStream, batches_per_pass, encode_task, to_device
from .config import TrainConfig
from .model import build_model
from .runs import load_run_tasks
from .sampling import task_schedule
from .train import linear_warmup_schedule


@dataclass
class RecordedSteps:
    """What `record_steps` saw: one row per step, the run's whole schedule, and one batch's logits."""

    steps: pd.DataFrame  # step, task, loss, learning_rate, gradient_norm (before clipping), clipped, and
    #                      update_size: the median distance a weight with a gradient moved at that step
    schedule: pd.Series  # the learning rate of every step of the whole run, from its own scheduler
    warmup_steps: int
    max_grad_norm: float
    first_batch: pd.DataFrame  # the first step's tweets: label, logits, probability of the label, loss


def steps_of_run(config: TrainConfig, sizes: dict[str, int]) -> tuple[int, int]:
    """(steps per epoch, warm-up steps) of a sampling run: all tasks' batches per epoch, warm-up a share."""
    per_epoch = sum(batches_per_pass(size, config.batch_size) for size in sizes.values())
    return per_epoch, int(config.warmup_ratio * per_epoch * config.epochs)


def learning_rates(optimizer, warmup_steps: int, total_steps: int) -> pd.Series:
    """Every step's learning rate, read from a scheduler made as `fit` makes it (the optimizer is left as it
    was: the scheduler is stepped on a copy of its settings)."""
    copy = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=optimizer.defaults["lr"])
    scheduler = linear_warmup_schedule(copy, warmup_steps, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(scheduler.get_last_lr()[0])
        copy.step()
        scheduler.step()
    return pd.Series(rates, index=pd.RangeIndex(1, total_steps + 1, name="step"), name="learning_rate")


def cross_entropy_table(logits: torch.Tensor, labels: torch.Tensor, label_names: list[str]) -> pd.DataFrame:
    """Cross-entropy by hand, one row per tweet: softmax of the logits, the true label's probability p and
    the loss -log p. Their mean is `F.cross_entropy(logits, labels)`."""
    probabilities = logits.softmax(-1)
    chosen = probabilities[torch.arange(len(labels)), labels]
    table = pd.DataFrame(logits.numpy(), columns=[f"logit {name}" for name in label_names])
    table.insert(0, "label", [label_names[label] for label in labels.tolist()])
    table["p(label)"] = chosen.numpy()
    table["loss = -log p"] = -chosen.log().numpy()
    return table


def record_steps(config: TrainConfig, steps: int = 30, device: str | None = None) -> RecordedSteps:
    """Take the first `steps` training steps (at most one epoch) of a run of `config` as `fit` does (same
    seed, model, batches, task schedule, AdamW, warm-up and decay over the whole run, clipping before the
    step) and record each one. One-task-per-step runs only; in fp32, on the GPU if there is one."""
    if config.strategy != "sample":
        raise ValueError(f"record_steps follows a sampling run; this config's strategy is "
                         f"{config.strategy!r}")
    set_seed(config.seed)
    tasks = load_run_tasks(config)
    model, tokenizer = build_model({name: task.label_names for name, task in tasks.items()}, config.model,
                                   config.pooling)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    train = {name: encode_task(tokenizer, task, config.max_length)["train"] for name, task in tasks.items()}
    streams = {name: BatchStream(split, config.batch_size, config.seed, config.group_by_length)
               for name, split in train.items()}
    sizes = {name: len(split) for name, split in train.items()}
    per_epoch, warmup = steps_of_run(config, sizes)
    total = per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,  # as fit makes it
                                  weight_decay=config.weight_decay, fused=True)
    scheduler = linear_warmup_schedule(optimizer, warmup, total)
    schedule = learning_rates(optimizer, warmup, total)
    torch.manual_seed(config.seed + 1)  # fit seeds epoch 1's dropout so
    model.train()
    rows, first_batch = [], None
    order = task_schedule(sizes, per_epoch, config.sampler, config.seed, config.temperature, 1, config.epochs)
    for step, task in enumerate(order[:steps], start=1):
        batch = to_device(next(streams[task]), device)
        logits = model(batch["input_ids"], batch["attention_mask"], task)
        loss = F.cross_entropy(logits, batch["labels"])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm).item()
        rate = scheduler.get_last_lr()[0]
        touched = [p for p in model.parameters() if p.grad is not None]
        has_gradient = torch.cat([(p.grad != 0).flatten() for p in touched])
        before = torch.cat([p.detach().flatten() for p in touched])  # one copy of all weights, not one each
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        change = (torch.cat([p.detach().flatten() for p in touched]) - before)[has_gradient].abs()
        rows.append({"step": step, "task": task, "loss": loss.item(), "learning_rate": rate,
                     "gradient_norm": norm, "clipped": norm > config.max_grad_norm,
                     "update_size": change.median().item() if len(change) else 0.0})
        if first_batch is None:
            first_batch = cross_entropy_table(logits.detach().cpu(), batch["labels"].cpu(),
                                              tasks[task].label_names)
            first_batch.attrs["task"] = task
    return RecordedSteps(pd.DataFrame(rows), schedule, warmup, config.max_grad_norm, first_batch)


def uniform_guess_loss(num_labels: int) -> float:
    """The cross-entropy of a head that gives every label the same probability: log(number of labels)."""
    return math.log(num_labels)

"""Lesson step 3, task sampling: at each training step, which task's batch comes next?

With 3k emotion tweets and 45k sentiment tweets, sampling in proportion to size lets the big task
dominate; uniform sampling over-fits the small one. Temperature and annealing sit in between.
"""

from __future__ import annotations

import pandas as pd
import torch

SAMPLERS = ("proportional", "uniform", "temperature", "annealed", "round_robin")


def task_probabilities(sizes: dict[str, int], sampler: str = "proportional", temperature: float = 2.0,
                       epoch: int = 1, num_epochs: int = 1) -> dict[str, float]:
    """The probability of drawing each task at one step, given the tasks' training-set sizes n_i.

    proportional: p_i ∝ n_i;  uniform: p_i = 1/K (round_robin gives the same mix, in turn);
    temperature: p_i ∝ n_i^(1/T);  annealed (Stickland & Murray 2019): p_i ∝ n_i^α with
    α = 1 - 0.8 (e - 1) / (E - 1) falling from 1 in the first epoch e=1 to 0.2 in the last, e=E.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if not sizes or any(size <= 0 for size in sizes.values()):
        raise ValueError(f"every task needs at least one training example, got sizes {sizes}")
    if sampler in ("uniform", "round_robin"):
        exponent = 0.0
    elif sampler == "proportional":
        exponent = 1.0
    elif sampler == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        exponent = 1.0 / temperature
    else:
        exponent = 1.0 - 0.8 * (epoch - 1) / (num_epochs - 1) if num_epochs > 1 else 1.0
    weights = {task: size**exponent for task, size in sizes.items()}
    total = sum(weights.values())
    return {task: weight / total for task, weight in weights.items()}


def task_schedule(sizes: dict[str, int], steps: int, sampler: str = "proportional", seed: int = 77,
                  temperature: float = 2.0, epoch: int = 1, num_epochs: int = 1) -> list[str]:
    """The task of every step of one epoch, drawn from `task_probabilities`.

    The draw depends only on (seed, epoch), so every process of a multi-process run, and a run
    resumed after a crash, gets exactly the same schedule.
    """
    tasks = list(sizes)
    if sampler == "round_robin":
        return [tasks[step % len(tasks)] for step in range(steps)]
    probabilities = task_probabilities(sizes, sampler, temperature, epoch, num_epochs)
    generator = torch.Generator().manual_seed(seed * 1_000 + epoch)
    weights = torch.tensor([probabilities[task] for task in tasks], dtype=torch.float64)
    draws = torch.multinomial(weights, steps, replacement=True, generator=generator)
    return [tasks[i] for i in draws.tolist()]


def passes_per_epoch(sizes: dict[str, int], batch_size: int = 32, samplers=("proportional", "temperature", "uniform"),
                     temperature: float = 2.0) -> pd.DataFrame:
    """How many times each task's training set is gone through in one epoch, under each sampler.

    An epoch has as many steps as all tasks have batches; a task drawn with probability p gets
    p × steps of them on average. More than 1 means its tweets are seen repeatedly: a risk of over-fitting.
    """
    batches = {task: -(-size // batch_size) for task, size in sizes.items()}
    steps = sum(batches.values())
    rows = {sampler: {task: p * steps / batches[task]
                      for task, p in task_probabilities(sizes, sampler, temperature).items()}
            for sampler in samplers}
    return pd.DataFrame(rows).T

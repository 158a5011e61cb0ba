"""Lesson step 3, task sampling: at each training step, which task's batch comes next?

With 3k emotion tweets and 45k sentiment tweets, sampling in proportion to size lets the big task
dominate; uniform sampling over-fits the small one. Temperature and annealing sit in between.
The adaptive sampler starts from temperature sampling and, after each epoch, gives more steps to the
tasks whose dev score fell furthest below their target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd
import torch

ADAPTIVE = "adaptive"  # the mix that follows the dev scores (target_scores are for it alone)
ADAPTIVE_SHARE = 0.5  # the share of the steps that the adaptive sampler moves towards the lagging tasks


@dataclass
class SamplingEpoch:
    """What a sampler may look at to plan one epoch: the tasks' training-set sizes n_i, the epoch e of E,
    the number of steps, the run's seed and temperature, and the official dev scores of earlier epochs."""

    sizes: dict[str, int]
    steps: int = 0
    epoch: int = 1
    num_epochs: int = 1
    seed: int = 77
    temperature: float = 2.0
    dev_scores: dict[str, list[float]] = field(default_factory=dict)
    targets: dict[str, float] | None = None


@dataclass
class TaskMix:
    """A sampler's plan for one epoch: each task's probability at a step, and the task of every step."""

    probabilities: dict[str, float]
    tasks: list[str]


def drawn(epoch: SamplingEpoch, weights: dict[str, float]) -> TaskMix:
    """The mix p_i ∝ weights_i, and `epoch.steps` tasks drawn from it (see draw_tasks)."""
    total = sum(weights.values())
    probabilities = {task: weight / total for task, weight in weights.items()}
    return TaskMix(probabilities, draw_tasks(probabilities, epoch.steps, epoch.seed, epoch.epoch))


def size_powers(sizes: dict[str, int], exponent: float) -> dict[str, float]:
    return {task: size**exponent for task, size in sizes.items()}


def proportional(epoch: SamplingEpoch) -> TaskMix:
    """p_i ∝ n_i: every batch of every task once per epoch, on average; the big task dominates."""
    return drawn(epoch, size_powers(epoch.sizes, 1.0))


def uniform(epoch: SamplingEpoch) -> TaskMix:
    """p_i = 1/K: every task as often; the small one is seen many times per epoch."""
    return drawn(epoch, size_powers(epoch.sizes, 0.0))


def temperature(epoch: SamplingEpoch) -> TaskMix:
    """p_i ∝ n_i^(1/T): T=1 is proportional, a large T nearly uniform."""
    if epoch.temperature <= 0:
        raise ValueError(f"temperature must be positive, got {epoch.temperature}")
    return drawn(epoch, size_powers(epoch.sizes, 1.0 / epoch.temperature))


def annealed(epoch: SamplingEpoch) -> TaskMix:
    """Stickland & Murray 2019: p_i ∝ n_i^α, α = 1 - 0.8 (e - 1) / (E - 1), from 1 in epoch 1 to 0.2."""
    e, last = epoch.epoch, epoch.num_epochs
    return drawn(epoch, size_powers(epoch.sizes, 1.0 - 0.8 * (e - 1) / (last - 1) if last > 1 else 1.0))


def round_robin(epoch: SamplingEpoch) -> TaskMix:
    """Uniform's mix, taken in turn instead of drawn: task 1, task 2, ..., task K, task 1, ..."""
    tasks = list(epoch.sizes)
    return TaskMix(uniform(dataclasses.replace(epoch, steps=0)).probabilities,
                   [tasks[step % len(tasks)] for step in range(epoch.steps)])


def adaptive(epoch: SamplingEpoch) -> TaskMix:
    """Temperature sampling, with a share of the steps moved to the tasks whose dev score lags most
    (adaptive_probabilities)."""
    base = temperature(dataclasses.replace(epoch, steps=0)).probabilities
    scores = {task: epoch.dev_scores.get(task, []) for task in epoch.sizes}
    probabilities = adaptive_probabilities(base, scores, epoch.targets)
    return TaskMix(probabilities, draw_tasks(probabilities, epoch.steps, epoch.seed, epoch.epoch))


# The samplers by name: TrainConfig, the command line and the training panel offer these. A new sampler
# is a function from a SamplingEpoch to a TaskMix, and one line here.
SAMPLERS = {"proportional": proportional, "uniform": uniform, "temperature": temperature,
            "annealed": annealed, "round_robin": round_robin, ADAPTIVE: adaptive}


def plan_epoch(sampler: str, epoch: SamplingEpoch) -> TaskMix:
    """The mix and schedule of one epoch under the sampler called `sampler`."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if not epoch.sizes or any(size <= 0 for size in epoch.sizes.values()):
        raise ValueError(f"every task needs at least one training example, got sizes {epoch.sizes}")
    return SAMPLERS[sampler](epoch)


def task_probabilities(sizes: dict[str, int], sampler: str = "proportional", temperature: float = 2.0,
                       epoch: int = 1, num_epochs: int = 1) -> dict[str, float]:
    """The probability of drawing each task at one step, given the tasks' training-set sizes n_i.

    proportional: p_i ∝ n_i;  uniform: p_i = 1/K (round_robin gives the same mix, in turn);
    temperature: p_i ∝ n_i^(1/T);  annealed (Stickland & Murray 2019): p_i ∝ n_i^α with
    α = 1 - 0.8 (e - 1) / (E - 1) falling from 1 in the first epoch e=1 to 0.2 in the last, e=E.
    """
    epoch_view = SamplingEpoch(sizes, 0, epoch, num_epochs, temperature=temperature)
    return plan_epoch(sampler, epoch_view).probabilities


def task_schedule(sizes: dict[str, int], steps: int, sampler: str = "proportional", seed: int = 77,
                  temperature: float = 2.0, epoch: int = 1, num_epochs: int = 1) -> list[str]:
    """The task of every step of one epoch, drawn from `task_probabilities` (round_robin: in turn)."""
    return plan_epoch(sampler, SamplingEpoch(sizes, steps, epoch, num_epochs, seed, temperature)).tasks


def draw_tasks(probabilities: dict[str, float], steps: int, seed: int = 77, epoch: int = 1) -> list[str]:
    """`steps` tasks drawn at random from `probabilities`.

    The draw depends only on (seed, epoch), so every process of a multi-process run, and a run
    resumed after a crash, gets exactly the same schedule.
    """
    tasks = list(probabilities)
    if steps == 0:  # the mix alone was asked for
        return []
    generator = torch.Generator().manual_seed(seed * 1_000 + epoch)
    weights = torch.tensor([probabilities[task] for task in tasks], dtype=torch.float64)
    draws = torch.multinomial(weights, steps, replacement=True, generator=generator)
    return [tasks[i] for i in draws.tolist()]


def adaptive_probabilities(base: dict[str, float], dev_scores: dict[str, list[float]],
                           targets: dict[str, float] | None = None,
                           share: float = ADAPTIVE_SHARE) -> dict[str, float]:
    """The adaptive sampler's mix for the next epoch (after Gottumukkala et al. 2020, dynamic sampling).

    A task's gap is how far its latest dev score lies below its target: `targets[task]` (e.g. its
    single-task score) or else its own best dev score so far. A share `1 - share` of the steps follows
    `base`, the rest goes to the tasks in proportion to their gaps: no task falls below (1 - share) * base.
    With no gap anywhere the mix is `base`: before any dev score, and without targets until a task's
    score falls below its best, so in epoch 3 at the earliest.
    """
    if not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1), got {share}")
    targets = targets or {}
    gaps = {task: max(targets.get(task, max(scores, default=0.0)) - scores[-1], 0.0) if scores else 0.0
            for task, scores in dev_scores.items()}
    total = sum(gaps.values())
    if total == 0:
        return dict(base)
    return {task: (1 - share) * probability + share * gaps[task] / total
            for task, probability in base.items()}


def passes_per_epoch(sizes: dict[str, int], batch_size: int = 32,
                     samplers=("proportional", "temperature", "uniform"),
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

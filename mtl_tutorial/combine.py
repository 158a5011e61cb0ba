"""Lesson step 6, when tasks pull apart: how one step on a batch of EVERY task combines the tasks.

Loss weighting adds the tasks' losses with a weight each (equal, or learned as in Kendall, Gal &
Cipolla 2018) and takes one gradient of the sum. Gradient aggregation (PCGrad, MGDA, UPGrad, from
torchjd) takes each task's own gradient on the shared encoder, one row of a matrix, and turns the
matrix into one gradient. Either way each head gets only its own task's gradient (times the task's
weight, under loss weighting). train.all_tasks_step uses these in a training step; they compute no loss.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

# The log-variances learn at their own rate: at a fine-tuning rate (2e-5) Adam would move them by
# about 0.02 in 1,000 steps, and the weights would stay equal.
LOG_VARIANCE_LEARNING_RATE = 1e-2


def uncertainty_weighted_loss(losses: torch.Tensor, log_variances: torch.Tensor) -> torch.Tensor:
    """Kendall, Gal & Cipolla (2018): sum_i exp(-s_i) L_i + s_i, with s_i the log-variance of task i.

    A task with a large loss learns a large s_i, so its weight exp(-s_i) shrinks; the + s_i stops all s_i
    growing without end. For fixed L_i the sum is smallest at s_i = log L_i.
    """
    return (torch.exp(-log_variances) * losses + log_variances).sum()


def pcgrad_pair(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """PCGrad for two gradients (Yu et al. 2020): if they conflict (negative dot product), each loses
    its component along the other; the step is the sum of the two."""
    dot = first @ second
    if dot >= 0:
        return first + second
    return (first - dot / (second @ second) * second) + (second - dot / (first @ first) * first)


def mgda_pair(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """MGDA for two gradients (Sener & Koltun 2018): the point of the segment between them nearest the
    origin, a g1 + (1 - a) g2 with a = (g2 - g1)·g2 / |g2 - g1|², kept within [0, 1]."""
    difference = second - first
    share = ((difference @ second) / (difference @ difference).clamp(min=1e-12)).clamp(0.0, 1.0)
    return share * first + (1 - share) * second


class LossWeighting(nn.Module):
    """A way of weighing the tasks' losses: the step takes the gradient of the sum of `loss_term`s.
    Its parameters, if any, are learned with the model (in the optimizer and the checkpoint)."""

    def loss_term(self, loss: torch.Tensor, task_index: int) -> torch.Tensor:
        """One task's term of the loss the step minimises."""
        raise NotImplementedError

    def weights(self, num_tasks: int) -> torch.Tensor:
        """Each task's weight in its term, for the history."""
        raise NotImplementedError


class GradientAggregation(nn.Module):
    """A way of turning the tasks' gradients on the shared encoder (the rows of a Jacobian) into one:
    `weights(jacobian)` gives each row's weight, and the step is weights @ jacobian."""

    def weights(self, jacobian: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class EqualWeights(LossWeighting):
    """The plain sum of the tasks' losses."""

    def __init__(self, num_tasks: int):
        super().__init__()

    def loss_term(self, loss: torch.Tensor, task_index: int) -> torch.Tensor:
        return loss

    def weights(self, num_tasks: int) -> torch.Tensor:
        return torch.ones(num_tasks)


class UncertaintyWeights(LossWeighting):
    """Kendall, Gal & Cipolla (2018): one learned log-variance s_i per task; term exp(-s_i) L_i + s_i."""

    def __init__(self, num_tasks: int):
        super().__init__()
        self.log_variances = nn.Parameter(torch.zeros(num_tasks))

    def loss_term(self, loss: torch.Tensor, task_index: int) -> torch.Tensor:
        return uncertainty_weighted_loss(loss.reshape(1), self.log_variances[task_index : task_index + 1])

    def weights(self, num_tasks: int) -> torch.Tensor:
        return torch.exp(-self.log_variances.detach())


class TorchjdAggregation(GradientAggregation):
    """A torchjd aggregator (PCGrad, MGDA, UPGrad, by its class name), which needs only the rows' dot
    products, the Gramian J J^T (tasks x tasks)."""

    def __init__(self, name: str, num_tasks: int):
        super().__init__()
        import torchjd.aggregation  # loaded by the runs that aggregate gradients only, not by every import

        self.aggregator = getattr(torchjd.aggregation, name)()

    def weights(self, jacobian: torch.Tensor) -> torch.Tensor:
        gramian = jacobian @ jacobian.T
        if not torch.isfinite(gramian).all():  # fp16 overflow: any weights do, the scaler skips this step
            return torch.ones(len(jacobian), device=jacobian.device)
        return self.aggregator.gramian_weighting(gramian)


# The ways of combining the tasks at one all-tasks step, by name: each makes its combiner for a number
# of tasks. TrainConfig, the command line and the training panel offer these. A new way is a small
# LossWeighting or GradientAggregation class, and one line here.
COMBINERS = {"equal": EqualWeights, "uncertainty": UncertaintyWeights,
             "pcgrad": functools.partial(TorchjdAggregation, "PCGrad"),
             "mgda": functools.partial(TorchjdAggregation, "MGDA"),
             "upgrad": functools.partial(TorchjdAggregation, "UPGrad")}


def make_combiner(method: str, num_tasks: int) -> LossWeighting | GradientAggregation:
    """The combiner called `method` (one of COMBINERS) for `num_tasks` tasks."""
    if method not in COMBINERS:
        raise ValueError(f"unknown combine method {method!r}: choose one of {', '.join(COMBINERS)}")
    return COMBINERS[method](num_tasks)


def combined_steps(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each method makes of two tasks' gradients: the plain sum ("equal"), and the step of PCGrad, MGDA
    and UPGrad as training takes it (torchjd's weights times the gradients)."""
    jacobian = torch.stack([first, second])
    steps = {"equal": first + second}
    for method in COMBINERS:
        combiner = make_combiner(method, 2)
        if isinstance(combiner, GradientAggregation):
            steps[method] = combiner.weights(jacobian) @ jacobian
    return steps


def aggregates_gradients(method: str) -> bool:
    """True for a method of COMBINERS that aggregates the tasks' gradients on the parameters they share."""
    entry = COMBINERS[method]
    return issubclass(entry.func if isinstance(entry, functools.partial) else entry, GradientAggregation)

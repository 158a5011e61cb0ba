"""Lesson step 6, when tasks pull apart: how one step on a batch of EVERY task combines the tasks.

Loss weighting adds the tasks' losses with a weight each (equal, or learned as in Kendall, Gal &
Cipolla 2018) and takes one gradient of the sum. Gradient aggregation (PCGrad, MGDA, UPGrad, from
torchjd) takes each task's own gradient on the shared encoder, one row of a matrix, and turns the
matrix into one gradient. Either way each head gets only its own task's gradient (times the task's
weight, under loss weighting). train.all_tasks_step uses these in a training step.
"""

from __future__ import annotations

import torch
from torch import nn
from torchjd.aggregation import MGDA, PCGrad, UPGrad

LOSS_WEIGHTINGS = ("equal", "uncertainty")
AGGREGATORS = {"pcgrad": PCGrad, "mgda": MGDA, "upgrad": UPGrad}
COMBINES = LOSS_WEIGHTINGS + tuple(AGGREGATORS)
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


class TaskCombiner(nn.Module):
    """One of COMBINES: learned log-variances for "uncertainty" (in the optimizer and the checkpoint),
    a torchjd aggregator for "pcgrad", "mgda" and "upgrad", nothing for "equal"."""

    def __init__(self, method: str, num_tasks: int):
        super().__init__()
        if method not in COMBINES:
            raise ValueError(f"unknown combine method {method!r}: choose one of {', '.join(COMBINES)}")
        self.log_variances = nn.Parameter(torch.zeros(num_tasks)) if method == "uncertainty" else None
        self.aggregator = AGGREGATORS[method]() if method in AGGREGATORS else None

    def loss_term(self, loss: torch.Tensor, task_index: int) -> torch.Tensor:
        """One task's term of a loss-weighting method's loss: L_i (equal), or exp(-s_i) L_i + s_i."""
        if self.log_variances is None:
            return loss
        return uncertainty_weighted_loss(loss.reshape(1), self.log_variances[task_index : task_index + 1])

    def loss_weights(self, num_tasks: int) -> torch.Tensor:
        """Each task's weight in its loss term: 1, or exp(-s_i)."""
        if self.log_variances is None:
            return torch.ones(num_tasks)
        return torch.exp(-self.log_variances.detach())

    def aggregate(self, jacobian: torch.Tensor) -> torch.Tensor:
        """The aggregator's weight for each row (task) of the Jacobian; the step is weights @ jacobian.

        PCGrad, MGDA and UPGrad need only the rows' dot products, the Gramian J J^T (tasks x tasks).
        """
        gramian = jacobian @ jacobian.T
        if not torch.isfinite(gramian).all():  # fp16 overflow: any weights do, the scaler skips this step
            return torch.ones(len(jacobian), device=jacobian.device)
        return self.aggregator.gramian_weighting(gramian)


def combined_steps(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each method makes of two tasks' gradients: the plain sum ("equal"), and the step of PCGrad, MGDA
    and UPGrad as training takes it (torchjd's weights times the gradients)."""
    jacobian = torch.stack([first, second])
    steps = {"equal": first + second}
    for method in AGGREGATORS:
        steps[method] = TaskCombiner(method, 2).aggregate(jacobian) @ jacobian
    return steps

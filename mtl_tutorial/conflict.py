"""Lesson extra: do the tasks pull the shared encoder in the same direction?

For a batch of each task we take the gradient of its loss with respect to the ENCODER's weights
(the shared part) and measure the cosine between the two: > 0 the tasks help each other on that
step, < 0 they conflict (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning").
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .batching import BatchStream, EncodedSplit, to_device
from .config import TrainConfig


def encoder_gradient(model, batch: dict, task: str) -> torch.Tensor:
    """The gradient of one batch's loss with respect to the shared encoder, as one flat vector."""
    weights = model.shared_parameters()
    # autograd.grad, not backward(): it leaves .grad alone and fires none of DDP's gradient hooks,
    # which would break the next training step of a multi-process run.
    gradients = torch.autograd.grad(model.loss(batch, task), weights, allow_unused=True)
    # A weight the task did not use (e.g. the pooler under mean pooling) has no gradient: count it as 0.
    return torch.cat([(g if g is not None else torch.zeros_like(w)).flatten()
                      for g, w in zip(gradients, weights)])


def gradient_cosines(model, splits: dict[str, EncodedSplit], batches: int = 4, batch_size: int = 32,
                     seed: int = 0) -> dict[str, float]:
    """Mean cosine between the encoder gradients of every pair of tasks, over `batches` batch pairs.

    Dropout is switched off while measuring and the batches come from their own stream, so the
    measurement does not change what training sees. Keys look like "emotion~sentiment".
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    streams = {task: BatchStream(split, batch_size, seed=seed) for task, split in splits.items()}
    sums = {pair: 0.0 for pair in itertools.combinations(splits, 2)}
    for _ in range(batches):
        gradients = {task: encoder_gradient(model, to_device(next(stream), device), task)
                     for task, stream in streams.items()}
        for first, second in sums:
            sums[first, second] += F.cosine_similarity(gradients[first], gradients[second], dim=0).item()
    model.train(was_training)
    return {f"{first}~{second}": total / batches for (first, second), total in sums.items()}


def probe_gradient_conflict(model, encoded: dict, config: TrainConfig, epoch: int) -> dict[str, float]:
    """For each task, the mean cosine between its encoder gradient and the other tasks', once an epoch.

    It measures the SHARED encoder, so with lora or soft sharing (no parameter in common) it is skipped:
    nothing is recorded, as for a single task or with `gradient_probe_batches=0`."""
    if len(encoded) < 2 or config.gradient_probe_batches < 1 or config.sharing != "hard":
        return {}
    pairs = gradient_cosines(model, {name: splits["train"] for name, splits in encoded.items()},
                             config.gradient_probe_batches, config.batch_size, seed=config.seed + epoch)
    return {name: sum(value for pair, value in pairs.items() if name in pair.split("~")) / (len(encoded) - 1)
            for name in encoded}

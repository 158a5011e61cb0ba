"""Exercises for lesson 8, how much to share: the LoRA update, checked against PEFT's own layer, and the
soft-sharing penalty, checked against the package's; in the style of the other lessons' checks.
"""

from __future__ import annotations

import copy
import functools
import itertools

import torch

from ..config import TrainConfig
from ..sharing import lora_sharing, soft_penalty
from .fixtures import pretrained_encoder, real_batch, tiny_model
from .verdicts import Wrong, as_number, as_tensor, call, exercise, name_the_mistake


@functools.cache
def lora_layer(rank: int, alpha: float):
    """The packaged MiniLM's first query layer with a LoRA adapter of PEFT (rank, alpha), in eval mode;
    its B, zero when PEFT makes it, filled with small random numbers, as training leaves it."""
    torch.manual_seed(rank)
    config = TrainConfig(sharing="lora", lora_rank=rank, lora_alpha=alpha, lora_target_modules=["query"])
    model = lora_sharing(copy.deepcopy(pretrained_encoder()), {"emotion": ["a", "b"]}, config).eval()
    layer = model.encoder.base_model.model.encoder.layer[0].attention.self.query
    with torch.no_grad():
        layer.lora_B["emotion"].weight.normal_(0, 0.02)
    return layer


@functools.cache
def hidden_states(data_dir: str | None = None) -> torch.Tensor:
    """What MiniLM's first query layer reads for 8 real emotion tweets: their embeddings (8, tokens, 384)."""
    batch = real_batch("emotion", 0, 8, data_dir)
    with torch.no_grad():
        return pretrained_encoder().embeddings(input_ids=batch["input_ids"])


@exercise("Lesson 8, exercise 1: the LoRA update, W x + b + (alpha / r) B A x")
def check_lora_update(lora_forward, data_dir: str | None = None) -> str:
    """`lora_forward(x, weight, bias, A, B, alpha, rank) -> W x + b + (alpha / r) B A x` for every vector x
    (the last axis of `x`); W (out x in) frozen, A (r x in) and B (out x r) the adapter. Checked against the
    output of PEFT's own layer on MiniLM's first query layer, for two ranks."""
    x = hidden_states(data_dir)
    found = []
    for rank, alpha in ((8, 16.0), (4, 32.0)):
        layer = lora_layer(rank, alpha)
        weight, bias = layer.base_layer.weight.detach(), layer.base_layer.bias.detach()
        A, B = layer.lora_A["emotion"].weight.detach(), layer.lora_B["emotion"].weight.detach()
        with torch.no_grad():
            expected = layer(x)
            inputs = (x, weight, bias, A, B)
            answer = as_tensor(call(lora_forward, *(tensor.clone() for tensor in inputs), alpha, rank),
                               "your output")
        if answer.shape != expected.shape:
            raise Wrong(f"for x of shape {tuple(x.shape)} your output has shape {tuple(answer.shape)}; it "
                        f"should be {tuple(expected.shape)}: one output vector per token")
        if torch.allclose(answer, expected, atol=1e-4, rtol=1e-4):
            update = (alpha / rank) * (x @ A.T @ B.T)
            found.append(f"r = {rank}, alpha = {alpha:g}: the update moves the outputs by "
                         f"{float(update.norm() / (x @ weight.T).norm()):.1%} of W x")
            continue
        base, update = x @ weight.T + bias, x @ A.T @ B.T
        mistake = name_the_mistake(answer, [
            (base + update, "you left out the scale alpha / r"),
            (base + alpha * update, "you scaled the update by alpha; LoRA scales it by alpha / r"),
            (base + rank / alpha * update, "you scaled the update by r / alpha; it is alpha / r"),
            (base, "that is the frozen layer alone, W x + b: add the adapter's update"),
            ((alpha / rank) * update, "that is the adapter's update alone: add the frozen layer, W x + b"),
            (x @ weight.T + (alpha / rank) * update, "you left out the frozen layer's bias b"),
            (x @ weight + bias + (alpha / rank) * update,
             "you multiplied by W, not its transpose: for tokens in rows, W x is x @ W.T, as in nn.Linear"),
        ], lambda a, b: torch.allclose(a, b, atol=1e-4, rtol=1e-4))
        largest = float((answer - expected).abs().max())
        raise Wrong(f"with r = {rank} and alpha = {alpha:g} your output is not PEFT's"
                    + (mistake or f" (largest difference {largest:.3g})"))
    return ("; ".join(found) + ". PEFT's layer computes exactly this; B starts at zero, so a fresh adapter "
            "leaves the pre-trained encoder's outputs as they were.")


def moved_copies(count: int = 3) -> list[torch.nn.Module]:
    """`count` copies of a small encoder, each moved a little from the first, as training moves them."""
    encoder = tiny_model({"emotion": ["a", "b"]}).encoder
    copies = [copy.deepcopy(encoder) for _ in range(count)]
    torch.manual_seed(8)
    with torch.no_grad():
        for moved in copies[1:]:
            for parameter in moved.parameters():
                parameter += 0.01 * torch.randn_like(parameter)
    return copies


@exercise("Lesson 8, exercise 2: the soft-sharing penalty")
def check_soft_penalty(penalty_of) -> str:
    """`penalty_of(encoders, strength) -> strength / 2 * sum over pairs i < j of ||theta_i - theta_j||^2`,
    with theta_i all the weights of encoder i; differentiable, since training follows its gradient."""
    found = []
    for count, strength in ((2, 0.5), (3, 0.01)):
        copies = moved_copies(count)
        expected = soft_penalty(copies, strength)
        answer = call(penalty_of, copies, strength)
        value = as_number(answer, "your penalty")
        right = float(expected.detach())
        if abs(value - right) > 1e-4 * abs(right):
            pairs = list(itertools.combinations(copies, 2))
            with torch.no_grad():
                squared = [float(sum((a - b).pow(2).sum() for a, b in zip(x.parameters(), y.parameters())))
                           for x, y in pairs]
            mistake = name_the_mistake(value, [
                (strength * sum(squared), "you left out the 1/2: strength / 2 * the sum"),
                (2 * right, "you counted every pair twice (i, j and j, i): sum over i < j only"),
                (strength / 2 * sum(s**0.5 for s in squared), "you took the distances ||theta_i - theta_j||, "
                                                             "not their squares"),
                (right / len(pairs), "you averaged over the pairs; add them up"),
                (strength / 2 * squared[0], "you counted only the first pair: every pair of tasks counts"),
                (right / count, "that is strength / 2 * sum_i ||theta_i - mean||^2; the sum over pairs is N "
                                "times as large"),
            ], lambda a, b: abs(a - b) <= 1e-4 * abs(b))
            raise Wrong(f"for {count} encoders and strength {strength} the penalty is {right:.6g}; yours is "
                        f"{value:.6g}" + (mistake or ""))
        if not isinstance(answer, torch.Tensor) or not answer.requires_grad:
            raise Wrong("your penalty is right but has no gradient: compute it with torch operations on the "
                        "parameters themselves (no .item(), no .detach(), no torch.no_grad())")
        found.append(f"{count} encoders, strength {strength:g}: {right:.4g}")
    return ("; ".join(found) + ". Its gradient on copy i is strength * N * (theta_i - mean): each step pulls "
            "every copy towards the copies' mean, harder the further it has gone.")

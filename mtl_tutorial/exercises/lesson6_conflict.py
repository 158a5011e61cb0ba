"""Lesson 6's checks (notebooks/06_conflict): PCGrad's projection, MGDA for two tasks, uncertainty
weighting's loss."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..combine import mgda_pair, pcgrad_pair, uncertainty_weighted_loss
from ..conflict import encoder_gradient
from .fixtures import real_batch, task, tiny_model
from .verdicts import Wrong, as_number, as_tensor, call, exercise, listed, name_the_mistake


@functools.cache
def real_gradients(data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared encoder's gradients of the tiny model on 16 real emotion and 16 real sentiment tweets."""
    names = ("emotion", "sentiment")
    with torch.random.fork_rng(devices=[]):
        model = tiny_model({name: task(name, data_dir).label_names for name in names})
    return tuple(encoder_gradient(model, real_batch(name, 0, 16, data_dir), name).detach() for name in names)


def gradient_pairs(data_dir: str | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pairs of gradients a check tries: hand-made ones that agree and conflict, and real ones."""
    emotion, sentiment = real_gradients(data_dir)
    return {
        "two hand-made gradients that agree, (2, 1) and (1, 3)": (torch.tensor([2.0, 1.0]),
                                                                  torch.tensor([1.0, 3.0])),
        "two hand-made gradients that conflict, (3, 1) and (-2, 2)": (torch.tensor([3.0, 1.0]),
                                                                      torch.tensor([-2.0, 2.0])),
        "real emotion and sentiment gradients of a small model": (emotion, sentiment),
        "the real emotion gradient and the opposite of the sentiment one": (emotion, -sentiment),
    }


def near(answer: torch.Tensor, expected: torch.Tensor) -> bool:
    """The same vector up to rounding: the difference is tiny next to the vector's length."""
    return answer.shape == expected.shape and bool(
        (answer.double() - expected.double()).norm() <= 1e-4 * expected.double().norm() + 1e-9)


def on_a_pair(function, first: torch.Tensor, second: torch.Tensor):
    """Run a student's `function(g1, g2)` on copies, and refuse it if it changed them."""
    given = first.clone(), second.clone()
    answer = call(function, *given)
    if not (torch.equal(given[0], first) and torch.equal(given[1], second)):
        raise Wrong("your function changed the gradients it was given (an in-place operation such as `-=`): "
                    "compute new tensors and leave g1 and g2 as they are")
    return answer


def as_vector(value, like: torch.Tensor, what: str) -> torch.Tensor:
    vector = as_tensor(value, what)
    if vector.shape != like.shape:
        raise Wrong(f"{what} has shape {tuple(vector.shape)}; the gradients have shape {tuple(like.shape)}")
    if not torch.isfinite(vector).all():
        raise Wrong(f"{what} holds NaN or infinity: is there a division by zero?")
    return vector


def projected(gradient: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """`gradient` less its component along `onto`."""
    return gradient - (gradient @ onto) / (onto @ onto) * onto


@exercise("Lesson 6, exercise 1: PCGrad's projection for two gradients")
def check_pcgrad_projection(pcgrad_projections, data_dir: str | None = None) -> str:
    """`pcgrad_projections(g1, g2) -> (g1 projected, g2 projected)`: when g1 · g2 < 0, each gradient loses
    its component along the OTHER one; when they agree both stay as they are. PCGrad's step is their sum."""
    found = []
    for which, (first, second) in gradient_pairs(data_dir).items():
        dot = first @ second
        conflict = bool(dot < 0)
        expected = (projected(first, second), projected(second, first)) if conflict else (first, second)
        answer = on_a_pair(pcgrad_projections, first, second)
        if isinstance(answer, torch.Tensor) and answer.shape == first.shape:
            raise Wrong("you returned one vector" + (": PCGrad's step, the sum" if near(answer, pcgrad_pair(
                first, second)) else "") + ". Return the two projected gradients as a pair, (g1_new, g2_new)")
        if not isinstance(answer, (tuple, list, torch.Tensor)) or len(answer) != 2:
            raise Wrong(f"your function returned a {type(answer).__name__}; return a pair (g1_new, g2_new)")
        answer = tuple(as_vector(v, first, f"your {name}") for v, name in zip(answer, ("g1_new", "g2_new")))
        if all(near(a, b) for a, b in zip(answer, expected)):
            found.append(f"{which}: cosine {F.cosine_similarity(first, second, dim=0):+.3f}, "
                         + ("both projected" if conflict else "left alone"))
            continue
        squared = first @ first, second @ second
        mistake = name_the_mistake(answer, [
            ((first, second), f"you left them alone, but they conflict (g1 · g2 = {dot:.3g} < 0)"),
            ((projected(first, second), projected(second, first)),
             f"you projected although they agree (g1 · g2 = {dot:.3g} >= 0): PCGrad only changes gradients "
             "that conflict"),
            ((projected(first, second), second), "you projected only g1; PCGrad projects both, each onto the "
                                                 "normal plane of the other"),
            ((first, projected(second, first)), "you projected only g2; PCGrad projects both, each onto the "
                                                "normal plane of the other"),
            ((first - dot / squared[0] * first, second - dot / squared[1] * second),
             "you removed from each gradient its component along ITSELF; remove its component along the "
             "OTHER gradient: g1 - (g1 · g2 / |g2|²) g2"),
            ((first - dot / squared[0] * second, second - dot / squared[1] * first),
             "you divided by the squared length of the wrong gradient: g1 loses (g1 · g2 / |g2|²) g2, the "
             "length of the gradient you project ONTO"),
            ((first - dot * second, second - dot * first),
             "you forgot to divide by the squared length of the gradient you project onto: "
             "(g1 · g2 / |g2|²) g2"),
            ((first - dot / squared[1].sqrt() * second, second - dot / squared[0].sqrt() * first),
             "you divided by the length |g2|, not by the squared length |g2|² = g2 · g2"),
            ((first + dot / squared[1] * second, second + dot / squared[0] * first),
             "you ADDED the component along the other gradient: subtract it, so that the conflict goes"),
            ((projected(second, first), projected(first, second)), "you returned them in the other order: "
                                                                   "(g1_new, g2_new)"),
        ], lambda a, b: all(near(x, y) for x, y in zip(a, b)))
        largest = max(float((a - b).abs().max()) for a, b in zip(answer, expected))
        raise Wrong(f"on {which} your projected gradients are not PCGrad's"
                    + (mistake or f" (largest difference {largest:.3g})"))
    return ("; ".join(found) + ". After projection the two no longer conflict (their dot product is >= 0), "
            "and their sum is mtl.pcgrad_pair's step.")


@exercise("Lesson 6, exercise 2: MGDA for two tasks, the shortest point between two gradients")
def check_mgda_two_tasks(min_norm_point, data_dir: str | None = None) -> str:
    """`min_norm_point(g1, g2) -> a g1 + (1 - a) g2`: of all the points on the segment from g2 to g1
    (0 <= a <= 1), the one nearest the origin; a = (g2 - g1) · g2 / |g2 - g1|², kept within [0, 1]."""
    pairs = gradient_pairs(data_dir)
    pairs["two hand-made gradients, (1, 0.5) and (3, 1), whose shortest point is an end"] = (
        torch.tensor([1.0, 0.5]), torch.tensor([3.0, 1.0]))
    found = []
    for which, (first, second) in pairs.items():
        expected = mgda_pair(first, second)
        answer = on_a_pair(min_norm_point, first, second)
        if isinstance(answer, (int, float)) or (isinstance(answer, torch.Tensor) and answer.numel() == 1):
            raise Wrong("you returned one number (the weight a?); return the point a g1 + (1 - a) g2 itself")
        answer = as_vector(answer, first, "your point")
        if near(answer, expected):
            share = float(((expected - second) @ (first - second)) / ((first - second) @ (first - second)))
            found.append(f"{which}: a = {share:.2f}")
            continue
        difference = second - first
        share = (difference @ second) / (difference @ difference)
        mistake = name_the_mistake(answer, [
            (share * first + (1 - share) * second,
             f"you did not keep a within [0, 1]: here a = {share:.2f}, a point beyond the end of the "
             "segment; clamp it"),
            ((1 - share.clamp(0, 1)) * first + share.clamp(0, 1) * second,
             "you swapped the weights: the point is a g1 + (1 - a) g2"),
            ((first + second) / 2, "that is the mean of the two; MGDA picks the point of the segment nearest "
                                   "the origin"),
            (first + second, "that is the sum of the two; MGDA picks the point of the segment nearest the "
                             "origin"),
            (first if first.norm() <= second.norm() else second,
             "that is the shorter of the two gradients; a point between them can be shorter still"),
        ], near)
        raise Wrong(f"on {which} the shortest point of the segment is a g1 + (1 - a) g2 with a = "
                    f"{float(share.clamp(0, 1)):.3f}, of length {expected.norm():.4g}; yours has length "
                    f"{answer.norm():.4g}" + mistake)
    return ("; ".join(found) + ". The point is never longer than the shorter gradient, and when the two "
            "conflict it is shorter than both: MGDA steps carefully when the tasks disagree.")


@exercise("Lesson 6, exercise 3: uncertainty weighting's loss (Kendall et al. 2018)")
def check_uncertainty_loss(uncertainty_loss, data_dir: str | None = None) -> str:
    """`uncertainty_loss(losses, log_variances) -> loss`: sum over tasks of exp(-s_i) L_i + s_i,
    differentiable in both (the log-variances s_i are learned). Tried on the real losses of a small model."""
    names = ("emotion", "sentiment")
    with torch.random.fork_rng(devices=[]):
        model = tiny_model({name: task(name, data_dir).label_names for name in names}).eval()
    with torch.no_grad():
        real = torch.stack([model.loss(real_batch(name, 0, 16, data_dir), name) for name in names])
    found = []
    for log_variances in ([0.5, -0.3], [real[0].log().item(), 1.0], [0.0, 0.0]):
        losses = real.clone()
        mine = torch.tensor(log_variances, requires_grad=True)
        theirs = torch.tensor(log_variances, requires_grad=True)
        expected = uncertainty_weighted_loss(losses, mine)
        right = expected.item()
        answer = call(uncertainty_loss, losses.clone(), theirs)
        value = as_number(answer, "your loss")
        if not math.isclose(value, right, rel_tol=1e-5, abs_tol=1e-7):
            s, L = mine.detach(), losses
            mistake = name_the_mistake(value, [
                (float((torch.exp(-s) * L).sum()), "you left out the + s_i: without it every s_i grows "
                                                   "without end, and every weight exp(-s_i) falls to 0"),
                (float((torch.exp(s) * L + s).sum()), "you wrote exp(s_i) L_i: the weight is exp(-s_i), "
                                                      "small for a task with a large variance"),
                (float((torch.exp(-s) * L - s).sum()), "you subtracted s_i; the regulariser is + s_i"),
                (float((torch.exp(-s) * L + s).mean()),  # with two tasks, also ½ exp(-s_i) L_i + ½ s_i
                 "yours is half of it: you averaged over the tasks (add them up), or wrote Kendall et al.'s "
                 "regression form ½ exp(-s_i) L_i + ½ s_i; the package uses exp(-s_i) L_i + s_i"),
            ], lambda a, b: math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7))
            raise Wrong(f"with losses {listed(dict(zip(names, L.tolist())), 3)} and log-variances "
                        f"{log_variances}, the loss is {right:.4f}; yours is {value:.4f}" + mistake)
        if not isinstance(answer, torch.Tensor) or not answer.requires_grad:
            raise Wrong("your loss is right but has no gradient: the log-variances are learned, so compute "
                        "it with torch operations (torch.exp, not math.exp or .item())")
        expected.backward()
        answer.backward()
        if theirs.grad is None or not torch.allclose(theirs.grad, mine.grad, atol=1e-6):
            raise Wrong(f"your loss's gradient with respect to the log-variances is {theirs.grad}; it should "
                        f"be {mine.grad.tolist()} (1 - exp(-s_i) L_i)")
        found.append(f"s = ({', '.join(f'{v:.2f}' for v in log_variances)}): {right:.3f}")
    return (f"on the real losses {listed(dict(zip(names, real.tolist())), 3)}: " + ", ".join(found)
            + ". For a fixed loss L_i the sum is smallest at s_i = log L_i, where the weight exp(-s_i) is "
            "1/L_i: a task whose loss stays large gets a smaller weight.")

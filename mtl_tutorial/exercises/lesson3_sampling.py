"""Lesson 3's checks (notebooks/03_sampling): temperature sampling, steps per epoch, a seeded schedule."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import torch

from ..batching import batches_per_pass
from ..sampling import passes_per_epoch, task_probabilities
from .fixtures import task
from .verdicts import Wrong, as_number, call, exercise, listed, name_the_mistake


def training_sizes(names, data_dir: str | None = None) -> dict[str, int]:
    return {name: len(task(name, data_dir).splits["train"]) for name in names}


def as_task_dict(answer, tasks: list[str]) -> dict[str, float]:
    """A student's {task: number} answer, checked for its shape."""
    if isinstance(answer, (list, tuple, np.ndarray, torch.Tensor)):
        raise Wrong(f"your answer is a {type(answer).__name__}; return a dict keyed by task name, "
                    f"{{'{tasks[0]}': ..., ...}}")
    if not isinstance(answer, dict):
        raise Wrong(f"your answer is a {type(answer).__name__}, not a dict {{task: number}}")
    if set(answer) != set(tasks):
        raise Wrong(f"your answer has the keys {sorted(map(str, answer))}; expected one per task: "
                    f"{sorted(tasks)}")
    return {name: as_number(answer[name], f"your answer for {name!r}") for name in tasks}


def same_numbers(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(math.isclose(a[name], b[name], rel_tol=1e-6, abs_tol=1e-9) for name in b)


@exercise("Lesson 3, exercise 1: temperature sampling, p_i ∝ n_i^(1/T)")
def check_temperature(temperature_probabilities, data_dir: str | None = None) -> str:
    """`temperature_probabilities(sizes, temperature) -> {task: probability}` from the training-set sizes."""
    shares = []
    for names in (["emotion", "sentiment"], ["emotion", "sentiment", "irony"]):
        sizes = training_sizes(names, data_dir)
        for temperature in (1.0, 2.0, 5.0):
            expected = task_probabilities(sizes, "temperature", temperature)
            answer = as_task_dict(call(temperature_probabilities, dict(sizes), temperature), names)
            total = sum(answer.values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise Wrong(f"for T = {temperature:g} your probabilities sum to {total:.6g}, not 1: divide "
                            "each n_i^(1/T) by their total")
            if not same_numbers(answer, expected):
                mistake = name_the_mistake(answer, [
                    (task_probabilities(sizes, "temperature", 1 / temperature),
                     (f"you raised the sizes to the power T = {temperature:g}; the exponent is 1/T, so that "
                      "a higher temperature flattens the mix")),
                    (task_probabilities(sizes, "proportional"),
                     "your probabilities do not change with T: they are proportional to the sizes"),
                    (task_probabilities(sizes, "uniform"),
                     "your probabilities are uniform: they must still grow with the size n_i"),
                ], same_numbers)
                raise Wrong(f"with sizes {sizes} and T = {temperature:g} the probabilities are "
                            f"{listed(expected)}; you gave {listed(answer)}" + mistake)
            if len(names) == 2:
                shares.append(f"{answer['emotion']:.3f} at T = {temperature:g}")
    return (f"emotion's share of the steps grows with the temperature: {', '.join(shares)} (its 3,257 tweets "
            "against sentiment's 45,615), and it works for three tasks too.")


@exercise("Lesson 3, exercise 2: how many steps each task gets per epoch")
def check_draws_per_epoch(draws_per_epoch, data_dir: str | None = None) -> str:
    """`draws_per_epoch(sizes, batch_size, probabilities) -> {task: expected steps in one epoch}`. An epoch
    has as many steps as ALL tasks have batches together; a task drawn with probability p gets p of them."""
    names, batch_size = ["emotion", "sentiment"], 32
    sizes = training_sizes(names, data_dir)
    batches = {name: batches_per_pass(size, batch_size) for name, size in sizes.items()}
    found = []
    for sampler in ("proportional", "temperature", "uniform"):
        probabilities = task_probabilities(sizes, sampler)
        passes = passes_per_epoch(sizes, batch_size, samplers=(sampler,)).loc[sampler]  # the lesson's table
        expected = {name: passes[name] * batches[name] for name in names}
        answer = as_task_dict(call(draws_per_epoch, dict(sizes), batch_size, dict(probabilities)), names)
        if not same_numbers(answer, expected):
            rounded_down = sum(size // batch_size for size in sizes.values())
            mistake = name_the_mistake(answer, [
                ({name: p * rounded_down for name, p in probabilities.items()},
                 (f"you rounded the number of batches down; {sizes['emotion']:,} tweets make "
                  f"{batches['emotion']} batches of {batch_size}, the last one shorter (round up: -(-n // "
                  "b))")),
                ({name: p * batches[name] for name, p in probabilities.items()},
                 ("you gave each task p times ITS OWN number of batches; an epoch has as many steps as ALL "
                  "the tasks have batches together")),
                ({name: p * sum(sizes.values()) for name, p in probabilities.items()},
                 "you counted tweets, but a step takes a whole batch"),
                (probabilities, "these are the probabilities; multiply them by the number of steps in an "
                                "epoch"),
                (batches, "that is each task's number of batches, whatever the sampler"),
            ], same_numbers)
            raise Wrong(f"{sampler} sampling: expect {listed(expected, 1)} steps; you gave "
                        f"{listed(answer, 1)}" + mistake)
        steps_and_passes = [f"{name} {answer[name]:.0f} steps = {answer[name] / batches[name]:.2f} passes"
                            for name in names]
        found.append(f"{sampler}: " + ", ".join(steps_and_passes))
    return ("; ".join(found) + ". Proportional sampling goes through every task once per epoch ON AVERAGE: "
                               "the draw is random, so an epoch may give a task a few steps more or less.")


def global_random_states() -> dict[str, str]:
    """A fingerprint of the global generators of torch, NumPy and Python's random: every draw changes it."""
    numpy_state = np.random.get_state()
    return {"torch": str(hash(torch.random.get_rng_state().numpy().tobytes())),
            "numpy": str(hash(numpy_state[1].tobytes())) + str(numpy_state[2]),
            "random": str(hash(random.getstate()))}


@exercise("Lesson 3, exercise 3: draw the schedule of an epoch, reproducibly")
def check_schedule(draw_schedule, data_dir: str | None = None) -> str:
    """`draw_schedule(probabilities, steps, seed) -> list of task names`: random draws with the given
    probabilities, the same list for the same seed (every process of a run and a resumed run must agree),
    without touching the global random generators."""
    probabilities = task_probabilities(training_sizes(["emotion", "sentiment"], data_dir), "temperature", 2.0)
    steps = 2000
    before = global_random_states()
    first = call(draw_schedule, dict(probabilities), steps, 77)
    touched = [name for name, state in global_random_states().items() if state != before[name]]
    if not isinstance(first, (list, tuple)):
        raise Wrong(f"your schedule is a {type(first).__name__}; return a list of task names, one per step")
    first = list(first)
    if len(first) != steps:
        raise Wrong(f"asked for {steps} steps, your schedule has {len(first)}")
    unknown = sorted({str(step) for step in first if step not in probabilities})
    if unknown:
        raise Wrong(f"your schedule holds {unknown[:3]}, which are not task names ({list(probabilities)})")
    counts = Counter(first)
    for name, p in probabilities.items():
        spread = math.sqrt(steps * p * (1 - p))
        if abs(counts[name] - steps * p) > 5 * spread:
            in_turn = all(a != b for a, b in itertools.pairwise(first))
            mistake = ("you take the tasks in turn (round robin), which ignores the probabilities" if in_turn
                       else "draw each step with the given probabilities, e.g. torch.multinomial(weights, "
                            "steps, replacement=True)")
            raise Wrong(f"{name} was drawn {counts[name]} times in {steps} steps, but with p = {p:.3f} "
                        f"expect about {steps * p:.0f} ± {spread:.0f}: {mistake}")
    if list(call(draw_schedule, dict(probabilities), steps, 77)) != first:
        raise Wrong("two calls with seed 77 gave different schedules: your draw is not seeded (the original "
                    "tutorial drew tasks from NumPy's global, unseeded generator). Then the processes of a "
                    "multi-GPU run would train different tasks at the same step, and a resumed run would "
                    "change its schedule. Draw from a generator made from the seed: "
                    "torch.Generator().manual_seed(seed)")
    if list(call(draw_schedule, dict(probabilities), steps, 78)) == first:
        raise Wrong("seeds 77 and 78 gave the same schedule: your draw ignores the seed, so every epoch "
                    "would train the tasks in the same order")
    if touched:
        raise Wrong(f"your function reseeds, or draws from, the global {touched[0]} generator: the schedule "
                    "is reproducible, but everything drawn after it (dropout masks, data order) now depends "
                    "on it. Use a generator of its own: torch.Generator().manual_seed(seed)")
    return (f"{steps} steps with emotion drawn {counts['emotion']} times (expected about "
            f"{steps * probabilities['emotion']:.0f}), the same schedule for the same seed and another for "
            "another seed, and the global random generators untouched.")

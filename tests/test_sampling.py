import math
from collections import Counter

import pytest

from mtl_tutorial.sampling import SAMPLERS, task_probabilities, task_schedule

SIZES = {"emotion": 3257, "sentiment": 45615, "irony": 2862}


def test_formulas():
    total = sum(SIZES.values())
    assert task_probabilities(SIZES, "proportional") == pytest.approx({t: n / total for t, n in SIZES.items()})
    assert task_probabilities(SIZES, "uniform") == pytest.approx({t: 1 / 3 for t in SIZES})
    roots = {t: math.sqrt(n) for t, n in SIZES.items()}
    assert task_probabilities(SIZES, "temperature", temperature=2) == pytest.approx({t: r / sum(roots.values()) for t, r in roots.items()})


def test_annealed_moves_from_proportional_to_nearly_uniform():
    assert task_probabilities(SIZES, "annealed", epoch=1, num_epochs=5) == pytest.approx(task_probabilities(SIZES, "proportional"))
    last = task_probabilities(SIZES, "annealed", epoch=5, num_epochs=5)
    weights = {t: n**0.2 for t, n in SIZES.items()}
    assert last == pytest.approx({t: w / sum(weights.values()) for t, w in weights.items()})
    middle = task_probabilities(SIZES, "annealed", epoch=3, num_epochs=5)
    assert last["emotion"] > middle["emotion"] > task_probabilities(SIZES, "proportional")["emotion"]


@pytest.mark.parametrize("sampler", ["proportional", "uniform", "temperature", "annealed"])
def test_empirical_frequencies_match_probabilities(sampler):
    steps = 20_000
    schedule = task_schedule(SIZES, steps, sampler, seed=3, temperature=2.0, epoch=2, num_epochs=4)
    counts = Counter(schedule)
    for task, p in task_probabilities(SIZES, sampler, 2.0, epoch=2, num_epochs=4).items():
        standard_error = math.sqrt(p * (1 - p) / steps)
        assert abs(counts[task] / steps - p) < 4 * standard_error, (task, counts[task] / steps, p)


def test_round_robin_takes_turns():
    assert task_schedule(SIZES, 7, "round_robin") == ["emotion", "sentiment", "irony"] * 2 + ["emotion"]


def test_schedules_are_reproducible_and_differ_between_epochs():
    one = task_schedule(SIZES, 500, "uniform", seed=77, epoch=1)
    assert one == task_schedule(SIZES, 500, "uniform", seed=77, epoch=1)
    assert one != task_schedule(SIZES, 500, "uniform", seed=77, epoch=2)
    assert one != task_schedule(SIZES, 500, "uniform", seed=78, epoch=1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown sampler 'sqrt'"):
        task_probabilities(SIZES, "sqrt")
    with pytest.raises(ValueError, match="temperature must be positive"):
        task_probabilities(SIZES, "temperature", temperature=0)
    with pytest.raises(ValueError, match="at least one training example"):
        task_probabilities({"a": 0, "b": 3})
    assert set(SAMPLERS) == {"proportional", "uniform", "temperature", "annealed", "round_robin"}

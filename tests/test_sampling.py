import math
from collections import Counter

import pytest

from mtl_tutorial.sampling import SAMPLERS, adaptive_probabilities, task_probabilities, task_schedule

SIZES = {"emotion": 3257, "sentiment": 45615, "irony": 2862}


def test_formulas():
    total = sum(SIZES.values())
    proportional = {t: n / total for t, n in SIZES.items()}
    assert task_probabilities(SIZES, "proportional") == pytest.approx(proportional)
    assert task_probabilities(SIZES, "uniform") == pytest.approx({t: 1 / 3 for t in SIZES})
    roots = {t: math.sqrt(n) for t, n in SIZES.items()}
    temperature = {t: r / sum(roots.values()) for t, r in roots.items()}
    assert task_probabilities(SIZES, "temperature", temperature=2) == pytest.approx(temperature)


def test_annealed_moves_from_proportional_to_nearly_uniform():
    first = task_probabilities(SIZES, "annealed", epoch=1, num_epochs=5)
    assert first == pytest.approx(task_probabilities(SIZES, "proportional"))
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
    assert set(SAMPLERS) == {"proportional", "uniform", "temperature", "annealed", "round_robin", "adaptive"}


BASE = {"emotion": 0.75, "sentiment": 0.25}


def test_adaptive_gives_the_lagging_task_more_steps():
    # emotion improved (no gap below its best); sentiment fell 0.1 below its best: it gets the moved half
    scores = {"emotion": [0.50, 0.60], "sentiment": [0.70, 0.60]}
    expected = {"emotion": 0.5 * 0.75, "sentiment": 0.5 * 0.25 + 0.5}
    assert adaptive_probabilities(BASE, scores) == pytest.approx(expected)
    # with targets (e.g. single-task scores) the gaps are below them: 0.2 for emotion, 0.1 for sentiment
    targets = {"emotion": 0.80, "sentiment": 0.70}
    expected = {"emotion": 0.5 * 0.75 + 0.5 * 2 / 3, "sentiment": 0.5 * 0.25 + 0.5 * 1 / 3}
    assert adaptive_probabilities(BASE, scores, targets) == pytest.approx(expected)


def test_adaptive_stays_bounded_away_from_zero_and_starts_from_its_base():
    assert adaptive_probabilities(BASE, {"emotion": [], "sentiment": []}) == BASE  # no dev score yet
    both_at_their_best = {"emotion": [0.5, 0.7], "sentiment": [0.6, 0.8]}
    assert adaptive_probabilities(BASE, both_at_their_best) == BASE
    extreme = adaptive_probabilities(BASE, {"emotion": [0.9, 0.1], "sentiment": [0.7]}, share=0.8)
    assert extreme["sentiment"] == pytest.approx(0.2 * 0.25) and sum(extreme.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="share must be in"):
        adaptive_probabilities(BASE, {"emotion": [0.5], "sentiment": [0.5]}, share=1.0)

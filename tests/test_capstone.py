"""Lesson 7's capstone: the lesson's own solutions, assembled, make `fit`'s run; a third task's recorded
experiment read as paired differences and a paired t-test."""

import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mtl_tutorial as mtl
from mtl_tutorial import experiments, lessons
from mtl_tutorial.course.sources import read_lesson
from mtl_tutorial.exercises import YourPieces, compare_with_fit, train_with_your_pieces
from mtl_tutorial.sampling import draw_tasks

matplotlib.use("Agg")
LESSON = Path(__file__).resolve().parents[1] / "notebooks" / "07_capstone.py"


@pytest.fixture(scope="module")
def solutions() -> YourPieces:
    """The pieces as lesson 7's solution cells define them, run as the notebook runs them."""
    namespace = {"torch": torch, "F": F, "nn": nn, "pd": pd, "mtl": mtl}
    for exercise in read_lesson(LESSON).exercises:
        exec(exercise.solution, namespace)
    names = ("collate", "Head", "forward", "draw_schedule", "train_step", "best_epochs")
    return YourPieces(*(namespace[name] for name in names))


@pytest.fixture(scope="module")
def small_config(tiny_encoder_dir, tweeteval_dir):
    return lessons.capstone_config(scale="ci", model=str(tiny_encoder_dir), data_dir=str(tweeteval_dir),
                                   max_train_examples=64, max_eval_examples=50, epochs=2)


@pytest.fixture(scope="module")
def fitted(small_config, tmp_path_factory):
    return lessons.train_run(small_config, tmp_path_factory.mktemp("capstone") / "fit")


def test_the_lessons_solutions_assembled_make_exactly_fits_run(solutions, small_config, fitted):
    yours = train_with_your_pieces(small_config, solutions, progress=lambda line: None)
    table = compare_with_fit(yours, fitted)
    assert list(table.index) == ["emotion", "sentiment"] and table["same"].all(), table.to_string()
    assert (table["test - fit's"] == 0).all()  # on one CPU not a digit of a score differs
    # the mean training losses too, but for fit's float32 sums on the device against Python's floats
    assert yours.history["train_loss"].tolist() == pytest.approx(fitted.history["train_loss"].tolist(),
                                                                 abs=1e-6)
    assert table["tweets trained"].sum() == 2 * 4 * 32  # 2 epochs of 4 full batches (64 tweets per task)


def test_a_right_sampler_with_other_draws_makes_another_run_and_the_table_says_so(solutions, small_config,
                                                                                  fitted):
    def shifted(probabilities, steps, seed):  # the right mix, reproducible, but not the package's draws
        return draw_tasks(probabilities, steps, seed + 1)

    other = YourPieces(solutions.collate, solutions.head, solutions.forward, shifted, solutions.train_step,
                       solutions.best_epochs)
    table = compare_with_fit(train_with_your_pieces(small_config, other, progress=lambda line: None), fitted)
    assert not table["same"].any()
    assert (table["tweets trained"] != table["fit's tweets"]).all()


def test_the_capstone_is_its_lesson_scale_with_smaller_caps_on_one_device(monkeypatch):
    monkeypatch.delenv("MTL_TUTORIAL_ENCODER", raising=False)
    for scale in lessons.SCALES:
        capstone, lesson = lessons.capstone_config(scale=scale), lessons.lesson_config(scale=scale)
        changed = {name for name in vars(lesson) if getattr(capstone, name) != getattr(lesson, name)}
        assert changed <= set(lessons.CAPSTONE_CAPS[scale]) | {"mixed_precision", "gradient_probe_batches"}
        assert capstone.mixed_precision == "no" and capstone.gradient_probe_batches == 0
    cpu = lessons.capstone_config(scale="cpu")
    assert cpu.train_fraction == 0.125 and cpu.max_train_examples == 1000 and cpu.sampler == "uniform"


def recorded_shape() -> pd.DataFrame:
    """Rows as the recorded file holds them: two paired arms over seeds 77-79 (78 missing with irony), and
    single-task rows, which the pairing leaves out."""
    rows = []
    without = {"emotion": [60.0, 62.0, 61.0], "sentiment": [55.0, 54.0, 56.0]}
    with_irony = {"emotion": [61.0, 63.5, None], "sentiment": [54.0, 55.0, None]}
    for arm, scores in ((experiments.WITHOUT_IRONY, without), (experiments.WITH_IRONY, with_irony)):
        for task, values in scores.items():
            for seed, value in zip((77, 78, 79), values):
                if value is not None:
                    rows.append({"arm": arm, "seed": seed, "task": task, "test": value, "dev": value + 1})
    rows.append({"arm": "single-task emotion", "seed": 77, "task": "emotion", "test": 58.0, "dev": 59.0})
    return pd.DataFrame(rows)


def test_the_pairs_are_one_seed_each_and_the_test_is_scipys_paired_t_test():
    differences = experiments.with_minus_without(recorded_shape())
    emotion = differences[differences["task"] == "emotion"]
    assert emotion["seed"].tolist() == [77, 78] and emotion["difference"].tolist() == [1.0, 1.5]
    tests = experiments.paired_test(differences)
    assert tests.loc["emotion", "seeds"] == 2 and tests.loc["emotion", "mean difference"] == 1.25
    spread = emotion["difference"].std()  # t = mean / (sd / sqrt(n))
    assert math.isclose(tests.loc["emotion", "t"], 1.25 / (spread / math.sqrt(2)))
    assert 0 < tests.loc["sentiment", "p"] <= 1 and tests.loc["sentiment", "mean difference"] == 0.0
    one_pair = experiments.paired_test(differences[differences["seed"] == 77])
    assert one_pair["seeds"].tolist() == [1, 1] and one_pair["t"].isna().all()


def test_the_shipped_file_has_the_recorded_columns_and_reads_into_the_lessons_tables():
    experiment = experiments.third_task_experiment()
    assert list(experiment.columns)[:5] == ["arm", "seed", "task", "test", "dev"]
    experiments.paired_test(experiments.with_minus_without(experiment))  # whatever rows it holds


def test_the_figure_marks_zero_and_draws_every_seed():
    differences = experiments.with_minus_without(recorded_shape())
    figure = mtl.plots.paired_differences(differences)
    assert [axes.get_title() for axes in figure.axes] == ["emotion", "sentiment"]
    for axes in figure.axes:
        assert any(list(line.get_ydata()) == [0, 0] for line in axes.get_lines())
        assert len(axes.collections[0].get_offsets()) == 2
    assert len(mtl.plots.paired_differences(differences.iloc[:0]).axes) == 1  # no pair: one empty panel


def test_with_vs_without_puts_the_shared_tasks_side_by_side(tiny_run, fitted):
    table = lessons.with_vs_without(tiny_run, fitted)  # tiny_run: emotion + irony
    emotion = table.loc["emotion"]
    assert emotion["without"] == 100 * fitted.results["emotion"]["test"]["official"]
    assert emotion["with - without"] == emotion["with"] - emotion["without"]
    assert math.isnan(table.loc["irony", "without"]) and table.loc["irony", "majority baseline"] > 0

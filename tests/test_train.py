"""The training loop on real TweetEval data: it learns, scores each task on dev, keeps its best."""

import pandas as pd
import pytest

from mtl_tutorial.sampling import adaptive_probabilities, draw_tasks, task_probabilities, task_schedule
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.data import DATA_DIR_VARIABLE
from mtl_tutorial.evaluate import evaluate_run
from mtl_tutorial.lessons import lesson_config, open_or_train
from mtl_tutorial.runs import load_history
from mtl_tutorial.train import fit


@pytest.fixture(scope="module")
def real_run(lesson_runs, tweeteval_dir):
    """The packaged pre-trained MiniLM on emotion + sentiment at the CI scale (400 training and 300 dev/test
    tweets each, two epochs): lesson 0's run. Read back from the session's lessons folder when the student
    copies (tests/test_course.py) trained it already, else trained here (~1 min) and read back by nbval."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv(DATA_DIR_VARIABLE, str(tweeteval_dir))  # as the lessons find the data
        return open_or_train(lesson_config(scale="ci"), lesson_runs / "multitask")


@pytest.mark.slow  # the real MiniLM run
@pytest.mark.lesson("00_overview")
def test_a_short_real_run_beats_the_majority_baseline(real_run):
    for task, result in real_run.results.items():
        majority = result["test_majority_baseline"]["official"]
        assert result["dev"]["official"] > majority + 0.1, (task, result["dev"], majority)
        assert result["test"]["official"] > majority + 0.1, (task, result["test"], majority)
        assert result["test_examples"] == 300


@pytest.mark.slow  # the real MiniLM run
@pytest.mark.lesson("00_overview")
def test_history_records_real_losses_and_speed(real_run):
    history = real_run.history
    assert list(history["task"]) == ["emotion", "sentiment"] * 2
    assert history["train_examples"].sum() == 1600  # two passes over both capped training sets
    assert (history["train_loss"] > 0).all() and (history["dev_loss"] > 0).all()  # both were really summed
    assert (history["examples_per_second"] > 0).all() and (history["pad_fraction"] < 0.2).all()
    assert load_history(real_run.folder).equals(history)
    # two tasks: one cosine per epoch, shown on both rows
    cosines = history.groupby("epoch")["gradient_cosine"]
    assert (cosines.nunique() == 1).all() and history["gradient_cosine"].between(-1, 1).all()


@pytest.mark.slow  # the real MiniLM run
@pytest.mark.lesson("00_overview")
def test_history_records_each_epochs_task_mix(real_run):
    assert real_run.history["sampling_probability"].tolist() == [0.5] * 4  # proportional, 400 + 400 tweets


@pytest.mark.slow  # the real MiniLM run
@pytest.mark.lesson("00_overview")
def test_test_scores_come_from_each_tasks_best_checkpoint(real_run, tweeteval_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tweeteval_dir))
    again = evaluate_run(real_run.folder, "test").set_index("task")
    for task, result in real_run.results.items():
        assert again.loc[task, "official"] == pytest.approx(result["test"]["official"])


@pytest.mark.parametrize("sampler", ["round_robin", "uniform"])
def test_the_sampler_decides_how_much_each_task_trains(tmp_path, tiny_encoder_dir, tweeteval_dir, sampler):
    config = TrainConfig(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), sampler=sampler, epochs=1,
                         max_train_examples=320, max_eval_examples=50, batch_size=32,
                         data_dir=str(tweeteval_dir))
    run = fit(config, tmp_path / sampler, progress=False)
    steps = task_schedule({"emotion": 320, "irony": 320}, 20, sampler, seed=config.seed, epoch=1,
                          num_epochs=1)
    # every batch is full: 320 = 10 x 32
    expected = {task: 32 * steps.count(task) for task in ("emotion", "irony")}
    assert dict(zip(run.history["task"], run.history["train_examples"])) == expected


def test_a_single_task_run_is_the_same_loop(tmp_path, tiny_encoder_dir, tweeteval_dir):
    config = TrainConfig(tasks=["irony"], model=str(tiny_encoder_dir), epochs=2, max_train_examples=64,
                         max_eval_examples=50, data_dir=str(tweeteval_dir))
    run = fit(config, tmp_path / "single", progress=False)
    assert list(run.history["task"]) == ["irony", "irony"] and list(run.results) == ["irony"]
    assert (tmp_path / "single" / "best" / "irony" / "heads.safetensors").exists()


class Crash(Exception):
    pass


def crash_after_first_epoch(history):
    if history["epoch"].max() == 1:
        raise Crash


def test_the_adaptive_sampler_follows_the_dev_scores_and_resumes_to_the_same_run(tmp_path, tiny_encoder_dir,
                                                                                 tweeteval_dir):
    targets = {"emotion": 0.5, "irony": 0.9}  # above the tiny model's scores: both lag, by different gaps
    config = TrainConfig(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), sampler="adaptive",
                         target_scores=targets, temperature=1.0, epochs=3, batch_size=8,
                         max_train_examples=96, max_eval_examples=40, max_length=32,
                         data_dir=str(tweeteval_dir))
    history = fit(config, tmp_path / "whole", progress=False).history
    base = task_probabilities({"emotion": 96, "irony": 96}, "temperature", 1.0)
    for epoch in (1, 2, 3):
        before = history[history["epoch"] < epoch]
        scores = {task: before.loc[before["task"] == task, "dev_official"].tolist() for task in targets}
        mix = adaptive_probabilities(base, scores, targets)
        rows = history[history["epoch"] == epoch]
        assert rows["sampling_probability"].tolist() == pytest.approx(list(mix.values()))
        schedule = draw_tasks(mix, 24, config.seed, epoch)  # 2 x 12 batches of 8 per epoch
        assert rows["train_examples"].tolist() == [8 * schedule.count(task) for task in targets]
    assert history.loc[history["epoch"] == 2, "sampling_probability"].tolist() != [0.5, 0.5]  # the mix moved

    with pytest.raises(Crash):
        fit(config, tmp_path / "resumed", progress=False, on_epoch_end=crash_after_first_epoch)
    resumed = fit(config, tmp_path / "resumed", resume=True, progress=False).history
    clock = ["seconds", "examples_per_second", "tokens_per_second"]
    pd.testing.assert_frame_equal(resumed.drop(columns=clock), history.drop(columns=clock))

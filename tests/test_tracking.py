"""--report-to tensorboard: the curves read back from the event files are the history's and the schedule's."""

import dataclasses
import shlex
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from accelerate import Accelerator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import get_linear_schedule_with_warmup

from mtl_tutorial import train
from mtl_tutorial.cli import build_parser, command_line, config_from_arguments, main
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.runs import prepare_folder
from mtl_tutorial.tracking import start_tracking
from mtl_tutorial.train import fit

CLOCK = ["seconds", "examples_per_second", "tokens_per_second"]
TASKS = ["emotion", "sentiment"]


def small_config(tiny_encoder_dir, small_tweeteval_dir, **settings) -> TrainConfig:
    """48 training tweets per task in full batches of 8: 6 batches of each task per epoch."""
    return TrainConfig(**{"tasks": TASKS, "model": str(tiny_encoder_dir), "epochs": 2, "batch_size": 8,
                          "max_train_examples": 48, "max_eval_examples": 40, "max_length": 32,
                          "learning_rate": 1e-3, "data_dir": str(small_tweeteval_dir), **settings})


def scalars(folder) -> dict[str, dict[int, float]]:
    """Every scalar curve of a run's logs/, as {tag: {step: value}} (a step twice fails the test)."""
    events = EventAccumulator(str(folder / "logs"), size_guidance={"scalars": 0})
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        points = events.Scalars(tag)
        assert len({point.step for point in points}) == len(points), f"{tag} has a step twice"
        curves[tag] = {point.step: point.value for point in points}
    return curves


def as_logged(value: float) -> float:
    return float(np.float32(value))  # an event file keeps a scalar as a 32-bit float


def epoch_ends(curves: dict) -> dict[int, int]:
    """Each epoch's last global step, from the `epoch` curve."""
    return {int(epoch): step for step, epoch in curves["epoch"].items()}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, tiny_encoder_dir, small_tweeteval_dir):
    """The same run with and without tracking, the tracked one logging every step."""
    folder = tmp_path_factory.mktemp("tracking")
    config = small_config(tiny_encoder_dir, small_tweeteval_dir, report_to="tensorboard", log_every=1)
    tracked = fit(config, folder / "tracked", progress=False)
    untracked = fit(dataclasses.replace(config, report_to=None), folder / "untracked", progress=False)
    return config, tracked, untracked, scalars(folder / "tracked")


def test_tracking_moves_no_number(sampled):
    _, tracked, untracked, _ = sampled
    pd.testing.assert_frame_equal(tracked.history.drop(columns=CLOCK), untracked.history.drop(columns=CLOCK))
    assert tracked.results == untracked.results
    assert not (untracked.folder / "logs").exists()


def test_the_dev_scores_mix_and_probe_are_the_historys(sampled):
    _, tracked, _, curves = sampled
    history = pd.read_csv(tracked.folder / "history.csv")
    ends = epoch_ends(curves)
    assert ends == {1: 12, 2: 24}  # 12 steps an epoch: the steps go on from one epoch to the next
    for row in history.itertuples():
        step = ends[row.epoch]
        for metric in ("loss", "accuracy", "macro_f1", "macro_recall", "official"):
            assert curves[f"dev/{metric}/{row.task}"][step] == as_logged(getattr(row, f"dev_{metric}"))
        assert curves[f"task_mix/{row.task}"][step] == as_logged(row.sampling_probability)
        assert curves[f"gradient_cosine/{row.task}"][step] == as_logged(row.gradient_cosine)
        assert curves[f"train/epoch_loss/{row.task}"][step] == as_logged(row.train_loss)


def test_the_step_losses_average_to_each_epochs_train_loss(sampled):
    _, tracked, _, curves = sampled
    history = pd.read_csv(tracked.folder / "history.csv")
    ends = epoch_ends(curves)
    for row in history.itertuples():
        first = ends.get(row.epoch - 1, 0)
        losses = [value for step, value in curves[f"train/loss/{row.task}"].items()
                  if first < step <= ends[row.epoch]]
        assert len(losses) == row.train_examples // 8  # logged at every step the task trained (full batches)
        assert np.mean(losses) == pytest.approx(row.train_loss, rel=1e-5)
    emotion, sentiment = (set(curves[f"train/loss/{task}"]) for task in TASKS)
    assert not emotion & sentiment and emotion | sentiment == set(range(1, 25))  # one task per step


def test_the_learning_rate_is_the_schedules(sampled):
    config, _, _, curves = sampled
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * 24), 24)
    expected = {}
    for step in range(1, 25):
        optimizer.step()
        scheduler.step()
        expected[step] = as_logged(scheduler.get_last_lr()[0])
    assert curves["train/learning_rate"] == expected


def test_a_resumed_run_appends_and_ends_with_the_same_curves(tmp_path, monkeypatch, tiny_encoder_dir,
                                                            small_tweeteval_dir):
    # every task at every step (6 steps an epoch), learned weights, logged every 4 steps and at epoch ends;
    # the run dies after logging epoch 2 but before saving it, so epoch 2 is trained and logged again
    config = small_config(tiny_encoder_dir, small_tweeteval_dir, strategy="all-tasks", combine="uncertainty",
                          report_to="tensorboard", log_every=4)
    save_epoch = train.save_epoch

    def dies_at_epoch_2(folder, state, improved):
        if state.epoch == 2:
            raise RuntimeError("killed")
        save_epoch(folder, state, improved)

    monkeypatch.setattr(train, "save_epoch", dies_at_epoch_2)
    with pytest.raises(RuntimeError, match="killed"):
        fit(config, tmp_path / "run", progress=False)
    monkeypatch.setattr(train, "save_epoch", save_epoch)
    run = fit(config, tmp_path / "run", resume=True, progress=False)

    assert len(list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))) == 2
    curves = scalars(tmp_path / "run")
    assert epoch_ends(curves) == {1: 6, 2: 12}
    assert sorted(curves["train/learning_rate"]) == [4, 6, 8, 12]
    for row in run.history.itertuples():
        step = 6 * row.epoch
        assert curves[f"task_weight/{row.task}"][step] == as_logged(row.weight)
        assert curves[f"dev/official/{row.task}"][step] == as_logged(row.dev_official)
        losses = curves[f"train/loss/{row.task}"]
        if row.epoch == 1:  # intervals of 4 and 2 steps of 8 tweets
            assert (4 * losses[4] + 2 * losses[6]) / 6 == pytest.approx(row.train_loss, rel=1e-5)
    assert "task_mix/emotion" not in curves  # nothing is sampled


def test_tracking_is_no_part_of_what_makes_a_run(tmp_path, tiny_encoder_dir, small_tweeteval_dir):
    config = small_config(tiny_encoder_dir, small_tweeteval_dir, epochs=1, max_train_examples=8)
    fit(config, tmp_path / "run", progress=False)
    # turned on for the resume (or read back by a lesson): the same run
    assert prepare_folder(tmp_path / "run", dataclasses.replace(config, report_to="tensorboard", log_every=7),
                          resume=True)
    # `==` leaves these settings out; the command line keeps them
    tracked = TrainConfig(report_to="tensorboard", log_every=10)
    words = shlex.split(command_line(tracked, "runs/x"))
    assert words[2:6] == ["--report-to", "tensorboard", "--log-every", "10"]
    again = config_from_arguments(build_parser().parse_args(words[1:]))
    assert dataclasses.asdict(again) == dataclasses.asdict(tracked) and again == TrainConfig()
    with pytest.raises(ValueError, match="unknown report_to 'wandb'"):
        TrainConfig(report_to="wandb")
    with pytest.raises(ValueError, match="log_every must be at least 1"):
        TrainConfig(log_every=0)
    with pytest.raises(ValueError, match="needs an Accelerator made with log_with='tensorboard'"):
        start_tracking(Accelerator(), dataclasses.replace(config, report_to="tensorboard"), 0)


def test_without_tensorboard_the_command_line_stops_in_one_line(monkeypatch, tmp_path, capsys,
                                                                tiny_encoder_dir, small_tweeteval_dir):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    folder = tmp_path / "run"
    status = main(["train", "--tasks", *TASKS, "--model", str(tiny_encoder_dir), "--epochs", "1",
                   "--report-to", "tensorboard", "--data-dir", str(small_tweeteval_dir),
                   "--out", str(folder)])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        "mtl-tutorial train: error: report_to='tensorboard' needs tensorboard, which is not installed: "
        "run  pip install tensorboard"]
    assert not folder.exists()  # stopped before anything was written

"""Lesson 4's optimiser explained: record_steps takes fit's own steps, and its numbers mean what they say."""

import math

import pytest
import torch
import torch.nn.functional as F

from mtl_tutorial import TrainConfig, fit, plots
from mtl_tutorial.optimisation import cross_entropy_table, record_steps, uniform_guess_loss


@pytest.fixture(scope="module")
def config(tiny_encoder_dir, tweeteval_dir):
    return TrainConfig(tasks=["emotion", "sentiment"], model=str(tiny_encoder_dir),
                       data_dir=str(tweeteval_dir), epochs=2, max_train_examples=64, max_eval_examples=32,
                       gradient_probe_batches=0, learning_rate=1e-3)


@pytest.fixture(scope="module")
def recorded(config):
    return record_steps(config, steps=4)  # one epoch: 2 batches per task


def test_the_recorded_steps_are_fits_first_epoch(config, recorded, tmp_path):
    history = fit(config, tmp_path / "run", progress=False).history
    steps = recorded.steps
    for task, rows in steps.groupby("task"):
        fit_loss = history.query("epoch == 1 and task == @task")["train_loss"].item()
        assert rows["loss"].mean() == pytest.approx(fit_loss, rel=1e-5)  # 64 tweets: two full batches each


def test_the_schedule_is_the_runs_warm_up_and_linear_decay(config, recorded):
    schedule = recorded.schedule
    assert len(schedule) == 8 and recorded.warmup_steps == 0  # 4 steps an epoch, 2 epochs, int(0.1 * 8)
    assert schedule.iloc[0] == pytest.approx(config.learning_rate)
    assert list(schedule) == pytest.approx([config.learning_rate * (8 - step) / 8 for step in range(8)])
    assert list(recorded.steps["learning_rate"]) == pytest.approx(list(schedule.iloc[:4]))
    longer = record_steps(config.__class__(**{**config.__dict__, "epochs": 5}), steps=2)
    assert longer.warmup_steps == 2 and list(longer.schedule.iloc[:3]) == pytest.approx([0, 5e-4, 1e-3])
    assert longer.steps["update_size"].iloc[0] == 0  # warm-up starts at 0: the first step moves nothing


def test_gradient_norms_are_taken_before_clipping_and_adamw_moves_weights_by_about_the_rate(config, recorded):
    steps = recorded.steps
    assert (steps["gradient_norm"] > 0).all()
    assert list(steps["clipped"]) == list(steps["gradient_norm"] > config.max_grad_norm)
    tight = record_steps(config.__class__(**{**config.__dict__, "max_grad_norm": 1e-6}), steps=2)
    assert tight.steps["clipped"].all()
    # the first step's norm is the same: it is measured before the clip, which then shrinks the update
    assert tight.steps["gradient_norm"].iloc[0] == pytest.approx(steps["gradient_norm"].iloc[0], rel=1e-6)
    first = steps.iloc[0]  # Adam's first step is lr * g / |g|: every weight with a gradient moves by lr
    assert first["update_size"] == pytest.approx(first["learning_rate"], rel=1e-3)


def test_cross_entropy_by_hand_is_torchs(recorded):
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    table = cross_entropy_table(logits, labels, ["negative", "neutral", "positive"])
    assert list(table["label"]) == ["negative", "positive"]
    assert table["loss = -log p"].mean() == pytest.approx(F.cross_entropy(logits, labels).item())
    assert table["loss = -log p"].iloc[1] == pytest.approx(uniform_guess_loss(3))
    assert uniform_guess_loss(3) == pytest.approx(math.log(3))
    first = recorded.first_batch
    assert first["loss = -log p"].mean() == pytest.approx(recorded.steps["loss"].iloc[0], rel=1e-5)


def test_record_steps_refuses_a_run_that_trains_every_task_at_every_step(config):
    with pytest.raises(ValueError, match="strategy is 'all-tasks'"):
        record_steps(config.__class__(**{**config.__dict__, "strategy": "all-tasks"}))


def test_the_pictures_draw_the_recorded_numbers(recorded):
    axes = plots.learning_rate_schedule(recorded).axes[0]
    assert list(axes.get_lines()[0].get_ydata()) == list(recorded.schedule) and axes.get_ylim()[0] == 0
    axes = plots.gradient_norms(recorded).axes[0]
    assert [bar.get_height() for bar in axes.patches] == list(recorded.steps["gradient_norm"])
    assert axes.get_lines()[0].get_ydata()[0] == recorded.max_grad_norm
    axes = plots.adamw_steps(recorded).axes[0]
    assert list(axes.get_lines()[1].get_ydata()) == list(recorded.steps["update_size"])
    figure = plots.cross_entropy_probabilities(recorded.first_batch, rows=2)
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert sum(heights) == pytest.approx(1.0) and max(heights) <= 1
    assert f"{recorded.first_batch['loss = -log p'].iloc[0]:.3f}" in figure.axes[0].get_title()

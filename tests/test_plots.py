"""The pictures that are more than a chart of a table: the architecture and the tweet-length shares."""

import matplotlib
import pytest

matplotlib.use("Agg")

from mtl_tutorial import plots


def texts_of(figure) -> list[str]:
    return [text.get_text() for axes in figure.axes for text in axes.texts]


@pytest.mark.parametrize("tasks", [["emotion"], ["emotion", "sentiment"], ["emotion", "sentiment", "hate"]])
def test_architecture_draws_one_shared_encoder_and_one_head_per_task(tasks):
    texts = texts_of(plots.architecture(tasks))
    assert sum(text.startswith("shared encoder") for text in texts) == 1
    assert sum(text.startswith("sampler") for text in texts) == 1
    for task in tasks:
        assert [text for text in texts if text.startswith(f"{task} head")], f"no head for {task}: {texts}"
        assert [text for text in texts if text.startswith(f"{task}\ntweets")], f"no tweets of {task}: {texts}"
    assert len([text for text in texts if " head" in text.split("\n")[0]]) == len(tasks)


def test_architecture_writes_the_label_names_in_each_head_and_refuses_no_tasks():
    labels = {"sentiment": ["negative", "neutral", "positive"]}
    texts = texts_of(plots.architecture(["sentiment", "emotion"], labels))
    sentiment_head = next(text for text in texts if text.startswith("sentiment head"))
    assert "negative, neutral" in sentiment_head.replace("\n", " ")
    assert next(text for text in texts if text.startswith("emotion head")) == "emotion head"
    with pytest.raises(ValueError, match="at least one task"):
        plots.architecture([])


def test_token_lengths_draws_shares_so_a_small_task_is_as_tall_as_a_big_one():
    lengths = {"small": [10] * 5, "big": [10] * 500 + [30] * 500}
    axes = plots.token_lengths(lengths, max_length=64).axes[0]
    heights = {}
    for container, task in zip(axes.containers, lengths):
        heights[task] = [patch.get_height() for patch in container]
    assert sum(heights["small"]) == pytest.approx(1.0) and sum(heights["big"]) == pytest.approx(1.0)
    assert max(heights["small"]) == pytest.approx(1.0) and max(heights["big"]) == pytest.approx(0.5)
    assert "share" in axes.get_ylabel()


def test_combined_gradients_draws_every_vector_in_the_plane_the_two_gradients_span():
    import torch

    from mtl_tutorial import combined_steps

    first, second = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 2.0, 0.0])  # lengths 5 and 2, at 90°
    steps = combined_steps(-first, first + second)  # a conflicting pair: cosine < 0
    figure = plots.combined_gradients(-first, first + second, steps, ("emotion", "sentiment"))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    ends = {label: (line.get_xdata()[-1], line.get_ydata()[-1]) for label, line in lines.items()}
    assert ends["emotion gradient"] == pytest.approx((5.0, 0.0))  # the first axis runs along it
    x, y = ends["sentiment gradient"]
    assert (x, y) == pytest.approx((-5.0, 2.0))  # its length and its angle with the first are kept
    for method, step in steps.items():
        along, across = ends[f"{method} step"]
        assert along * 5.0 == pytest.approx(float(step @ -first), rel=1e-5)  # dot products are kept
        assert along * x + across * y == pytest.approx(float(step @ (first + second)), rel=1e-5, abs=1e-6)
    cosine = -25 / (5 * 29**0.5)
    assert f"cosine of the two gradients = {cosine:+.3f}" in figure.axes[0].get_title()
    with pytest.raises(ValueError, match="a gradient is zero"):
        plots.combined_gradients(first, torch.zeros(3), {})


def test_strategy_scores_draws_one_bar_per_arm_and_task_with_the_first_row_as_reference():
    from mtl_tutorial import short_experiment

    table = short_experiment()
    axes = plots.strategy_scores(table).axes[0]
    widths = [[patch.get_width() for patch in container] for container in axes.containers]
    assert widths == [table["emotion"].tolist()[::-1], table["sentiment"].tolist()[::-1]]
    assert [line.get_xdata()[0] for line in axes.get_lines()] == [table["emotion"][0], table["sentiment"][0]]

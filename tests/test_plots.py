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

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
    figure = plots.strategy_scores(table)
    assert len(figure.axes) == table["learning_rate"].nunique() == 2  # like with like: a panel per lr
    for axes, (rate, rows) in zip(figure.axes, table.groupby("learning_rate", sort=False)):
        widths = [[patch.get_width() for patch in container] for container in axes.containers]
        assert widths == [rows["emotion"].tolist()[::-1], rows["sentiment"].tolist()[::-1]]
        references = [line.get_xdata()[0] for line in axes.get_lines()]
        assert references == [rows["emotion"].iloc[0], rows["sentiment"].iloc[0]]  # its own first row
        assert axes.get_xlim()[0] == 0 and f"{rate:g}" in axes.get_title()


def test_schedule_counts_keeps_two_equal_lines_both_visible():
    figure = plots.schedule_counts({"emotion": 3257, "sentiment": 45615}, steps=40, samplers=("round_robin",))
    emotion, sentiment = figure.axes[0].get_lines()
    assert abs(emotion.get_ydata() - sentiment.get_ydata()).max() <= 1  # round robin: they take turns
    assert emotion.get_linestyle() != sentiment.get_linestyle()
    assert emotion.get_linewidth() > sentiment.get_linewidth() and figure.axes[0].get_ylim()[0] == 0


def test_combined_gradients_marks_a_step_that_lies_on_another():
    import torch

    from mtl_tutorial import combined_steps

    first, second = torch.tensor([4.0, 0.0]), torch.tensor([1.0, 2.0])  # no conflict: PCGrad = the sum
    steps = combined_steps(first, second)
    labels = [line.get_label() for line in plots.combined_gradients(first, second, steps).axes[0].get_lines()]
    assert "pcgrad step (the same as equal)" in labels and "equal step" in labels
    assert "mgda step" in labels  # a step of its own keeps its plain label


def test_sharing_diagram_draws_what_each_task_shares_and_owns_with_the_models_counts(tiny_encoder_dir):
    from transformers import BertModel

    from mtl_tutorial import BUILDERS, TrainConfig
    from mtl_tutorial.sharing import parameter_table

    labels = {"emotion": ["anger", "joy"], "sentiment": ["negative", "neutral", "positive"]}
    models = {name: build(BertModel.from_pretrained(tiny_encoder_dir), labels, TrainConfig(sharing=name))
              for name, build in BUILDERS.items()}
    counts = parameter_table(models)
    figure = plots.sharing_diagram(counts)
    hard, lora, soft = ([text.get_text() for text in axes.texts] for axes in figure.axes)
    encoder = counts.loc[("hard", "emotion"), "trained by every task"]
    assert [text for text in hard if "trained by every task" in text] == [
        f"encoder, shared: trained by every task\n{encoder:,} parameters"]
    assert len([text for text in lora if "frozen" in text]) == 1
    for task in labels:
        assert f"{task}'s adapter (B A)" in lora and f"{task}'s copy\nof the encoder" in soft
        for sharing, texts in (("hard", hard), ("lora", lora), ("soft", soft)):
            assert f"{task} head" in texts
            row = counts.loc[(sharing, task)]
            beneath = texts[-1]
            assert f"{task}: trains {row['trained by this task alone']:,} alone" in beneath
            assert f"stores {row['stored in its checkpoint']:,}" in beneath
    assert not [text for text in hard + soft if "adapter" in text]
    with pytest.raises(ValueError, match="no drawing for sharing"):
        plots.sharing_diagram(counts.rename(index={"soft": "partial"}))


def test_sharing_scores_and_costs_draws_one_seed_from_zero_beside_each_runs_costs(sharing_table):
    from mtl_tutorial import sharing_costs, sharing_experiment, sharing_results

    made = sharing_table
    for table in (made, sharing_experiment()):  # hand-made, and the recorded file as it is now
        results = sharing_results(table, seed=77)
        figure = plots.sharing_scores_and_costs(table, seed=77)
        tasks = list(dict.fromkeys(results.index.get_level_values("task")))
        scores, costs = figure.axes[:len(tasks)], figure.axes[len(tasks):]
        for axes, task in zip(scores, tasks):
            rows = results.loc[task]
            dev, test = ([patch.get_width() for patch in container] for container in axes.containers)
            assert dev == rows["dev"].tolist()[::-1] and test == rows["test"].tolist()[::-1]  # first on top
            assert axes.get_xlim()[0] == 0 and task in axes.get_title() and "seed 77" in axes.get_title()
        expected = sharing_costs(results)
        for axes, cost in zip(costs, ["seconds per epoch", "peak MiB", "checkpoint MiB"]):
            assert [patch.get_width() for patch in axes.containers[0]] == expected[cost].tolist()[::-1]
            assert axes.get_xlim()[0] == 0
    lines = {line.get_label(): line for line in plots.sharing_scores_and_costs(made).axes[0].get_lines()}
    emotion = made[made["task"] == "emotion"]
    assert lines["test, other seeds"].get_xdata().tolist() == emotion.query("seed == 78")["test"].tolist()
    alone = emotion.query("arm == 'single-task emotion'")["test"].item()
    assert lines["single-task test"].get_xdata()[0] == alone

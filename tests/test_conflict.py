import pytest
import torch

from mtl_tutorial.conflict import encoder_gradient, gradient_cosines
from mtl_tutorial.batching import EncodedSplit, pad_batch
from mtl_tutorial.model import build_model


@pytest.fixture
def model_and_splits(tiny_encoder_dir):
    torch.manual_seed(0)
    model, tokenizer = build_model({"a": ["no", "yes"], "b": ["no", "yes"]}, str(tiny_encoder_dir))
    texts = ["i love it", "i hate it", "best day ever", "worst day ever"] * 4
    ids = tokenizer(texts)["input_ids"]
    return (model, tokenizer, EncodedSplit(ids, [1, 0, 1, 0] * 4, tokenizer.pad_token_id),
            EncodedSplit(ids, [0, 1, 0, 1] * 4, tokenizer.pad_token_id))


def test_same_task_same_batch_gives_cosine_one_and_leaves_no_gradients(model_and_splits):
    model, tokenizer, split, _ = model_and_splits
    model.eval()
    batch = pad_batch(split.input_ids[:4], tokenizer.pad_token_id, split.labels[:4])
    first, second = encoder_gradient(model, batch, "a"), encoder_gradient(model, batch, "a")
    assert torch.nn.functional.cosine_similarity(first, second, dim=0).item() == pytest.approx(1.0, abs=1e-5)
    assert first.numel() == sum(p.numel() for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_opposite_labels_through_tied_heads_conflict(model_and_splits):
    model, tokenizer, agree, disagree = model_and_splits
    model.heads["b"].load_state_dict(model.heads["a"].state_dict())  # the same head: only the labels differ
    same = gradient_cosines(model, {"a": agree, "b": agree}, batches=2, batch_size=8)
    opposite = gradient_cosines(model, {"a": agree, "b": disagree}, batches=2, batch_size=8)
    assert same["a~b"] == pytest.approx(1.0, abs=1e-4)
    assert opposite["a~b"] < -0.95  # flipped labels on one 2-class head: nearly opposite gradients


def conflict_history(tasks, cosines):
    import pandas as pd

    rows = [{"epoch": epoch, "task": task, "gradient_cosine": cosine}
            for epoch, values in enumerate(cosines, start=1) for task, cosine in zip(tasks, values)]
    return pd.DataFrame(rows)


def test_gradient_conflict_plot_draws_one_line_for_two_tasks_and_one_per_task_for_three():
    from mtl_tutorial import plots

    history = conflict_history(["emotion", "sentiment"], [[0.3, 0.3], [0.1, 0.1]])
    two = plots.gradient_conflict(history).axes[0]
    drawn = [line for line in two.get_lines() if not line.get_label().startswith("_")]  # not the 0 line
    assert [line.get_label() for line in drawn] == ["emotion vs sentiment"]
    assert list(drawn[0].get_ydata()) == [0.3, 0.1]
    three = plots.gradient_conflict(conflict_history(["a", "b", "c"], [[0.3, 0.2, -0.1]])).axes[0]
    assert [line.get_label() for line in three.get_lines() if not line.get_label().startswith("_")] == [
        "a vs the others (mean)", "b vs the others (mean)", "c vs the others (mean)"]


def test_gradient_conflict_plot_says_it_needs_two_tasks_for_a_one_task_run():
    import pandas as pd

    from mtl_tutorial import plots

    one_task = pd.DataFrame({"epoch": [1, 2], "task": ["emotion", "emotion"], "dev_official": [0.5, 0.6]})
    axes = plots.gradient_conflict(one_task).axes[0]
    assert not axes.get_lines()
    assert any("needs two tasks" in text.get_text() and "emotion" in text.get_text() for text in axes.texts)
    unmeasured = pd.DataFrame({"epoch": [1, 1], "task": ["emotion", "sentiment"]})
    message = plots.gradient_conflict(unmeasured).axes[0].texts[0].get_text()
    assert "did not measure it" in message

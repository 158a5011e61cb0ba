"""The notebooks' ready-made steps (recipes) and the pictures drawn from them (plots)."""

import json

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

from mtl_tutorial import plots, recipes
from mtl_tutorial.model import load_encoder
from mtl_tutorial.train import TrainConfig

matplotlib.use("Agg")


def test_lesson_config_is_quick_on_a_cpu_or_when_asked(monkeypatch):
    monkeypatch.setenv("MTL_TUTORIAL_QUICK", "1")
    quick = recipes.lesson_config()
    assert (quick.model, quick.epochs, quick.learning_rate) == (None, 2, 1e-4)
    assert (quick.max_train_examples, quick.max_eval_examples, quick.tasks) == (400, 300, ["emotion", "sentiment"])
    assert "CAPPED: at most 400 training tweets" in recipes.describe_scale(quick)
    assert "300 dev and 300 test tweets" in recipes.describe_scale(quick)
    assert recipes.lesson_config(["irony"], epochs=3).epochs == 3


def test_lesson_config_on_a_gpu_is_the_tutorials_recipe(monkeypatch):
    monkeypatch.delenv("MTL_TUTORIAL_QUICK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    full = recipes.lesson_config()
    assert (full.model, full.pooling, full.epochs, full.learning_rate) == ("roberta-base", "pooler", 5, 2e-5)
    assert full.max_train_examples is None and full.max_eval_examples is None and full.mixed_precision == "fp16"
    assert "all training, dev and test tweets" in recipes.describe_scale(full)
    monkeypatch.setenv("MTL_TUTORIAL_QUICK", "1")
    assert recipes.lesson_config().model is None


def test_padding_waste_counts_pad_tokens():
    waste = recipes.padding_waste([1, 1, 4, 4], batch_size=2, max_length=8)
    fixed, per_batch, grouped = waste.values()
    assert fixed == pytest.approx(1 - 10 / 32)
    assert grouped == 0.0  # length-grouped: [1, 1] and [4, 4], no padding at all
    assert grouped <= per_batch < fixed


def test_passes_per_epoch():
    table = recipes.passes_per_epoch({"small": 64, "big": 320}, batch_size=32)
    assert table.loc["proportional"].to_dict() == pytest.approx({"small": 1.0, "big": 1.0})
    assert table.loc["uniform"].to_dict() == pytest.approx({"small": 3.0, "big": 0.6})
    assert 1.0 < table.loc["temperature", "small"] < 3.0


def test_similarities_are_cosines(tiny_encoder_dir):
    encoder, tokenizer = load_encoder(str(tiny_encoder_dir))
    texts = ["i love it", "i hate it", "what a day"]
    for pooling in ("mean", "cls", "pooler"):
        table = recipes.similarities(encoder, tokenizer, texts, pooling)
        assert table.shape == (3, 3) and list(table.index) == texts
        assert torch.allclose(torch.tensor(table.values), torch.tensor(table.values.T), atol=1e-5)
        assert table.values.diagonal() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    figure = plots.similarity_maps({"mean": table, "cls": table})
    assert [axes.get_title() for axes in figure.axes[:2]] == ["pooling = 'mean'", "pooling = 'cls'"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    folder = tmp_path_factory.mktemp("runs")
    config = TrainConfig(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), epochs=2, max_train_examples=64,
                         max_eval_examples=50, max_length=32, learning_rate=1e-3, data_dir=str(tweeteval_dir))
    multitask = recipes.open_or_train(config, folder / "multitask")
    return config, folder, multitask, recipes.single_task_runs(config, folder / "single")


def test_open_or_train_reads_back_a_finished_run_and_replaces_another(runs, tmp_path):
    config, folder, multitask, _ = runs
    written = (folder / "multitask" / "history.json").stat().st_mtime_ns
    again = recipes.open_or_train(config, folder / "multitask")
    assert (folder / "multitask" / "history.json").stat().st_mtime_ns == written  # not trained again
    assert again.results == multitask.results and again.history.equals(multitask.history)
    assert recipes.saved_config(tmp_path) is None
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a training run"):
        recipes.train_run(config, tmp_path)


def test_a_stopped_run_is_resumed(runs, tmp_path):
    config, *_ = runs
    recipes.train_run(config, tmp_path / "run")
    (tmp_path / "run" / "results.json").unlink()  # as if it had stopped before the test scores
    run = recipes.open_or_train(config, tmp_path / "run")
    assert list(run.history["epoch"]) == [1, 1, 2, 2] and (tmp_path / "run" / "results.json").exists()


def test_multitask_vs_single_task_table_and_plot(runs):
    config, folder, multitask, single = runs
    assert set(single) == {"emotion", "irony"}
    assert json.loads((folder / "single" / "irony" / "config.json").read_text())["tasks"] == ["irony"]
    table = recipes.multitask_vs_single_task(multitask, single)
    assert list(table.index) == ["emotion", "irony"] and table.loc["irony", "metric"] == "F1 of irony"
    assert table.loc["emotion", "multi-task"] == multitask.results["emotion"]["test"]["official"]
    assert table.loc["emotion", "single-task"] == single["emotion"].results["emotion"]["test"]["official"]
    assert table["multi - single"].to_list() == pytest.approx((table["multi-task"] - table["single-task"]).to_list())
    figure = plots.multitask_vs_single_task(table)
    assert figure.axes[0].get_ylabel() == "official test score" and len(figure.axes[0].patches) == 6


def test_test_predictions_reproduce_the_recorded_scores(runs):
    _, _, multitask, _ = runs
    for task in ("emotion", "irony"):
        predictions = recipes.predictions_on_test(multitask.folder, task)
        assert len(predictions) == 50 and list(predictions.columns) == ["text", "true", "predicted"]
        assert recipes.score_of(predictions, task) == pytest.approx(multitask.results[task]["test"]["official"])
        confusion = recipes.confusion_of(predictions)
        assert confusion.values.sum() == 50 and list(confusion.index) == list(predictions["true"].cat.categories)
    table = recipes.best_vs_last(multitask)
    assert table["last epoch"].to_list() == [2, 2]
    for task, row in table.iterrows():
        if row["best dev epoch"] == 2:
            assert row["test, last epoch"] == pytest.approx(row["test, best epoch"])


def test_label_tweet_asks_every_head(runs):
    _, _, multitask, _ = runs
    answer = recipes.label_tweet(recipes.best_models(multitask.folder), "yeah right, great weather")
    assert list(answer.columns) == ["task", "label", "probability", "chosen"]
    assert answer.groupby("task")["probability"].sum().to_list() == pytest.approx([1.0, 1.0])
    figure = plots.head_probabilities(answer, "yeah right, great weather")
    assert [axes.get_title() for axes in figure.axes] == ["emotion head", "irony head"]


def test_new_plots_label_their_axes():
    sizes = {"emotion": 3257, "sentiment": 45615}
    figures = [plots.pad_fractions({"emotion": recipes.padding_waste([3, 9, 20, 40]), "sentiment": recipes.padding_waste([5, 7])}),
               plots.temperature_effect(sizes, 3.0)]
    for figure in figures:
        assert isinstance(figure, Figure)
        axes = figure.axes[0]
        assert axes.get_xlabel() and axes.get_title() and axes.get_legend() is not None

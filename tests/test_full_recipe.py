"""The GPU recipe's code path, run on a CPU: a tiny random RoBERTa stands in for roberta-base (no download),
through fit, evaluation, prediction and lesson 4 in a real kernel, with every tweet of a small
TweetEval copy (no caps), 5 epochs and the pooler representation."""

import json
import os
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

import mtl_tutorial as mtl

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def full_recipe(monkeypatch, tiny_roberta_dir, small_tweeteval_dir, tmp_path):
    """The environment a student's GPU runtime would have, with the encoder swapped for the tiny RoBERTa."""
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "gpu")
    monkeypatch.setenv("MTL_TUTORIAL_ENCODER", str(tiny_roberta_dir))
    monkeypatch.setenv("MTL_TUTORIAL_DATA_DIR", str(small_tweeteval_dir))
    monkeypatch.setenv("MTL_TUTORIAL_RUNS", str(tmp_path / "runs"))
    return mtl.lesson_config()


def test_the_full_recipe_trains_evaluates_and_predicts_with_a_roberta_encoder(full_recipe, tmp_path):
    config = full_recipe
    assert (config.pooling, config.epochs, config.learning_rate, config.mixed_precision) == \
        ("pooler", 5, 2e-5, "no")
    assert config.max_train_examples is None and config.train_fraction is None
    assert config.max_eval_examples is None
    run = mtl.fit(config, tmp_path / "run")
    assert sorted(set(run.history["epoch"])) == [1, 2, 3, 4, 5]
    # both tasks whole, 5 times (drawn at random per step)
    assert run.history["train_examples"].sum() == 5 * 480
    best = tmp_path / "run" / "best" / "emotion"
    assert json.loads((best / "mtl_model.json").read_text())["pooling"] == "pooler"
    assert json.loads((best / "config.json").read_text())["model_type"] == "roberta"
    results = mtl.evaluate_run(tmp_path / "run")
    assert list(results["task"]) == ["emotion", "sentiment"]
    assert results.set_index("task")["official"].to_dict() == {
        task: run.results[task]["test"]["official"] for task in ("emotion", "sentiment")}
    labelled = mtl.predict_run(tmp_path / "run", ["i am so happy today", "this is awful"])
    assert set(labelled["task"]) == {"emotion", "sentiment"}
    assert set(labelled.query("task == 'sentiment'")["label"]) <= {"negative", "neutral", "positive"}


@pytest.mark.slow
def test_lesson_4_runs_top_to_bottom_in_the_full_recipe(full_recipe, tmp_path):
    """A whole lesson, because only a whole run shows that the gpu scale's settings flow through a lesson's
    cells (nbval runs every lesson at the CI scale only): the settings printed, the loop by hand, the
    training panel and its run with a RoBERTa-type encoder. Lesson 0's calls are the test above's."""
    notebook = jupytext.read(NOTEBOOKS / "04_training.py")
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}, shutdown_kernel="immediate")
    # no front end for Output widgets (their output goes to the cell): nbclient's own one sometimes sat idle
    # for the whole cell timeout after lesson 4's training panel (see benchmarks/lesson_times.py)
    client.comm_open_handlers = {}
    client.execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "full recipe: the original tutorial's, on a GPU" in printed
    assert f"encoder {os.environ['MTL_TUTORIAL_ENCODER']}, pooling 'pooler', 5 epochs" in printed
    run = mtl.open_run(tmp_path / "runs" / "multitask")
    assert sorted(set(run.history["epoch"])) == [1, 2, 3, 4, 5]
    assert mtl.saved_config(tmp_path / "runs" / "multitask").model == os.environ["MTL_TUTORIAL_ENCODER"]

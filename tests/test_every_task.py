"""Every task the package lists: downloaded through the real download path, loaded, trained, scored, used."""

import pytest

from mtl_tutorial.config import TrainConfig
from mtl_tutorial.data import TWEETEVAL_TASKS, download_tweeteval, load_task
from mtl_tutorial.evaluate import evaluate_run, predict_run
from mtl_tutorial.train import fit


def label_names_in(mapping_file) -> list[str]:
    """The label names as the mapping file writes them: the second tab-separated column, in id order."""
    lines = mapping_file.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line.strip()]
    return [name for _, name, *_ in sorted(rows, key=lambda row: int(row[0]))]


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory, tweeteval_dir):
    cache = tmp_path_factory.mktemp("cache")
    for task in TWEETEVAL_TASKS:
        download_tweeteval(task, cache, tweeteval_dir.as_uri())
    return cache


@pytest.mark.parametrize("name", TWEETEVAL_TASKS)
def test_every_listed_task_downloads_and_loads_with_its_own_label_names(downloaded, tweeteval_dir, name):
    task = load_task(name, cache_dir=downloaded, base_url="file:///nowhere")  # cached: nothing fetched again
    mapping = tweeteval_dir / ("stance" if name.startswith("stance_") else name) / "mapping.txt"
    assert task.label_names == label_names_in(mapping)
    assert task.num_labels == len(task.label_names) >= 2 and len(set(task.label_names)) == task.num_labels
    for split, frame in task.splits.items():
        assert len(frame) > 0 and frame["label"].between(0, task.num_labels - 1).all(), split


def test_one_run_over_every_listed_task_trains_scores_and_predicts(downloaded, tiny_encoder_dir, tmp_path):
    config = TrainConfig(tasks=list(TWEETEVAL_TASKS), model=str(tiny_encoder_dir), epochs=1, batch_size=8,
                         max_length=32, max_train_examples=16, max_eval_examples=16, learning_rate=1e-3,
                         gradient_probe_batches=1, cache_dir=str(downloaded), base_url="file:///nowhere")
    run = fit(config, tmp_path / "all", progress=False)
    assert list(run.results) == list(TWEETEVAL_TASKS)
    for name, result in run.results.items():
        assert 0 <= result["test"]["official"] <= 1 and result["test_examples"] == 16, name
    scored = evaluate_run(run.folder, "dev").set_index("task")
    assert list(scored.index) == list(TWEETEVAL_TASKS)
    labelled = predict_run(run.folder, ["what a game ❤️ @user", "i can't stand this"])
    assert len(labelled) == 2 * len(TWEETEVAL_TASKS)
    emoji = load_task("emoji", cache_dir=downloaded, base_url="file:///nowhere")
    assert set(labelled.loc[labelled["task"] == "emoji", "label"]) <= set(emoji.label_names)

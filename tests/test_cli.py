"""The command line end to end, with a tiny random encoder so that it runs in seconds."""

import io
import json
import os
import shlex
import subprocess
import sys

import pandas as pd
import pytest

from mtl_tutorial import cli
from mtl_tutorial.cli import build_parser, command_line, config_from_arguments, main
from mtl_tutorial.config import TrainConfig


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    command = [sys.executable, "-m", "mtl_tutorial", "train", "--tasks", "emotion", "irony",
               "--model", str(tiny_encoder_dir), "--epochs", "2", "--max-train-examples", "64",
               "--max-length", "32", "--data-dir", str(tweeteval_dir), "--out", str(folder)]
    finished = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    return folder, finished.stdout


def test_train_writes_a_complete_run(trained_run):
    folder, stdout = trained_run
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "history.json", "history.csv", "results.json", "dev_curves.png", "best",
            "last"} <= names
    assert not [name for name in names if name.startswith(".")]  # no temporary leftovers
    history = pd.read_csv(folder / "history.csv")
    assert list(history[["epoch", "task"]].itertuples(index=False, name=None)) == [
        (1, "emotion"), (1, "irony"), (2, "emotion"), (2, "irony")]
    assert (history["train_examples"] > 0).all() and (history["dev_loss"] > 0).all()
    results = json.loads((folder / "results.json").read_text())
    assert results["irony"]["official_metric"] == "F1 of irony"
    # each task's best epoch is its first epoch with the top dev score
    for task, rows in history.groupby("task"):
        assert results[task]["best_epoch"] == rows.loc[rows["dev_official"].idxmax(), "epoch"]
    assert "majority baseline (test)" in stdout and "emotion" in stdout


def test_evaluate_reproduces_the_recorded_test_scores(trained_run, capsys):
    folder, _ = trained_run
    assert main(["evaluate", str(folder), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((folder / "results.json").read_text())
    for task in ("emotion", "irony"):
        assert f"{results[task]['test']['official']:.4f}" in printed


def test_predict_labels_text_with_every_head_or_one(trained_run, capsys):
    folder, _ = trained_run
    assert main(["predict", str(folder), "I love this", "so sad today"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("emotion") == 2 and printed.count("irony") >= 2
    assert main(["predict", str(folder), "--task", "irony", "yeah, great, another Monday"]) == 0
    assert "emotion" not in capsys.readouterr().out


def test_data_download_and_convert(tweeteval_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["data", "download", "irony", "--cache-dir", str(cache),
                 "--base-url", tweeteval_dir.as_uri()]) == 0
    assert "'train': 2862" in capsys.readouterr().out
    assert main(["data", "convert", "irony", "--data-dir", str(tweeteval_dir),
                 "--out", str(tmp_path / "tsv")]) == 0
    header = (tmp_path / "tsv" / "irony" / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "content\tlabel"


def test_errors_are_one_clear_line(tmp_path, tweeteval_dir, capsys):
    assert main(["train", "--tasks", "emotion", "feelings", "--data-dir", str(tweeteval_dir),
                 "--out", str(tmp_path / "r")]) == 2
    assert "unknown task 'feelings'" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "hello"]) == 2
    assert "is not a saved multi-task model" in capsys.readouterr().err


def test_a_users_mistakes_are_each_named_in_one_line(trained_run, tmp_path, capsys, monkeypatch):
    """What a new user got wrong, tried by hand: each ends in one line naming the value, file or line."""
    folder, _ = trained_run
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    cases = [
        (["predict", str(folder), "--max-length", "100000", "hello"],
         "max_length must be between 1 and this tokenizer's 512 tokens, got 100000"),
        (["predict", str(folder), "--task", "feelings", "hello"],
         f"error: run {folder} has no task 'feelings'"),  # a KeyError's words, without its quotes
        (["evaluate", str(folder / "best" / "emotion")], "holds a saved model, not a training run"),
        (["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")],
         "is not a training run: config.json is missing"),
        (["train", "--tasks", "emotion", "--out", str(afile / "run")], f"{afile} is a file, not a folder"),
        (["course", "grade", str(tmp_path), "--key", str(afile), "--out", str(tmp_path / "grades")],
         f"{afile} is not the answer_key.json of a course build"),
        (["course", "build", "--out", str(tmp_path)], "is not empty and holds no earlier build"),
    ]
    for words, message in cases:
        assert main(words) == 2, words
        err = capsys.readouterr().err  # after the progress bars of loading a model, if any
        last = err.rstrip("\n").split("\n")[-1]
        assert last.startswith(f"mtl-tutorial {words[0]}: error: ") and message in last, (words, err)
        assert "Traceback" not in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"fine\ncaf\xe9\n")))
    assert main(["predict", str(folder)]) == 2
    assert "standard input, line 2: not UTF-8 text (byte 0xe9" in capsys.readouterr().err
    for words in (["predict", str(folder), "--max-length", "0", "hi"],
                  ["course", "grade", str(tmp_path), "--cell-seconds", "0", "--out", str(tmp_path / "g")]):
        with pytest.raises(SystemExit, match="2"):
            main(words)
        assert "must be above 0, got 0" in capsys.readouterr().err


def test_ctrl_c_during_training_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "fit", interrupted)
    assert main(["train", "--tasks", "emotion", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == (f"mtl-tutorial train: interrupted; {tmp_path / 'run'} keeps every "
                                       "finished epoch: continue it with the same command and --resume\n")


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(tasks=["emotion"], sampler="temperature", temperature=3.0, learning_rate=1e-4,
                max_train_examples=6000, seed=78),
    TrainConfig(tasks=["irony", "my data/hate"], model="roberta-base", pooling="pooler", epochs=1,
                batch_size=16, max_length=48, max_eval_examples=100, mixed_precision="bf16",
                data_dir="/somewhere/else"),
    TrainConfig(strategy="all-tasks", combine="upgrad", epochs=2),
    TrainConfig(strategy="all-tasks"),
    TrainConfig(sampler="adaptive", target_scores={"emotion": 0.763, "sentiment": 0.691}, temperature=3.0),
])
def test_command_line_trains_the_same_config_again(config):
    words = shlex.split(command_line(config, "runs/my run"))
    assert words[:2] == ["mtl-tutorial", "train"] and words[-2:] == ["--out", "runs/my run"]
    again = config_from_arguments(build_parser().parse_args(words[1:]))
    assert again == TrainConfig(**{**config.__dict__, "data_dir": None})  # where the data lives is left out


def test_command_line_refuses_a_config_it_cannot_express():
    with pytest.raises(ValueError, match="no option for weight_decay"):
        command_line(TrainConfig(weight_decay=0.01), "runs/x")

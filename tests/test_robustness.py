"""Robustness: students' own data, runs killed mid-epoch, damaged or foreign files, hostile names.

Every bad input must stop with an error that names the file, line or value, and leave nothing half-written;
a killed run must resume to exactly the scores of a run that was never stopped; no user file may run code.
"""

import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from http.client import IncompleteRead
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtl_tutorial.cli import main
from mtl_tutorial.batching import encode
from mtl_tutorial.data import DataError, load_task
from mtl_tutorial.files import recover_interrupted_writes, staged_folder
from mtl_tutorial.model import build_model, load_encoder, save_model
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.evaluate import predict_run
from mtl_tutorial.runs import STATE_FILE, load_config
from mtl_tutorial.train import fit

from conftest import write_lines


# ---------------------------------------------------------------------------------------------
# Students' own data
# ---------------------------------------------------------------------------------------------


def test_tweeteval_format_keeps_odd_tweets_as_they_are(tmp_path):
    folder = tmp_path / "odd"
    texts = ['\ufeffsaid "hi"\tthen left', "", "NaN", "null", "  spaces  "]
    folder.mkdir()
    (folder / "mapping.txt").write_bytes("\ufeff0\tno\r\n1\tyes\r\n".encode())
    for split in ("train", "val", "test"):
        (folder / f"{split}_text.txt").write_bytes("\r\n".join(texts).encode() + b"\r\n")
        write_lines(folder / f"{split}_labels.txt", ["0", "1", "0", "1", "0"])
    task = load_task(folder)
    assert task.label_names == ["no", "yes"]
    assert task.splits["train"]["text"].tolist() == ['said "hi"\tthen left', "", "NaN", "null", "  spaces  "]
    assert task.splits["dev"]["label"].tolist() == [0, 1, 0, 1, 0]


@pytest.mark.parametrize("label", ["nan", "-1", "1.0", ""])
def test_a_label_that_is_not_an_id_is_named_with_its_line(tmp_path, label):
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "mapping.txt").write_text("0\tno\n1\tyes\n")
    for split in ("train", "val", "test"):
        write_lines(folder / f"{split}_text.txt", ["a", "b", "c"])
        write_lines(folder / f"{split}_labels.txt", ["0", "1", "1" if split != "val" else label])
    with pytest.raises(DataError, match=rf"val_labels.txt, line 3: label '{label}' is not an id in 0..1"):
        load_task(folder)


def course_folder(tmp_path, train: str, label2ind) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "label2ind.json").write_text(json.dumps(label2ind))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text(train, encoding="utf-8")
    return folder


def test_course_format_without_a_label_column_or_with_string_indices(tmp_path):
    with pytest.raises(DataError, match=r"train.tsv lacks the column\(s\) \['label'\]; "
                                        r"its header has \['content', 'emotion'\]"):
        load_task(course_folder(tmp_path, "content\temotion\nhi\tjoy\n", {"anger": 0, "joy": 1}))
    shutil.rmtree(tmp_path / "mine")
    with pytest.raises(DataError, match=r"label2ind.json must map each label name to a distinct index"):
        load_task(course_folder(tmp_path, "content\tlabel\nhi\tjoy\n", {"anger": 0, "joy": "1"}))


def test_nan_texts_from_pandas_are_named_by_row(tiny_encoder_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    # pandas reads the empty cell and NA as NaN
    frame = pd.read_csv(io.StringIO("text,label\nfine,0\n,1\nNA,0\n"))
    with pytest.raises(DataError, match=r"row 1: text nan is not a string"):
        encode(tokenizer, frame)


def test_a_single_task_name_or_paths_make_a_config_that_round_trips(tmp_path, tweeteval_dir):
    config = TrainConfig(tasks="emotion", data_dir=tweeteval_dir, model=tmp_path)
    assert config.tasks == ["emotion"]
    assert config.data_dir == str(tweeteval_dir) and config.model == str(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config.__dict__))
    assert load_config(tmp_path) == config


def test_a_damaged_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"tasks": ["emotion"], "epochs": ')
    with pytest.raises(ValueError, match=r"config.json is damaged or was not written by mtl_tutorial"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text('{"tasks": ["emotion"], "learning_rat": 0.1}')
    with pytest.raises(ValueError, match=r"config.json is damaged .*learning_rat"):
        load_config(tmp_path)


# ---------------------------------------------------------------------------------------------
# Names that must not reach outside, and errors that leave no folder behind
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../emotion", "stance_../../x", "/etc"])
def test_a_bad_task_name_is_refused_before_anything_is_written(tmp_path, tweeteval_dir, tiny_encoder_dir,
                                                               name):
    config = TrainConfig(tasks=["emotion", name], model=str(tiny_encoder_dir), epochs=1,
                         data_dir=str(tweeteval_dir))
    with pytest.raises(DataError, match=rf"unknown task '{name}'|/etc holds neither label2ind.json"):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_task_folder_given_as_a_relative_path_keeps_its_files_inside_the_run(tmp_path, tweeteval_dir,
                                                                               tiny_encoder_dir, monkeypatch):
    shutil.copytree(tweeteval_dir / "irony", tmp_path / "etc")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")  # so "../../etc" is tmp_path/etc
    config = TrainConfig(tasks=["../../etc"], model=str(tiny_encoder_dir), epochs=1, max_train_examples=16,
                         max_eval_examples=16)
    fit(config, "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "b" / "run" / "best").iterdir()) == ["etc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "etc"]
    copied = sorted(p.name for p in (tmp_path / "etc").iterdir())
    assert copied == sorted(p.name for p in (tweeteval_dir / "irony").iterdir())


def test_an_unknown_model_writes_nothing_and_can_then_be_corrected(tmp_path, tweeteval_dir, tiny_encoder_dir,
                                                                   monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wrong = TrainConfig(tasks=["irony"], model="no-such-user/no-such-model", epochs=1, max_train_examples=16,
                        max_eval_examples=16, data_dir=str(tweeteval_dir))
    with pytest.raises(OSError, match=r"cannot load encoder 'no-such-user/no-such-model': "
                                      r"it is neither a model folder"):
        fit(wrong, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # so the corrected command is not "a different run"
    right = TrainConfig(**{**wrong.__dict__, "model": str(tiny_encoder_dir)})
    assert fit(right, tmp_path / "run", progress=False).results["irony"]["best_epoch"] == 1


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, tweeteval_dir, tiny_encoder_dir):
    (tmp_path / "notes.txt").write_text("my homework")
    config = TrainConfig(tasks=["irony"], model=str(tiny_encoder_dir), data_dir=str(tweeteval_dir))
    with pytest.raises(ValueError, match=r"exists and is not a training run \(it has no config.json\)"):
        fit(config, tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------------------------------------
# Downloads that break off
# ---------------------------------------------------------------------------------------------


class BrokenResponse(io.BytesIO):
    """A response that delivers a first chunk and then loses the connection, as http.client does."""

    headers = {"Content-Length": "1000000"}

    def read(self, size=-1):
        if self.tell() > 0:
            raise IncompleteRead(b"", 999_000)
        return super().read(1000)


def test_a_download_cut_mid_file_leaves_nothing(tmp_path, tweeteval_dir, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BrokenResponse(b"x" * 5000))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"could not download .*irony/mapping.txt: IncompleteRead"):
        load_task("irony", cache_dir=cache, base_url=tweeteval_dir.as_uri())
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_truncated_file_in_the_cache_is_fetched_again(tmp_path, tweeteval_dir):
    cache = tmp_path / "cache"
    load_task("irony", cache_dir=cache, base_url=tweeteval_dir.as_uri())
    cached = cache / "tweeteval" / "irony" / "train_text.txt"
    cached.write_bytes(cached.read_bytes()[:1000])  # a session that died while copying
    again = load_task("irony", cache_dir=cache, base_url=tweeteval_dir.as_uri())
    assert len(again.splits["train"]) == 2862
    assert cached.read_bytes() == (tweeteval_dir / "irony" / "train_text.txt").read_bytes()


# ---------------------------------------------------------------------------------------------
# Checkpoints: damaged, foreign, or hostile
# ---------------------------------------------------------------------------------------------


class Payload:
    """A pickle that, if unpickled without weights_only, would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_model_folder_with_a_pickle_runs_no_code(tmp_path, tiny_encoder_dir):
    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(tmp_path / "ran")))
    # transformers 5 names torch's UnpicklingError; 4.57 wraps it as "Unable to load weights"
    with pytest.raises(OSError, match=r"cannot load encoder .*(UnpicklingError|Unable to load weights)"):
        load_encoder(str(folder))
    assert not (tmp_path / "ran").exists()


def test_a_model_folder_asking_for_its_own_code_runs_no_code(tmp_path, tiny_encoder_dir):
    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n"
                                    "from transformers import BertModel as EvilModel\n")
    encoder, _ = load_encoder(str(folder))
    assert type(encoder).__name__ == "BertModel" and not (tmp_path / "ran").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    """A finished one-epoch run, in-process: emotion + irony, 32 tweets each."""
    config = TrainConfig(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), epochs=1, batch_size=8,
                         max_length=32, max_train_examples=32, max_eval_examples=32,
                         data_dir=str(tweeteval_dir))
    return config, fit(config, tmp_path_factory.mktemp("runs") / "small", progress=False).folder


def broken_last(folder: Path, tiny_encoder_dir: Path, damage: str) -> None:
    last = folder / "last"
    if damage == "random training state":
        (last / STATE_FILE).write_bytes(os.urandom(4096))
    elif damage == "truncated training state":
        (last / STATE_FILE).write_bytes((last / STATE_FILE).read_bytes()[:5000])
    elif damage == "pickle as training state":
        (last / STATE_FILE).write_bytes(pickle.dumps(Payload(folder / "ran")))
    elif damage == "another model's weights":
        other, tokenizer = build_model({"emotion": list("abcd"), "irony": list("ab")}, str(tiny_encoder_dir))
        other.encoder.resize_token_embeddings(1000)
        save_model(other, tokenizer, last)
        torch.save({"epoch": 1}, last / STATE_FILE)
    elif damage == "another run's training state":
        torch.save({"epoch": 1, "optimizer": {}, "scheduler": {}, "streams": {}, "best": {}, "history": []},
                   last / STATE_FILE)


@pytest.mark.parametrize("damage", ["random training state", "truncated training state",
                                    "pickle as training state", "another model's weights",
                                    "another run's training state"])
def test_resume_from_a_damaged_or_foreign_checkpoint_is_refused(small_run, tmp_path, tiny_encoder_dir,
                                                                damage):
    config, finished = small_run
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    broken_last(folder, tiny_encoder_dir, damage)
    history = (folder / "history.json").read_bytes()
    with pytest.raises(OSError,
                       match=r"cannot resume from .*last: it is damaged or not this run's checkpoint"):
        fit(config, folder, resume=True, progress=False)
    assert not (folder / "ran").exists()
    assert (folder / "history.json").read_bytes() == history


def test_a_different_run_in_the_folder_is_named_field_by_field(small_run, capsys):
    config, folder = small_run

    def train(epochs: int, *extra: str) -> int:
        return main(["train", "--tasks", *config.tasks, "--model", config.model, "--epochs", str(epochs),
                     "--batch-size", "8", "--max-length", "32", "--max-train-examples", "32",
                     "--max-eval-examples", "32",
                     "--data-dir", config.data_dir, "--out", str(folder), *extra])

    assert train(3, "--resume") == 2
    assert "already holds a different run (epochs is 3 here but 1 there)" in capsys.readouterr().err
    assert train(1) == 2
    assert "already holds this run: pass resume=True (--resume) to continue it" in capsys.readouterr().err


def test_predict_refuses_task_names_that_are_paths(small_run, capsys):
    _, folder = small_run
    assert main(["predict", "--task", "../last", str(folder), "hello"]) == 2
    assert "has no task '../last'; its tasks are ['emotion', 'irony']" in capsys.readouterr().err


def test_predict_on_an_empty_and_a_very_long_tweet(small_run):
    _, folder = small_run
    table = predict_run(folder, ["", "so long " * 625], max_length=64)  # 5,000 characters, cut at 64 tokens
    assert list(table["task"]) == ["emotion", "emotion", "irony", "irony"]
    assert table[["anger", "joy", "optimism", "sadness"]].dropna().sum(axis=1).round(5).eq(1).all()


def test_a_run_whose_tasks_are_folders_predicts_by_task_name(tmp_path, tweeteval_dir, tiny_encoder_dir):
    irony_folder = shutil.copytree(tweeteval_dir / "irony", tmp_path / "my-irony")
    config = TrainConfig(tasks=[str(irony_folder)], model=str(tiny_encoder_dir), epochs=1,
                         max_train_examples=16, max_eval_examples=16)
    folder = fit(config, tmp_path / "run", progress=False).folder
    table = predict_run(folder, ["oh great, rain"])
    assert list(table["task"]) == ["my-irony"] and table["label"].isin(["non_irony", "irony"]).all()


# ---------------------------------------------------------------------------------------------
# Crashes: atomic files, and a killed run that resumes to the very same scores
# ---------------------------------------------------------------------------------------------


def test_writes_interrupted_by_a_crash_are_undone(tmp_path):
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "weights").write_text("epoch 1")
    staging = tmp_path / ".last.x1.partial"  # epoch 2, complete but not yet moved in ...
    staging.mkdir()
    os.replace(tmp_path / "last", tmp_path / ".last.old")  # ... when the crash came, mid-replace
    (tmp_path / ".history.json.x2.partial").write_text('[{"epoch": ')
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / "best") as half_done:
            (half_done / "weights").write_text("half")
            raise RuntimeError("killed")
    recover_interrupted_writes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert (tmp_path / "last" / "weights").read_text() == "epoch 1"


def cli_train(folder: Path, tiny_encoder_dir: Path, tweeteval_dir: Path, *extra: str) -> list[str]:
    """Three epochs of emotion + irony, 240 tweets each in batches of 8: ~60 steps, a few seconds an epoch."""
    return [sys.executable, "-m", "mtl_tutorial", "train", "--tasks", "emotion", "irony",
            "--model", str(tiny_encoder_dir), "--epochs", "3", "--batch-size", "8", "--max-length", "32",
            "--max-train-examples", "240", "--max-eval-examples", "64", "--data-dir", str(tweeteval_dir),
            "--out", str(folder), *extra]


# One thread, so that two runs add up floating-point numbers in the same order.
CLI_ENVIRONMENT = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    folder = tmp_path_factory.mktemp("runs") / "uninterrupted"
    finished = subprocess.run(cli_train(folder, tiny_encoder_dir, tweeteval_dir), capture_output=True,
                              text=True, env=CLI_ENVIRONMENT, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return folder


def history_epochs(folder: Path) -> list[int]:
    try:
        return [row["epoch"] for row in json.loads((folder / "history.json").read_text())]
    except FileNotFoundError:
        return []


def comparable_history(folder: Path) -> pd.DataFrame:
    """The history without its clock readings (seconds, examples_per_second, ...): all else must repeat."""
    history = pd.DataFrame(json.loads((folder / "history.json").read_text()))
    clock = [name for name in history if name == "seconds" or name.endswith("_per_second")]
    return history.drop(columns=clock)


@pytest.mark.slow  # training processes (a kill point)
def test_a_run_killed_mid_epoch_resumes_to_the_same_scores(uninterrupted_run, tmp_path, tiny_encoder_dir,
                                                           tweeteval_dir):
    folder = tmp_path / "killed"
    process = subprocess.Popen(cli_train(folder, tiny_encoder_dir, tweeteval_dir), env=CLI_ENVIRONMENT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    # history.csv is the last file of an epoch's record (after last/ and history.json)
    while not (folder / "history.csv").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in epoch 2: no clean-up, no finally
    process.wait()

    assert history_epochs(folder) == [1, 1], "the run was not killed during epoch 2"
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert visible == ["best", "config.json", "history.csv", "history.json", "last"]  # no results.json yet
    assert torch.load(folder / "last" / STATE_FILE, weights_only=True)["epoch"] == 1
    assert len(pd.read_csv(folder / "history.csv")) == 2

    resumed = subprocess.run(cli_train(folder, tiny_encoder_dir, tweeteval_dir, "--resume"),
                             capture_output=True, text=True, env=CLI_ENVIRONMENT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 1/3" not in resumed.stderr and "epoch 2/3" in resumed.stderr  # it went on from epoch 2
    pd.testing.assert_frame_equal(comparable_history(folder), comparable_history(uninterrupted_run))
    results = json.loads((folder / "results.json").read_text())
    assert results == json.loads((uninterrupted_run / "results.json").read_text())
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.slow  # training processes (a kill point)
def test_resuming_a_finished_run_changes_nothing(uninterrupted_run, tmp_path, tiny_encoder_dir,
                                                 tweeteval_dir):
    folder = shutil.copytree(uninterrupted_run, tmp_path / "finished")
    files = ["history.json", "results.json", "last/training_state.pt", "best/emotion/heads.safetensors",
             "best/irony/model.safetensors"]
    before = {name: (folder / name).read_bytes() for name in files}
    again = subprocess.run(cli_train(folder, tiny_encoder_dir, tweeteval_dir, "--resume"),
                           capture_output=True, text=True, env=CLI_ENVIRONMENT, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "epoch 3/3" not in again.stderr  # nothing was trained again
    assert {name: (folder / name).read_bytes() for name in files} == before

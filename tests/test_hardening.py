"""A run survives what students and machines do to it: two trainings on one folder, a kill at any moment,
empty input, and bf16 on a CPU that only emulates it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest

from mtl_tutorial.cli import main
from mtl_tutorial.evaluate import predict, predict_run
from mtl_tutorial.model import build_model
from mtl_tutorial.runs import lock_file, open_run
from mtl_tutorial.train import fit
from mtl_tutorial.hardware import cpu_has_native_bf16, warn_if_precision_is_emulated

ENVIRONMENT = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def train_words(tiny_encoder_dir, tweeteval_dir, folder, epochs=3, examples=48):
    """At learning rate 1e-2 the tiny encoder's dev scores move: both tasks improve again in epoch 3."""
    return ["train", "--tasks", "emotion", "irony", "--model", str(tiny_encoder_dir), "--epochs", str(epochs),
            "--batch-size", "8", "--max-length", "32", "--max-train-examples", str(examples),
            "--max-eval-examples", "40", "--learning-rate", "1e-2", "--data-dir", str(tweeteval_dir),
            "--out", str(folder)]


def start(words, runner=None):
    command = [sys.executable, "-c", runner] if runner else [sys.executable, "-m", "mtl_tutorial"]
    return subprocess.Popen([*command, *words], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENVIRONMENT)


def wait_for_lock(folder, process, seconds=120):
    """Until `process` has taken the folder's lock (its pid is written in the lock file)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if lock_file(folder).exists() and f"pid {process.pid} " in lock_file(folder).read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"the first training never held {folder}: {process.communicate()[1][-2000:]}")


@pytest.mark.slow  # a training process, killed; the second training and the resume run in this process
def test_a_second_training_on_the_same_folder_is_refused_and_a_killed_ones_lock_does_not_block(
        tmp_path, tiny_encoder_dir, tweeteval_dir, capsys):
    folder = tmp_path / "run"
    words = train_words(tiny_encoder_dir, tweeteval_dir, folder, epochs=8, examples=256)
    first = start(words)
    wait_for_lock(folder, first)
    assert main(words) == 2
    error = capsys.readouterr().err
    assert first.poll() is None, "the first training ended before the second one tried: make it longer"
    assert f"{folder} is being trained by pid {first.pid} on" in error and "one run per folder" in error
    first.send_signal(signal.SIGKILL)  # the first dies holding the lock: the operating system releases it
    first.wait()
    assert main([*words, "--resume"]) == 0, capsys.readouterr().err[-3000:]
    assert json.loads((folder / "results.json").read_text())["irony"]["official_metric"] == "F1 of irony"


# Runs the command line after arranging for this process to SIGKILL itself at one moment of the run.
CRASH_RUNNER = r"""
import os, signal, sys
import mtl_tutorial.evaluate as evaluate, mtl_tutorial.files as files, mtl_tutorial.train as train
from mtl_tutorial.cli import main

moment, calls = sys.argv[1], []

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def on_call(module, name, when, before=True, counted=lambda *args: True):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        if counted(*args):
            calls.append(name)
            if len(calls) == when and before:
                die()
        result = original(*args, **kwargs)
        if len(calls) == when and not before:
            die()
        return result
    setattr(module, name, wrapper)

def half_replaced(kind):
    # files.replace_folder moves the old folder aside, then puts the new one in place: die in between
    original = files.replace_folder
    def wrapper(new, old):
        if old.parent.name == kind or old.name == kind:
            if old.exists():
                os.replace(old, old.with_name(f".{old.name}.old"))
                die()
        return original(new, old)
    files.replace_folder = wrapper

if moment == "mid-epoch":  # the 8th step of epoch 2 (an epoch has 12 steps)
    on_call(train, "train_step", 20)
elif moment == "while best/<task>/ is replaced":
    half_replaced("best")
elif moment == "while last/ is replaced":
    half_replaced("last")
elif moment == "between last/ and best/":  # the last epoch's last/ is written, its best/ and history are not
    on_call(train, "save_checkpoint", 3, before=False)
elif moment == "between best/ and the history":  # the last epoch: only the history is missing
    on_call(train, "save_history", 3)
elif moment == "during the final test scoring":  # one task tested, the other not yet
    on_call(evaluate, "evaluate_split", 2)
sys.exit(main(sys.argv[2:]))
"""
MOMENTS = ["mid-epoch", "while best/<task>/ is replaced", "while last/ is replaced",
           "between last/ and best/", "between best/ and the history", "during the final test scoring"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    folder = tmp_path_factory.mktemp("runs") / "uninterrupted"
    assert main(train_words(tiny_encoder_dir, tweeteval_dir, folder)) == 0
    results = json.loads((folder / "results.json").read_text())
    best_epochs = {task: result["best_epoch"] for task, result in results.items()}
    assert min(best_epochs.values()) > 1, \
        f"best/ must be replaced at least once per task for these moments: {best_epochs}"
    assert not lock_file(folder).exists()  # a run that ended removes its lock
    return folder


@pytest.mark.slow  # kill points: a training process per moment, killed
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_kill_at_any_moment_then_resume_ends_with_the_same_results(uninterrupted, tmp_path,
                                                                     tiny_encoder_dir, tweeteval_dir, moment):
    folder = tmp_path / "run"
    words = train_words(tiny_encoder_dir, tweeteval_dir, folder)
    crashed = start([moment, *words], runner=CRASH_RUNNER)
    _, error = crashed.communicate(timeout=600)
    assert crashed.returncode == -signal.SIGKILL, f"{moment}: the run was not killed\n{error[-2000:]}"
    assert not (folder / "results.json").exists()
    assert main([*words, "--resume"]) == 0  # in this process, as `uninterrupted` ran
    results = json.loads((folder / "results.json").read_text())
    assert results == json.loads((uninterrupted / "results.json").read_text())
    timing = ("seconds", "examples_per_second", "tokens_per_second")
    history, expected = (json.loads((place / "history.json").read_text())
                         for place in (folder, uninterrupted))
    assert [{k: v for k, v in row.items() if k not in timing} for row in history] == \
        [{k: v for k, v in row.items() if k not in timing} for row in expected]
    for task in ("emotion", "irony"):
        saved = json.loads((folder / "best" / task / "mtl_model.json").read_text())
        assert saved["epoch"] == results[task]["best_epoch"]
    assert not [path.name for path in folder.rglob(".*")]  # no half-written leftovers


def test_predict_with_no_text_says_so(tiny_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(""))
    assert main(["predict", str(tiny_run.folder)]) == 2
    assert "no text to label" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("\n  \n"))
    assert main(["predict", str(tiny_run.folder)]) == 2
    empty = predict_run(tiny_run.folder, [])
    assert empty.empty and list(empty.columns) == ["text", "task", "label"]


def test_predict_on_an_empty_list_gives_an_empty_table(tiny_encoder_dir):
    model, tokenizer = build_model({"a": ["no", "yes"]}, str(tiny_encoder_dir))
    assert list(predict(model, tokenizer, []).columns) == ["text", "task", "label"]


def test_the_python_apis_common_mistakes_say_what_to_call_instead(tiny_run, tiny_encoder_dir, tmp_path):
    with pytest.raises(TypeError, match="fit needs a TrainConfig, got dict"):
        fit({"tasks": ["emotion"]}, tmp_path / "run")
    with pytest.raises(TypeError, match="predict takes a loaded model, not the folder .*predict_run"):
        predict(str(tiny_run.folder), None, ["hi"])
    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_run.folder, unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(FileNotFoundError, match="has not finished: it has no results.json .*resume=True"):
        open_run(unfinished)
    with pytest.raises(FileNotFoundError, match="is not a training run: config.json is missing"):
        open_run(tmp_path / "nowhere")


@pytest.mark.parametrize("cpuinfo, native", [
    ("flags\t\t: fpu avx avx2 fma\n", False),
    ("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n", True),
    ("flags\t\t: fpu avx2 amx_bf16\n", True),
    ("Features\t: fp asimd bf16 sve\n", True),
    ("", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert cpu_has_native_bf16(cpuinfo) is native


def test_bf16_on_a_cpu_without_it_warns_with_the_fp32_alternative(monkeypatch):
    class OnTheCpu:
        device = __import__("torch").device("cpu")

    monkeypatch.setattr("mtl_tutorial.hardware.cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="bf16 on this CPU is emulated .* use --mixed-precision no"):
        warn_if_precision_is_emulated("bf16", OnTheCpu())
    monkeypatch.setattr("mtl_tutorial.hardware.cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_precision_is_emulated("bf16", OnTheCpu())
        warn_if_precision_is_emulated("no", OnTheCpu())


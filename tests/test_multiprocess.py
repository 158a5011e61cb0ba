"""Two processes on one CPU machine (torchrun, gloo): the same task at every step, the data shared out,
metrics gathered from both, and files written by the main process only."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from mtl_tutorial.batching import batches_per_pass
from mtl_tutorial.evaluate import evaluate_run

# Run by each process: the command line's `train`, with a record of the task of every training forward
# pass and of every temporary file or folder the process created (all package writes go through those).
RECORDING_TRAIN = """
import json, os, sys, tempfile
from pathlib import Path

from mtl_tutorial.cli import main
from mtl_tutorial.model import MultiTaskModel

tasks, writes = [], []
forward = MultiTaskModel.forward

def recording_forward(self, input_ids, attention_mask, task, *more):  # more: the labels, the reduction
    if self.training:
        tasks.append(task)
    return forward(self, input_ids, attention_mask, task, *more)

def recording(original):
    def make(*args, **kwargs):
        writes.append(str(kwargs.get("dir")))
        return original(*args, **kwargs)
    return make

MultiTaskModel.forward = recording_forward
tempfile.mkstemp, tempfile.mkdtemp = recording(tempfile.mkstemp), recording(tempfile.mkdtemp)
code = main(sys.argv[2:])
record = {"tasks": tasks, "writes": writes, "code": code}
Path(sys.argv[1], f"rank{os.environ['RANK']}.json").write_text(json.dumps(record))
"""

EPOCHS, BATCH_SIZE, TRAIN_EXAMPLES, PROCESSES = 2, 8, 64, 2


pytestmark = pytest.mark.slow  # torchrun: two fresh processes, each importing torch


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_encoder_dir, tweeteval_dir):
    work = tmp_path_factory.mktemp("multiprocess")
    script = work / "recording_train.py"
    script.write_text(RECORDING_TRAIN)
    folder = work / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(PROCESSES), str(script), str(work),
               "train", "--tasks", "emotion", "irony", "--model", str(tiny_encoder_dir),
               "--epochs", str(EPOCHS), "--batch-size", str(BATCH_SIZE),
               "--max-train-examples", str(TRAIN_EXAMPLES), "--max-eval-examples", "40", "--max-length", "32",
               "--report-to", "tensorboard", "--log-every", "1",  # the losses summed over the processes
               "--data-dir", str(tweeteval_dir), "--out", str(folder)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "TOKENIZERS_PARALLELISM": "false"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-4000:]
    records = [json.loads((work / f"rank{rank}.json").read_text()) for rank in range(PROCESSES)]
    return folder, records


def test_every_process_trains_the_same_task_at_every_step(two_process_run):
    _, (main_process, other) = two_process_run
    assert main_process["code"] == other["code"] == 0
    # each step: one batch per process
    steps_per_epoch = 2 * batches_per_pass(TRAIN_EXAMPLES, BATCH_SIZE * PROCESSES)
    assert len(main_process["tasks"]) == EPOCHS * steps_per_epoch
    assert main_process["tasks"] == other["tasks"]
    assert set(main_process["tasks"]) == {"emotion", "irony"}


def test_the_data_is_shared_out_and_the_counts_gathered(two_process_run):
    folder, _ = two_process_run
    history = pd.read_csv(folder / "history.csv")
    steps_per_epoch = 2 * batches_per_pass(TRAIN_EXAMPLES, BATCH_SIZE * PROCESSES)
    # one process alone would count only its own half of each step's 2 x 8 tweets
    per_epoch = history.groupby("epoch")["train_examples"].sum().tolist()
    assert per_epoch == [steps_per_epoch * BATCH_SIZE * PROCESSES] * EPOCHS


def test_gathered_dev_scores_equal_one_process_scoring_the_saved_checkpoints(two_process_run):
    folder, _ = two_process_run
    results = json.loads((folder / "results.json").read_text())
    alone = evaluate_run(folder, "dev").set_index("task")
    for task in ("emotion", "irony"):
        for metric in ("accuracy", "macro_f1", "official"):
            assert alone.loc[task, metric] == results[task]["dev"][metric], (task, metric)
        assert alone.loc[task, "loss"] == pytest.approx(results[task]["dev"]["loss"], rel=1e-5)


def test_only_the_main_process_writes(two_process_run):
    folder, (main_process, other) = two_process_run
    assert other["writes"] == []
    assert any(place.startswith(str(folder)) for place in main_process["writes"])
    assert sorted(p.name for p in folder.iterdir()) == ["best", "config.json", "dev_curves.png",
                                                        "history.csv", "history.json", "last", "logs",
                                                        "results.json"]
    assert len(list((folder / "logs").glob("events.out.tfevents.*"))) == 1  # the main process's tracker


def test_the_logged_step_losses_are_over_both_processes_batches(two_process_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, _ = two_process_run
    events = EventAccumulator(str(folder / "logs"), size_guidance={"scalars": 0})
    events.Reload()
    history = pd.read_csv(folder / "history.csv")
    steps_per_epoch = 2 * batches_per_pass(TRAIN_EXAMPLES, BATCH_SIZE * PROCESSES)
    for row in history.itertuples():  # every batch full: the mean of the steps' losses is the epoch's
        losses = [point.value for point in events.Scalars(f"train/loss/{row.task}")
                  if (row.epoch - 1) * steps_per_epoch < point.step <= row.epoch * steps_per_epoch]
        assert len(losses) * BATCH_SIZE * PROCESSES == row.train_examples
        assert sum(losses) / len(losses) == pytest.approx(row.train_loss, rel=1e-5)

"""Adding a method is one function (or small class) and one line in its table; saving fails in one line."""

import errno
import json

import pytest
import torch

import mtl_tutorial.runs as runs
from mtl_tutorial import widgets
from mtl_tutorial.cli import build_parser, config_from_arguments, main
from mtl_tutorial.combine import COMBINERS, LossWeighting
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.sampling import SAMPLERS, SamplingEpoch, TaskMix
from mtl_tutorial.train import fit


def first_task_only(epoch: SamplingEpoch) -> TaskMix:
    """A toy sampler, written outside the package: every step trains the first task."""
    first = next(iter(epoch.sizes))
    return TaskMix({task: float(task == first) for task in epoch.sizes}, [first] * epoch.steps)


class FirstTaskTwice(LossWeighting):
    """A toy loss weighting, written outside the package: the first task's loss counts twice."""

    def __init__(self, num_tasks: int):
        super().__init__()
        self.fixed = torch.tensor([2.0] + [1.0] * (num_tasks - 1))

    def loss_term(self, loss, task_index):
        return self.fixed[task_index] * loss

    def weights(self, num_tasks):
        return self.fixed


def tiny(tiny_encoder_dir, tweeteval_dir, **changes) -> TrainConfig:
    settings = dict(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), epochs=2, batch_size=8,
                    max_train_examples=32, max_eval_examples=16, max_length=32, data_dir=str(tweeteval_dir),
                    gradient_probe_batches=0)
    return TrainConfig(**{**settings, **changes})


def test_a_sampler_added_to_the_table_trains_and_is_offered_everywhere(monkeypatch, tmp_path,
                                                                        tiny_encoder_dir, tweeteval_dir):
    monkeypatch.setitem(SAMPLERS, "first_task_only", first_task_only)
    config = tiny(tiny_encoder_dir, tweeteval_dir, sampler="first_task_only")
    run = fit(config, tmp_path / "run", progress=False)
    examples = run.history.pivot(index="epoch", columns="task", values="train_examples")
    assert (examples["irony"] == 0).all() and (examples["emotion"] > 0).all()
    assert run.history.query("task == 'emotion'")["sampling_probability"].tolist() == [1.0, 1.0]
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert "first_task_only" in next(a for a in train._actions if a.dest == "sampler").choices
    offered = widgets.training_panel(TrainConfig(), tmp_path / "panel").sampler.options
    assert "first_task_only" in offered and "adaptive" in offered


def test_a_combining_method_added_to_the_table_trains(monkeypatch, tmp_path, tiny_encoder_dir, tweeteval_dir):
    monkeypatch.setitem(COMBINERS, "first_task_twice", FirstTaskTwice)
    config = tiny(tiny_encoder_dir, tweeteval_dir, strategy="all-tasks", combine="first_task_twice")
    run = fit(config, tmp_path / "run", progress=False)
    weights = run.history.pivot(index="epoch", columns="task", values="weight")
    assert (weights["emotion"] == 2.0).all() and (weights["irony"] == 1.0).all()
    assert run.history["train_loss"].map(float).gt(0).all()
    with pytest.raises(ValueError, match="unknown combine 'gradnorm'"):
        tiny(tiny_encoder_dir, tweeteval_dir, strategy="all-tasks", combine="gradnorm")


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_last_checkpoint_resumes(
        monkeypatch, tmp_path, capsys, tiny_encoder_dir, tweeteval_dir):
    options = ["--tasks", "emotion", "irony", "--model", str(tiny_encoder_dir), "--epochs", "2",
               "--batch-size", "8", "--max-train-examples", "32", "--max-eval-examples", "16",
               "--max-length", "32", "--data-dir", str(tweeteval_dir)]
    folder = tmp_path / "run"
    saves, save = [], torch.save

    def disk_fills_in_epoch_2(state, handle, *args, **kwargs):
        saves.append(state["epoch"])
        if state["epoch"] == 2:
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(state, handle, *args, **kwargs)

    monkeypatch.setattr(runs.torch, "save", disk_fills_in_epoch_2)
    assert main(["train", *options, "--out", str(folder)]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    error = error.strip().splitlines()[-1]  # above it only the progress bars
    assert error.startswith("mtl-tutorial train: error: could not save")
    assert "could not save the checkpoint of epoch 2 to" in error and str(folder / "last") in error
    assert "No space left on device" in error and " free there)" in error
    state = torch.load(folder / "last" / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1 and saves == [1, 2]  # epoch 1's checkpoint is whole
    assert not [path.name for path in folder.iterdir() if path.name.endswith(".partial")]

    monkeypatch.setattr(runs.torch, "save", save)
    assert main(["train", *options, "--out", str(folder), "--resume"]) == 0
    config = config_from_arguments(build_parser().parse_args(["train", *options, "--out", "elsewhere"]))
    uninterrupted = fit(config, tmp_path / "uninterrupted", progress=False)
    resumed = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    assert without_clock(resumed) == without_clock(uninterrupted.history.to_dict("records"))
    assert json.loads((folder / "results.json").read_text(encoding="utf-8")) == uninterrupted.results


def without_clock(history: list[dict]) -> list[dict]:
    """History rows without their clock readings: all else must repeat exactly."""
    clock = ("seconds", "examples_per_second", "tokens_per_second")
    return [{key: value for key, value in row.items() if key not in clock} for row in history]

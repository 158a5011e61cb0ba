"""The lesson widgets without a browser: set their values, press their buttons, check what came back."""

import dataclasses
import json
from pathlib import Path

import matplotlib
import nbclient
import nbformat
import pandas as pd
import pytest

import mtl_tutorial as mtl
from mtl_tutorial import task_probabilities, widgets
from mtl_tutorial.config import TrainConfig

matplotlib.use("Agg")


@pytest.fixture
def tiny_settings(tiny_encoder_dir, tweeteval_dir):
    return TrainConfig(tasks=["emotion", "sentiment"], model=str(tiny_encoder_dir), epochs=1,
                       max_train_examples=48, max_eval_examples=40, max_length=32, learning_rate=1e-3,
                       data_dir=str(tweeteval_dir))


def test_the_temperature_slider_redraws_the_probabilities():
    panel = widgets.temperature_panel({"emotion": 3257, "sentiment": 45615}, temperature=1.0)
    assert panel.figure.axes[0].get_title() == "Temperature sampling, T = 1"
    panel.slider.value = 8.0
    assert panel.figure.axes[0].get_title() == "Temperature sampling, T = 8"
    marker = panel.figure.axes[0].lines[1]  # the dot of emotion at the chosen T
    assert marker.get_xdata()[0] == 8.0
    expected = task_probabilities({"emotion": 3257, "sentiment": 45615}, "temperature", 8.0)["emotion"]
    assert marker.get_ydata()[0] == pytest.approx(expected)


def test_the_train_button_trains_the_chosen_tasks_and_draws_every_epoch(tiny_settings, tmp_path):
    panel = widgets.training_panel(tiny_settings, tmp_path / "run")
    assert panel.config() == tiny_settings  # the widgets start from the settings
    panel.tasks.value = ("irony", "emotion", "hate")
    panel.sampler.value = "uniform"
    panel.epochs.value = 2
    panel.train_cap.value = "100 tweets per task"
    panel.button.click()

    config = mtl.saved_config(tmp_path / "run")
    assert config.tasks == ["irony", "emotion", "hate"] and config.sampler == "uniform"
    assert config.epochs == 2 and config.max_train_examples == 100 and config.max_eval_examples == 40
    history = panel.run.history
    assert list(history["epoch"]) == [1, 1, 1, 2, 2, 2]
    assert set(history["task"]) == {"irony", "emotion", "hate"}
    assert panel.figure.get_suptitle() == "after epoch 2 of 2"
    assert len(panel.figure.axes[0].get_legend().get_texts()) == 3
    assert panel.status.value.startswith("Done") and not panel.button.disabled


def test_the_tensorboard_box_logs_the_curves_into_the_run_folder(tiny_settings, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    panel = widgets.training_panel(tiny_settings, tmp_path / "run")
    assert panel.config().report_to is None
    panel.tensorboard.value = True
    assert panel.config() == dataclasses.replace(tiny_settings, report_to="tensorboard")
    run = panel.train()
    events = EventAccumulator(str(tmp_path / "run" / "logs"))  # moved with the run from its staging folder
    events.Reload()
    [point] = events.Scalars("dev/official/emotion")
    emotion = run.history[run.history["task"] == "emotion"]
    assert point.value == pytest.approx(emotion["dev_official"].item())


def test_open_or_train_reads_back_the_same_finished_run_and_trains_another(tiny_settings, tmp_path):
    widgets.training_panel(tiny_settings, tmp_path / "run").train()
    written = (tmp_path / "run" / "history.json").stat().st_mtime_ns
    panel = widgets.training_panel(tiny_settings, tmp_path / "run")  # the lesson opened again
    run = panel.open_or_train()
    assert (tmp_path / "run" / "history.json").stat().st_mtime_ns == written  # not trained twice
    assert panel.status.value.startswith("Read back") and panel.figure is not None and panel.run is run
    panel.epochs.value = 1
    run = panel.open_or_train()  # other settings: trained, replacing the run
    assert list(run.history["epoch"].unique()) == [1] and mtl.saved_config(tmp_path / "run").epochs == 1


def test_the_training_size_is_a_share_of_every_task_or_a_cap_per_task(tiny_settings, tmp_path):
    shared = dataclasses.replace(tiny_settings, max_train_examples=None, train_fraction=0.125)
    panel = widgets.training_panel(shared, tmp_path / "run")
    assert panel.train_cap.value == "12.5% of every task (ratio kept)" and panel.config() == shared
    assert "50.0% of every task (ratio kept)" in panel.train_cap.options
    panel.train_cap.value = "400 tweets per task"
    assert (panel.config().max_train_examples, panel.config().train_fraction) == (400, None)
    panel.train_cap.value = "all tweets"
    assert (panel.config().max_train_examples, panel.config().train_fraction) == (None, None)


def test_the_panel_starts_from_any_settings_as_they_are(tiny_settings, tmp_path):
    """Settings beyond the sliders' usual range, a share with a cap, a task folder: the panel's first run
    trains them unchanged (it used to clamp epochs to 10, temperature to 1-10, and drop the cap)."""
    odd = dataclasses.replace(tiny_settings, tasks=["emotion", str(tmp_path / "my-task")], epochs=20,
                              temperature=0.5, sampler="temperature", train_fraction=0.5,
                              max_train_examples=32)
    panel = widgets.training_panel(odd, tmp_path / "run")
    assert panel.config() == odd
    assert panel.train_cap.value == "50.0% of every task, at most 32 tweets each"


def test_training_again_replaces_the_run_and_bad_choices_are_reported(tiny_settings, tmp_path):
    panel = widgets.training_panel(tiny_settings, tmp_path / "run")
    panel.train()
    panel.tasks.value = ("emotion",)
    panel.train_cap.value = "all tweets"
    assert panel.config().max_train_examples is None
    panel.train_cap.value = "100 tweets per task"
    run = panel.train()
    assert set(run.history["task"]) == {"emotion"} and mtl.saved_config(tmp_path / "run").tasks == ["emotion"]
    panel.tasks.value = ()
    panel.button.click()  # a button reports errors in its status line; a direct call raises them
    kept = f"{tmp_path / 'run'} still holds the previous run"
    assert panel.status.value == f"Training stopped ({kept}): no task given"
    assert not panel.button.disabled and panel.details.layout.display is None
    assert "Traceback" in panel.log.outputs[0]["text"] and "no task given" in panel.log.outputs[0]["text"]
    with pytest.raises(ValueError, match="no task given"):
        panel.train()
    assert panel.run is run and mtl.saved_config(tmp_path / "run").tasks == ["emotion"]


def test_the_label_button_shows_every_heads_probabilities(tiny_run):
    panel = widgets.prediction_panel(tiny_run.folder)
    panel.text.value = "so happy it's friday!!"
    panel.button.click()
    answer = panel.answer
    assert list(answer["task"].unique()) == ["emotion", "irony"]
    assert answer.groupby("task")["probability"].sum().to_list() == pytest.approx([1.0, 1.0])
    assert answer.groupby("task")["chosen"].sum().to_list() == [1, 1]
    assert [axes.get_title() for axes in panel.figure.axes] == ["emotion head", "irony head"]
    again = panel.predict("worst day ever")
    assert panel.text.value == "worst day ever" and isinstance(again, pd.DataFrame) and len(again) == 6


@pytest.mark.slow  # a real kernel training (the tiny encoder; the browser test presses Train on MiniLM)
def test_in_a_real_kernel_a_failed_run_is_one_status_line_and_the_last_run_survives(tiny_encoder_dir,
                                                                                    tweeteval_dir, tmp_path):
    """Inside a kernel (not in pytest), ipywidgets' Output swallows exceptions: press Train there."""
    package = Path(widgets.__file__).resolve().parents[1]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in [
        (f"import os, sys\nos.environ['HF_HUB_OFFLINE'] = '1'\nsys.path.insert(0, {str(package)!r})\n"
         "from mtl_tutorial import TrainConfig, widgets\n"
         f"settings = TrainConfig(tasks=['emotion', 'sentiment'], model={str(tiny_encoder_dir)!r},\n"
         "                      epochs=1, max_train_examples=32, max_eval_examples=32, max_length=32,\n"
         f"                      data_dir={str(tweeteval_dir)!r})\n"
         "panel = widgets.training_panel(settings, 'run')\npanel"),
        "first = panel.train()",
        "panel.encoder.value = 'no-such-encoder'\npanel.button.click()",
        "print(panel.status.value, panel.run is first, panel.output.model_id, panel.log.model_id, sep='\\n')",
    ]])
    kernel = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}},
                                     shutdown_kernel="immediate")
    kernel.execute()
    results = json.loads((tmp_path / "run" / "results.json").read_text())  # the first run's, still there

    _, _, pressed, report = notebook.cells
    assert pressed.outputs == []  # nothing dumped under the cell: no traceback, no error
    status, same_run, output_id, log_id = report.outputs[0]["text"].splitlines()
    assert status.startswith("Training stopped (run still holds the previous run): cannot load encoder "
                             "'no-such-encoder': it is neither a model folder nor a model id")
    assert same_run == "True"
    state = notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    shown = json.dumps(state[output_id]["state"]["outputs"])
    assert "Traceback" not in shown and "no-such-encoder" not in shown
    logged = "".join(output.get("text", "") for output in state[log_id]["state"]["outputs"])
    assert logged.startswith("Traceback") and "OSError: cannot load encoder 'no-such-encoder'" in logged
    assert results["emotion"]["test_examples"] == 32
    assert mtl.saved_config(tmp_path / "run").model == str(tiny_encoder_dir)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # nothing half-trained

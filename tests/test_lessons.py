"""The lessons' scale and shared runs, the helpers they call, and the pictures drawn from them (plots)."""

import dataclasses
import json
import shutil
from pathlib import Path

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

import mtl_tutorial as mtl
from mtl_tutorial import plots
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.model import load_encoder

matplotlib.use("Agg")


@pytest.fixture
def no_scale_variables(monkeypatch):
    for name in ("MTL_TUTORIAL_SCALE", "MTL_TUTORIAL_ENCODER", "MTL_TUTORIAL_RUNS"):
        monkeypatch.delenv(name, raising=False)


def test_the_scale_follows_the_hardware_unless_named(no_scale_variables, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mtl.lesson_scale() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert mtl.lesson_scale() == "gpu"
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "ci")
    assert mtl.lesson_scale() == "ci"
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "cpu")
    assert mtl.lesson_scale() == "cpu"
    monkeypatch.setenv("MTL_TUTORIAL_QUICK", "1")  # the old switch, gone: one variable names the scale
    assert mtl.lesson_scale() == "cpu"
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "laptop")
    with pytest.raises(ValueError, match="MTL_TUTORIAL_SCALE='laptop': choose one of ci, cpu, gpu"):
        mtl.lesson_scale()


def test_the_ci_scale_only_proves_the_cells_run(no_scale_variables, monkeypatch):
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "ci")
    quick = mtl.lesson_config()
    assert (quick.model, quick.epochs, quick.learning_rate) == (None, 2, 1e-4)
    assert (quick.max_train_examples, quick.max_eval_examples) == (400, 300)
    assert quick.tasks == ["emotion", "sentiment"]
    described = mtl.describe_scale(quick)
    assert "CI scale" in described and "CAPPED: at most 400 training tweets" in described
    assert "300 dev and 300 test tweets" in described
    assert mtl.lesson_config(["irony"], epochs=3).epochs == 3


def test_the_cpu_scale_keeps_the_tasks_size_ratio_and_can_show_best_epochs_apart(no_scale_variables,
                                                                                 tweeteval_dir):
    config = mtl.lesson_config(scale="cpu", data_dir=tweeteval_dir)
    assert config.epochs >= 3 and config.model is None and config.max_train_examples is None
    tasks = mtl.runs.load_run_tasks(config)
    full = mtl.load_tasks(config.tasks, data_dir=tweeteval_dir)
    kept = {name: len(task.splits["train"]) for name, task in tasks.items()}
    sizes = {name: len(task.splits["train"]) for name, task in full.items()}
    assert kept == {name: round(size * config.train_fraction) for name, size in sizes.items()}
    size_ratio = sizes["sentiment"] / sizes["emotion"]
    assert kept["sentiment"] / kept["emotion"] == pytest.approx(size_ratio, rel=0.01)
    described = mtl.describe_scale(config, "cpu")
    assert "CPU lesson scale" in described and "12.5% of every task's training tweets" in described
    assert "keep their size ratio" in described and "uniform sampling" in described


def test_the_gpu_scale_is_the_tutorials_recipe_with_the_gpus_precision(no_scale_variables, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # a T4: torch.cuda.is_bf16_supported() says True because it can emulate bf16, but it has no bf16 units
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    full = mtl.lesson_config()
    assert (full.model, full.pooling, full.epochs, full.learning_rate) == ("roberta-base", "pooler", 5, 2e-5)
    assert full.max_train_examples is None and full.max_eval_examples is None
    assert full.mixed_precision == "fp16"
    assert full.train_fraction is None and "all training, dev and test tweets" in mtl.describe_scale(full)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert mtl.lesson_config().mixed_precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the recipe run on a CPU: fp32
    assert mtl.lesson_config(scale="gpu").mixed_precision == "no"
    monkeypatch.setenv("MTL_TUTORIAL_ENCODER", "distilroberta-base")
    assert mtl.lesson_config(scale="gpu").model == "distilroberta-base"
    assert mtl.lesson_config(scale="ci").model == "distilroberta-base"


@pytest.mark.parametrize("scale", ["ci", "cpu", "gpu"])
def test_every_scale_trains_all_tasks_at_every_step_when_asked(no_scale_variables, scale):
    """Lesson 6 asks for `lesson_config(strategy="all-tasks", combine=...)`: the CPU scale's uniform sampler
    goes, since that strategy samples nothing, and the rest of the scale stays."""
    sampling = mtl.lesson_config(scale=scale)
    all_tasks = mtl.lesson_config(scale=scale, strategy="all-tasks", combine="pcgrad")
    assert (all_tasks.strategy, all_tasks.combine, all_tasks.sampler) == ("all-tasks", "pcgrad",
                                                                         TrainConfig.sampler)
    back = dataclasses.replace(all_tasks, strategy="sample", combine=None, sampler=sampling.sampler)
    assert back == sampling
    with pytest.raises(ValueError, match="sampler='uniform' needs strategy='sample'"):
        mtl.lesson_config(scale=scale, strategy="all-tasks", sampler="uniform")


def test_the_runs_folder_is_chosen_or_named_by_the_environment(no_scale_variables, monkeypatch, tmp_path):
    assert mtl.runs_folder() == Path("runs")
    monkeypatch.setenv("MTL_TUTORIAL_RUNS", str(tmp_path / "drive"))
    assert mtl.runs_folder() == tmp_path / "drive"
    assert mtl.runs_folder(tmp_path / "chosen") == tmp_path / "chosen"
    assert not mtl.on_colab()


def test_padding_waste_counts_pad_tokens():
    waste = mtl.padding_waste([1, 1, 4, 4], batch_size=2, max_length=8)
    fixed, per_batch, grouped = waste.values()
    assert fixed == pytest.approx(1 - 10 / 32)
    assert grouped == 0.0  # length-grouped: [1, 1] and [4, 4], no padding at all
    assert grouped <= per_batch < fixed


def test_passes_per_epoch():
    table = mtl.passes_per_epoch({"small": 64, "big": 320}, batch_size=32)
    assert table.loc["proportional"].to_dict() == pytest.approx({"small": 1.0, "big": 1.0})
    assert table.loc["uniform"].to_dict() == pytest.approx({"small": 3.0, "big": 0.6})
    assert 1.0 < table.loc["temperature", "small"] < 3.0


def test_similarities_are_cosines(tiny_encoder_dir):
    encoder, tokenizer = load_encoder(str(tiny_encoder_dir))
    texts = ["i love it", "i hate it", "what a day"]
    for pooling in ("mean", "cls", "pooler"):
        table = mtl.similarities(encoder, tokenizer, texts, pooling)
        assert table.shape == (3, 3) and list(table.index) == texts
        assert torch.allclose(torch.tensor(table.values), torch.tensor(table.values.T), atol=1e-5)
        assert table.values.diagonal() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    figure = plots.similarity_maps({"mean": table, "cls": table})
    assert [axes.get_title() for axes in figure.axes[:2]] == ["pooling = 'mean'", "pooling = 'cls'"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    """The session's tiny multi-task run (emotion + irony) and its single-task baselines, trained here."""
    folder = tmp_path_factory.mktemp("runs")
    config = mtl.saved_config(tiny_run.folder)
    return config, folder, tiny_run, mtl.single_task_runs(config, folder / "single")


def test_open_or_train_reads_back_a_finished_run_and_replaces_another(runs, tmp_path):
    config, folder, multitask, _ = runs
    written = (multitask.folder / "history.json").stat().st_mtime_ns
    again = mtl.open_or_train(config, multitask.folder)
    assert (multitask.folder / "history.json").stat().st_mtime_ns == written  # not trained again
    assert again.results == multitask.results and again.history.equals(multitask.history)
    assert mtl.saved_config(tmp_path) is None
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a training run"):
        mtl.train_run(config, tmp_path)


def test_a_stopped_run_is_resumed(runs, tmp_path):
    config, _, multitask, _ = runs
    shutil.copytree(multitask.folder, tmp_path / "run")
    (tmp_path / "run" / "results.json").unlink()  # as if it had stopped before the test scores
    run = mtl.open_or_train(config, tmp_path / "run")
    assert list(run.history["epoch"]) == [1, 1, 2, 2] and (tmp_path / "run" / "results.json").exists()


def test_the_training_plan_says_what_is_read_back_resumed_or_trained_and_how_long(runs, tmp_path,
                                                                                 monkeypatch):
    config, folder, multitask, single = runs
    monkeypatch.setenv("MTL_TUTORIAL_SCALE", "ci")
    stopped = tmp_path / "stopped"

    def stop(history):
        raise KeyboardInterrupt  # a kernel interrupted after the first epoch

    with pytest.raises(KeyboardInterrupt):
        mtl.fit(config, stopped, on_epoch_end=stop)
    plan = mtl.training_plan({stopped: config, **mtl.single_task_configs(config, tmp_path / "single")})
    lines = plan.splitlines()
    assert lines[0].startswith(f"{stopped}: resumes after epoch 1 of 2, ")
    assert lines[1].startswith(f"{tmp_path / 'single' / 'emotion'}: trains now, ")
    assert lines[-1].startswith("in all ") and "a guess" in lines[-1]  # no finished run beside these yet
    # beside finished runs, their measured speed is used
    wider = dataclasses.replace(config, epochs=100_000)  # long enough to take minutes on any CPU
    plan = mtl.training_plan({multitask.folder: config, multitask.folder.parent / "wider": wider})
    assert plan.splitlines()[0] == f"{multitask.folder}: finished, read back"
    assert "at the speed of this machine's earlier runs" in plan
    other = mtl.training_plan({multitask.folder: dataclasses.replace(config, epochs=1)})
    assert other.startswith(f"{multitask.folder}: trains now, replacing the run of other settings there")
    speed = mtl.load_history(multitask.folder)["examples_per_second"].median()
    tasks = mtl.runs.load_run_tasks(config).values()
    train, dev, test = (sum(len(task.splits[split]) for task in tasks) for split in ("train", "dev", "test"))
    minutes = float(plan.splitlines()[1].split("about ")[1].split(" min")[0])
    # scoring runs 3x as fast as training
    assert minutes == pytest.approx((100_000 * (train + dev / 3) + test / 3) / speed / 60, rel=0.01, abs=0.5)


def test_multitask_vs_single_task_table_and_plot(runs):
    config, folder, multitask, single = runs
    assert set(single) == {"emotion", "irony"}
    assert json.loads((folder / "single" / "irony" / "config.json").read_text())["tasks"] == ["irony"]
    table = mtl.multitask_vs_single_task(multitask, single)
    assert list(table.index) == ["emotion", "irony"] and table.loc["irony", "metric"] == "F1 of irony"
    assert table.loc["emotion", "multi-task"] == multitask.results["emotion"]["test"]["official"]
    assert table.loc["emotion", "single-task"] == single["emotion"].results["emotion"]["test"]["official"]
    difference = table["multi-task"] - table["single-task"]
    assert table["multi - single"].to_list() == pytest.approx(difference.to_list())
    figure = plots.multitask_vs_single_task(table)
    assert figure.axes[0].get_ylabel() == "official test score" and len(figure.axes[0].patches) == 6


def test_test_predictions_reproduce_the_recorded_scores(runs):
    _, _, multitask, _ = runs
    for task in ("emotion", "irony"):
        predictions = mtl.predictions_on_test(multitask.folder, task)
        assert len(predictions) == 50 and list(predictions.columns) == ["text", "true", "predicted"]
        assert mtl.score_of(predictions, task) == pytest.approx(multitask.results[task]["test"]["official"])
        confusion = mtl.confusion_of(predictions)
        assert confusion.values.sum() == 50
        assert list(confusion.index) == list(predictions["true"].cat.categories)
    table = mtl.best_vs_last(multitask)
    assert table["last epoch"].to_list() == [2, 2]
    for task, row in table.iterrows():
        if row["best dev epoch"] == 2:
            assert row["test, last epoch"] == pytest.approx(row["test, best epoch"])


def test_label_tweet_asks_every_head(runs):
    _, _, multitask, _ = runs
    answer = mtl.label_tweet(mtl.best_models(multitask.folder), "yeah right, great weather")
    assert list(answer.columns) == ["task", "label", "probability", "chosen"]
    assert answer.groupby("task")["probability"].sum().to_list() == pytest.approx([1.0, 1.0])
    figure = plots.head_probabilities(answer, "yeah right, great weather")
    assert [axes.get_title() for axes in figure.axes] == ["emotion head", "irony head"]


def test_new_plots_label_their_axes():
    sizes = {"emotion": 3257, "sentiment": 45615}
    waste = {"emotion": mtl.padding_waste([3, 9, 20, 40]), "sentiment": mtl.padding_waste([5, 7])}
    figures = [plots.pad_fractions(waste), plots.temperature_effect(sizes, 3.0)]
    for figure in figures:
        assert isinstance(figure, Figure)
        axes = figure.axes[0]
        assert axes.get_xlabel() and axes.get_title() and axes.get_legend() is not None


def test_every_lesson_helper_works_on_a_run_of_course_format_folders(tmp_path, tiny_encoder_dir,
                                                                     tweeteval_dir):
    """Tasks given as folders are named after the folder; every helper must find them by that name."""
    folders = []
    for name in ("emotion", "irony"):
        task = mtl.load_task(name, data_dir=tweeteval_dir).capped(48, 40, seed=1)
        folders.append(str(mtl.write_tsv_folder(task, tmp_path / "course" / f"my_{name}")))
    config = TrainConfig(tasks=folders, model=str(tiny_encoder_dir), epochs=2, max_length=32,
                         learning_rate=1e-3)
    run = mtl.open_or_train(config, tmp_path / "multitask")
    assert list(run.results) == ["my_emotion", "my_irony"] and mtl.saved_config(run.folder) == config
    assert mtl.open_run(run.folder).results == run.results
    models = mtl.best_models(run.folder)
    assert list(models) == ["my_emotion", "my_irony"]
    answer = mtl.label_tweet(models, "so angry right now")
    assert set(answer["task"]) == {"my_emotion", "my_irony"}
    for task in run.results:
        predictions = mtl.predictions_on_test(run.folder, task)
        assert len(predictions) == 40 and mtl.confusion_of(predictions).values.sum() == 40
        assert mtl.score_of(predictions, task) == pytest.approx(run.results[task]["test"]["official"])
    assert list(mtl.best_vs_last(run).index) == ["my_emotion", "my_irony"]
    single = mtl.single_task_runs(config, tmp_path / "single")
    assert sorted(path.name for path in (tmp_path / "single").iterdir()) == ["my_emotion", "my_irony"]
    table = mtl.multitask_vs_single_task(run, single)
    assert table.loc["my_irony", "single-task"] == single["my_irony"].results["my_irony"]["test"]["official"]
    scored = mtl.evaluate_run(run.folder, "test").set_index("task")["official"]
    recorded = {task: result["test"]["official"] for task, result in run.results.items()}
    assert scored.to_dict() == pytest.approx(recorded)
    assert set(mtl.predict_run(run.folder, ["hello"])["task"]) == {"my_emotion", "my_irony"}
    panel = mtl.widgets.prediction_panel(run.folder)
    panel.button.click()
    assert set(panel.answer["task"]) == {"my_emotion", "my_irony"}


def test_a_failed_or_interrupted_run_leaves_the_previous_run_whole(runs, tmp_path):
    config, _, multitask, _ = runs
    shutil.copytree(multitask.folder, tmp_path / "run")
    before = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    with pytest.raises(OSError, match="cannot load encoder 'no-such-encoder'"):
        mtl.train_run(dataclasses.replace(config, model="no-such-encoder"), tmp_path / "run")

    def stop(history):
        raise KeyboardInterrupt  # the student interrupts the kernel after the first epoch

    with pytest.raises(KeyboardInterrupt):
        mtl.train_run(dataclasses.replace(config, tasks=["emotion"]), tmp_path / "run", on_epoch_end=stop)
    after = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    assert after == before and sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_what_a_killed_kernel_left_beside_a_run_is_tidied_before_the_next_one(runs, tmp_path):
    config, *_ = runs
    (tmp_path / ".run.k1ll3d.partial" / "best").mkdir(parents=True)  # killed while training the new run
    mtl.train_run(config, tmp_path / "run")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    written = (tmp_path / "run" / "history.json").stat().st_mtime_ns
    (tmp_path / "run").rename(tmp_path / ".run.old")  # killed between moving the old run aside and the new in
    (tmp_path / ".other.old").mkdir()  # not this run's: left alone
    run = mtl.open_or_train(config, tmp_path / "run")  # put back and read, not trained again
    assert (tmp_path / "run" / "history.json").stat().st_mtime_ns == written
    assert run.results == json.loads((tmp_path / "run" / "results.json").read_text())
    assert sorted(path.name for path in tmp_path.iterdir()) == [".other.old", "run"]


def test_the_short_experiment_shipped_with_the_package_is_the_benchmarks_report():
    """Every arm that benchmarks/quality.py ran has the test scores of short/QUALITY_RESULTS.md."""
    from mtl_tutorial import short_experiment

    table = short_experiment()
    report = (Path(__file__).resolve().parents[1] / "benchmarks" / "short" / "QUALITY_RESULTS.md").read_text()
    runs = {}
    for line in report.split("## Every run")[1].split("##")[0].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[1] == "77":
            runs[cells[0], cells[2]] = float(cells[3])
    in_the_report = {"single-task": ["single-task {task}"],
                     "sampling (uniform = temperature = proportional here)": ["multi-task uniform",
                                                                              "multi-task temperature T=2"],
                     "adaptive, no targets": ["multi-task adaptive"],
                     **{f"all-tasks, {name}": [f"multi-task all-tasks {name.lower()}"]
                        for name in ("equal", "uncertainty", "PCGrad", "MGDA", "UPGrad")}}
    rows = table.set_index("arm")
    for arm, names in in_the_report.items():
        for name, task in [(name, task) for name in names for task in ("emotion", "sentiment")]:
            assert rows.loc[arm, task] == runs[name.format(task=task), task], (arm, name, task)
    assert len(runs) == 18 and {row[0] for row in runs} <= {name.format(task=task) for names in
                                                            in_the_report.values() for name in names
                                                            for task in ("emotion", "sentiment")}
    assert set(table["learning_rate"]) == {1e-4, 2e-4} and table["arm"].is_unique


def test_the_sharing_experiment_names_each_arms_sharing_and_leaves_other_lessons_arms_out(sharing_table):
    recorded = mtl.sharing_experiment()  # the package's file, as it is now
    assert {"arm", "seed", "task", "test", "dev", *mtl.experiments.COSTS} <= set(recorded.columns)
    assert set(recorded["sharing"]) <= set(mtl.experiments.SHARING_ARMS.values()) and not recorded.empty
    table = sharing_table
    assert "multi-task uniform + irony" not in set(table["arm"]) and "irony" not in set(table["task"])
    assert table.drop_duplicates("arm").set_index("arm")["sharing"].to_dict() == {
        "single-task emotion": "single-task", "single-task sentiment": "single-task",
        "multi-task uniform": "hard", "multi-task uniform lora": "LoRA"}


def test_sharing_results_compare_one_seed_like_with_like_and_the_seed_spread_shows_the_rest(sharing_table):
    table = sharing_table
    results = mtl.sharing_results(table, seed=77)
    assert list(results.index) == [("emotion", "single-task"), ("emotion", "hard"), ("emotion", "LoRA"),
                                   ("sentiment", "single-task"), ("sentiment", "hard"), ("sentiment", "LoRA")]
    row = table.query("seed == 77 and sharing == 'LoRA' and task == 'sentiment'").iloc[0]
    alone = table.query("arm == 'single-task sentiment'")["test"].item()
    assert results.loc[("sentiment", "LoRA"), "test - single-task"] == pytest.approx(row["test"] - alone)
    assert results.loc[("sentiment", "LoRA"), ["dev", *mtl.experiments.COSTS]].tolist() == \
        row[["dev", *mtl.experiments.COSTS]].tolist()
    costs = mtl.sharing_costs(results)
    assert list(costs.index) == ["single-task emotion", "single-task sentiment", "hard", "LoRA"]
    assert costs.loc["LoRA", "checkpoint MiB"] == 0.85
    assert costs.loc["single-task sentiment", "peak MiB"] == 1500
    spread = mtl.seed_spread(table, "hard")
    hard = table[table["sharing"] == "hard"].groupby("task")["test"]
    assert spread["seeds"].tolist() == [2, 2]
    assert spread["range"].tolist() == pytest.approx((hard.max() - hard.min()).tolist())
    assert mtl.seed_spread(table, "LoRA")["range"].tolist() == [0, 0]  # one seed: no spread to see
    assert mtl.sharing_results(table, seed=78).index.get_level_values("sharing").unique().tolist() == ["hard"]

"""Smoke runs of the benchmark scripts (tiny encoder, a few steps): they run and report sane numbers.

The real measurements are made by hand and recorded in benchmarks/RESULTS.md.
"""

import importlib.util
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.lessons import lesson, lesson_config


pytestmark = pytest.mark.slow  # each script in a fresh Python process that imports torch and trains


def run_script(name, *arguments):
    finished = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *map(str, arguments)],
                              capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout[finished.stdout.index("{"):])


def test_throughput_compares_both_loops(tiny_encoder_dir, tweeteval_dir):
    summary = run_script("throughput.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                         "--max-train-examples", "64", "--rounds", "1",
                         "--variants", "package-no-length-grouping", "package-eager-attention")
    original, package = summary["original"], summary["package"]
    # what the levers save: length grouping cuts padding; the attention kernel changes only the speed
    assert summary["package-no-length-grouping"]["pad_fraction"] > package["pad_fraction"]
    assert summary["package-eager-attention"]["pad_fraction"] == package["pad_fraction"]
    assert original["runs"][0]["steps"] == package["runs"][0]["steps"] == 4  # 2 tasks x 64 tweets / 32
    assert original["pad_fraction"] > 0.4 > package["pad_fraction"]  # padding to 64 vs per batch
    assert summary["speed_up"] == package["examples_per_second"] / original["examples_per_second"]
    assert 0 < package["model_flops_utilisation"] < 1 and package["peak_rss_mib"] > 0


def test_inference_agrees_with_the_original_evaluation(tiny_encoder_dir, tweeteval_dir):
    summary = run_script("inference.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                         "--task", "emotion", "--examples", "200")
    assert summary["examples"] == 200
    assert summary["same_predictions"] > 0.98  # padding per batch must not change what the model predicts
    assert summary["package_evaluate_examples_per_second"] > 0
    assert summary["package_predict_examples_per_second"] > 0


def test_quality_pairs_arms_by_seed_and_resumes(tiny_encoder_dir, tweeteval_dir, tmp_path):
    table = tmp_path / "report" / "QUALITY.md"
    table.parent.mkdir()
    command = [sys.executable, str(REPO / "benchmarks" / "quality.py"), "--model", str(tiny_encoder_dir),
               "--data-dir", str(tweeteval_dir), "--runs", str(tmp_path / "runs"), "--table", str(table),
               "--arms", "single-task emotion", "multi-task proportional", "--seeds", "77", "78",
               "--epochs", "1", "--max-train-examples", "64", "--max-eval-examples", "48"]
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [
        "multi-task_proportional-seed77", "multi-task_proportional-seed78",
        "single-task_emotion-seed77", "single-task_emotion-seed78"]
    text = table.read_text()
    emotion_row = next(line for line in text.splitlines()
                       if line.startswith("| emotion | multi-task proportional | 2 |"))

    def emotion_test(arm, seed):
        results = json.loads((tmp_path / "runs" / f"{arm}-seed{seed}" / "results.json").read_text())
        return results["emotion"]["test"]["official"]

    mean_difference = sum(emotion_test("multi-task_proportional", s) - emotion_test("single-task_emotion", s)
                          for s in (77, 78)) / 2
    assert f"| {100 * mean_difference:.1f} |" in emotion_row
    plots = ("quality_scores.png", "quality_dev_curves.png", "quality_gradient_cosine.png")
    assert all((table.parent / name).stat().st_size > 10_000 for name in plots)
    assert "mtl-tutorial train --tasks emotion --model" in text and "--seed 78" in text
    assert "| seconds per epoch | peak MiB | checkpoint MiB |" in text  # the costs lesson 8 draws
    # a second call finds every run finished: it trains nothing and rebuilds the same report
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and "==" not in again.stdout and table.read_text() == text
    # an arm whose partners are gone from disk is paired with their rows in an earlier report
    (tmp_path / "runs" / "single-task_emotion-seed77").rename(tmp_path / "elsewhere")
    compared = tmp_path / "report" / "COMPARED.md"
    later = command[:command.index("--table")] + ["--table", str(compared), "--compare-with", str(table),
                                                  "--only-table", "--seeds", "77", "78", "--arms",
                                                  "multi-task proportional"]
    finished = subprocess.run(later, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert emotion_row in compared.read_text() and f"come from `{table}`" in compared.read_text()


def test_quality_at_the_cpu_lesson_scale_trains_the_lessons_own_run():
    """The recorded experiments of lessons 7 and 8 (`--scale cpu`): their hard-sharing arm's seed 77 is the
    very run lesson 0 trains, so the lessons' scores and the recorded ones agree."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import quality

    budget = quality.common_budget("data", "cpu")
    arm = TrainConfig(**{**budget, **quality.ARMS["multi-task uniform"][0], "seed": 77})
    assert arm == lesson_config(scale="cpu", data_dir="data")
    with_irony = TrainConfig(**{**budget, **quality.ARMS["multi-task uniform + irony"][0], "seed": 77})
    assert with_irony == lesson_config(("emotion", "sentiment", "irony"), scale="cpu", data_dir="data")


def test_runs_of_an_earlier_report_that_did_not_record_the_costs_show_them_blank(tmp_path):
    """`--compare-with` a report written before the cost columns existed: its rows keep their scores, and
    the costs they lack are blank cells in the new report, not "nan"."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import quality

    older = tmp_path / "OLDER.md"
    older.write_text("# Quality runs\n\n## Every run\n\n| arm | seed | task | test | dev | best epoch | "
                     "training minutes |\n|---|---|---|---|---|---|---|\n"
                     "| single-task emotion | 77 | emotion | 75.5 | 71.5 | 1 | 1.5 |\n")
    newer = {"arm": "multi-task uniform", "seed": "77", "task": "emotion", "test": 77.04, "dev": 72.5,
             "best epoch": "2", "training minutes": 4.4, "seconds per epoch": 130.2, "peak MiB": 2100.0,
             "checkpoint MiB": 88.5, "command": "mtl-tutorial train"}
    rows = pd.concat([quality.earlier_runs(older), pd.DataFrame([newer])], ignore_index=True)
    lines = quality.markdown_table(rows[quality.COLUMNS[:-1]]).splitlines()
    assert lines[2:] == [
        "| single-task emotion | 77 | emotion | 75.5 | 71.5 | 1 | 1.5 |  |  |  |",
        "| multi-task uniform | 77 | emotion | 77.0 | 72.5 | 2 | 4.4 | 130.2 | 2100.0 | 88.5 |"]


def test_step_cost_measures_each_arm_against_sampling(tiny_encoder_dir, tweeteval_dir, tmp_path):
    output = tmp_path / "step_cost.json"
    result = run_script("step_cost.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                        "--max-train-examples", "64", "--steps", "2", "--warmup", "1", "--rounds", "1",
                        "--arms", "all-tasks upgrad", "--profile", "--output", str(output))
    assert json.loads(output.read_text()) == result
    arms = result["arms"]
    assert list(arms) == ["sample", "all-tasks upgrad"]
    # a batch of one task, then a batch of each task
    assert arms["sample"]["examples_per_step"] == 32 and arms["all-tasks upgrad"]["examples_per_step"] == 64
    assert arms["sample"]["step_time_vs_sample"] == 1 and arms["all-tasks upgrad"]["step_time_vs_sample"] > 0
    assert all(row["peak_rss_mib"] >= row["step_memory_mib"] > 0 for row in arms.values())
    assert result["machine"]["cpu"] and result["machine"]["cores"] >= 1
    for row in arms.values():  # every kind of operator took some of the steps' time, and the shares add up
        shares = row["time_by_kind"]
        assert set(shares) == {"matmul", "dropout_random_numbers", "adamw", "other"}
        assert all(0 < share < 1 for share in shares.values()) and sum(shares.values()) == pytest.approx(1)


def test_sharing_costs_counts_what_each_sharing_trains_and_stores(tiny_encoder_dir, tweeteval_dir,
                                                                  tmp_path):
    output = tmp_path / "sharing_costs.json"
    result = run_script("sharing_costs.py", "--model", tiny_encoder_dir, "--data-dir", tweeteval_dir,
                        "--max-train-examples", "64", "--steps", "2", "--warmup", "1", "--rounds", "1",
                        "--output", str(output))
    assert json.loads(output.read_text()) == result and result["machine"]["cores"] >= 1
    hard, lora, soft = (result["sharings"][name] for name in ("hard", "lora", "soft"))
    assert lora["trainable_parameters"] < hard["trainable_parameters"] < soft["trainable_parameters"]
    assert hard["shared_trained_parameters"] > 0 == lora["shared_trained_parameters"]  # adapters: per task
    assert soft["penalty_seconds"] > 0 and hard["step_time_vs_hard"] == 1
    for row in (hard, lora, soft):  # AdamW's two fp32 moments of each parameter it updated (not the pooler)
        assert 0.9 < row["optimizer_state_mib"] * 2**20 / (8 * row["trainable_parameters"]) < 1.01
        assert set(row["checkpoint_mib_per_task"]) == {"emotion", "sentiment"} and row["peak_rss_mib"] > 0
    assert max(lora["checkpoint_mib_per_task"].values()) < min(hard["checkpoint_mib_per_task"].values())


def test_lesson_times_runs_lessons_in_a_kernel_and_a_later_call_goes_on(tweeteval_dir, tmp_path):
    """Whole lessons, because timing whole lessons is what the script does; only a whole lesson 4 shows
    that it reads lesson 0's run back from the work folder of an earlier call instead of training it."""
    # the CI scale's run, with a shrunk random RoBERTa in place of the encoder, kept in a work folder
    work = tmp_path / "work"
    common = ["--scale", "ci", "--data-dir", str(tweeteval_dir), "--work", str(work),
              "--random-encoder", "--hidden-size", "32", "--layers", "1"]
    run_script("lesson_times.py", *common, "--lessons", "00_overview", "--output", tmp_path / "first.json")
    report = json.loads((tmp_path / "first.json").read_text())
    assert list(report["seconds"]) == ["00_overview"] and report["seconds"]["00_overview"] > 0
    assert set(report["scores"]) == {f"{run}/{task}" for run in lesson("00_overview").runs
                                     for task in ("emotion", "sentiment")}  # the runs the manifest names
    assert all(0 <= score["dev"] <= 1 and score["best_epoch"] in (1, 2)
               for score in report["scores"].values())
    assert report["random_encoder"]["hidden_size"] == 32 and report["machine"]["cores"] >= 1
    executed = json.loads((work / "executed" / "00_overview.ipynb").read_text())  # what the cells printed
    assert any("macro-F1" in json.dumps(cell.get("outputs", [])) for cell in executed["cells"])
    config = json.loads((work / "runs" / "multitask" / "config.json").read_text())
    assert config["model"] == str(work / "encoder")
    # a later call times lesson 4 on lesson 0's run: it reads the run back and trains it no further
    history = work / "runs" / "multitask" / "history.json"
    written = history.stat().st_mtime_ns
    run_script("lesson_times.py", *common, "--lessons", "04_training", "--output", tmp_path / "later.json")
    later = json.loads((tmp_path / "later.json").read_text())
    assert list(later["seconds"]) == ["04_training"] and later["random_encoder"] == report["random_encoder"]
    assert history.stat().st_mtime_ns == written
    assert later["scores"] == report["scores"] | {  # and the lesson's own small run, beside it
        name: later["scores"][name] for name in ("by-hand-vs-fit/emotion", "by-hand-vs-fit/sentiment")}
    assert {name.rsplit("/", 1)[0] for name in later["scores"]} == set(lesson("04_training").runs)


def tasknet_installed() -> bool:
    """tasknet and the packages it imports (a `bench` extra and `pip install --no-deps tasknet`)."""
    return all(importlib.util.find_spec(name) for name in ("tasknet", "datasets", "evaluate", "funcy"))


def test_peers_train_the_same_tweets_in_the_same_steps_as_fit(tiny_encoder_dir, tweeteval_dir, tmp_path):
    output = tmp_path / "peers.json"
    result = run_script("peers.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                        "--max-train-examples", "64", "--rounds", "1", "--output", str(output))
    assert json.loads(output.read_text()) == result and result["machine"]["cores"] >= 1
    trainer = result["comparisons"]["trainer"]
    peer, mine = trainer["trainer"]["runs"][0], trainer["fit"]["runs"][0]
    assert peer["steps"] == mine["steps"] == 2  # 64 tweets / 32
    assert peer["examples"] == mine["examples"] == 64
    assert peer["real_tokens"] == mine["real_tokens"] > 64  # the same tweets, tokenised the same way
    for run in (peer, mine):
        assert run["examples_per_second"] > 0 and 0 <= run["pad_fraction"] < 1 and run["peak_rss_mib"] > 0
    assert trainer["fit_speed_up"] == mine["examples_per_second"] / peer["examples_per_second"]
    tasknet = result["comparisons"]["tasknet"]
    if tasknet_installed():  # it runs here: same steps and tweets as fit multi-task
        peer, mine = tasknet["tasknet"]["runs"][0], tasknet["fit"]["runs"][0]
        assert peer["steps"] == mine["steps"] == 4 and peer["examples"] == mine["examples"] == 128
        assert peer["real_tokens"] == mine["real_tokens"] and peer["examples_per_second"] > 0
        assert "peer_error" not in tasknet
    else:  # it cannot run here: the report names the error and what was tried, and fit's figures stand alone
        assert "No module named" in tasknet["peer_error"] and tasknet["tried"]
        assert "tasknet" not in tasknet and tasknet["fit"]["runs"][0]["steps"] == 4


def test_gpu_recipe_runs_shrunk_on_the_cpu(tweeteval_dir, tmp_path):
    output = tmp_path / "gpu.json"
    result = run_script("gpu_recipe.py", "--data-dir", str(tweeteval_dir), "--hidden-size", "32",
                        "--layers", "2", "--max-train-examples", "64", "--max-eval-examples", "16",
                        "--epochs", "1", "--precisions", "fp32", "--output", str(output))
    assert json.loads(output.read_text()) == result
    assert result["encoder"]["embedding_rows"] == 50265  # roberta-base's vocabulary, whatever the tokenizer's
    assert result["encoder"]["layers"] == 2 and result["encoder"]["hidden_size"] == 32
    arms = result["arms"]
    original, package = arms["original:fp32"]["runs"][0], arms["fit:fp32"]["runs"][0]
    assert original["steps"] == package["steps"] == 4  # 2 tasks x 64 tweets / 32
    assert original["pad_fraction"] > package["pad_fraction"]  # padding to 64 vs per batch
    assert arms["fit_speed_up_fp32"] == package["examples_per_second"] / original["examples_per_second"]
    for run in (original, package):
        assert run["device"] == "cpu" and run["gpu_utilisation_mean"] is None and "peak_cuda_mib" not in run
        assert run["full_epoch_seconds"] == run["epoch_seconds"][0] > 0
        assert run["wall_seconds"] >= run["seconds"]

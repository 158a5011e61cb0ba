"""Smoke runs of the benchmark scripts (tiny encoder, a few steps): they run and report sane numbers.

The real measurements are made by hand and recorded in benchmarks/RESULTS.md.
"""

import json
import subprocess
import sys

from conftest import REPO


def run_script(name, *arguments):
    finished = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *arguments], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout[finished.stdout.index("{"):])


def test_throughput_compares_both_loops(tiny_encoder_dir, tweeteval_dir):
    summary = run_script("throughput.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                         "--max-train-examples", "64", "--rounds", "1")
    original, package = summary["original"], summary["package"]
    assert original["runs"][0]["steps"] == package["runs"][0]["steps"] == 4  # 2 tasks x 64 tweets / 32
    assert original["pad_fraction"] > 0.4 > package["pad_fraction"]  # padding to 64 vs per batch
    assert summary["speed_up"] == package["examples_per_second"] / original["examples_per_second"]
    assert 0 < package["model_flops_utilisation"] < 1 and package["peak_rss_mib"] > 0


def test_inference_agrees_with_the_original_evaluation(tiny_encoder_dir, tweeteval_dir):
    summary = run_script("inference.py", "--model", str(tiny_encoder_dir), "--data-dir", str(tweeteval_dir),
                         "--task", "emotion", "--examples", "200")
    assert summary["examples"] == 200
    assert summary["same_predictions"] > 0.98  # padding per batch must not change what the model predicts
    assert summary["package_evaluate_examples_per_second"] > 0 and summary["package_predict_examples_per_second"] > 0

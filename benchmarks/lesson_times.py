"""How long each lesson takes, top to bottom in a real kernel, at one scale, and what its runs scored.

The lessons run in order in one fresh runs folder, as a student would go through them: lesson 0 trains
the multi-task run, lesson 4 reads it back (and trains its few-batch loop), lesson 5 trains the
single-task baselines. Run by hand on a quiet machine; results go to benchmarks/LESSONS.md.

    python benchmarks/lesson_times.py --scale cpu --data-dir ../shared/data/tweeteval \
        --output benchmarks/lessons-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
from step_cost import machine  # noqa: E402  (a sibling script: one description of the machine)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = ("00_overview", "01_data", "02_model", "03_sampling", "04_training", "05_evaluation",
           "06_conflict")


def time_lesson(name: str, folder: Path) -> float:
    """Run one lesson's .py side top to bottom in a new kernel working in `folder`; return its seconds."""
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=3600, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    return time.perf_counter() - started


def run_scores(runs: Path) -> dict:
    """Each run's dev and test scores (official metric) and best epoch, by run folder and task."""
    scores = {}
    for results in sorted(runs.rglob("results.json")):
        history = json.loads((results.parent / "history.json").read_text())
        for task, result in json.loads(results.read_text()).items():
            scores[f"{results.parent.relative_to(runs)}/{task}"] = {
                "best_epoch": result["best_epoch"], "dev": result["dev"]["official"],
                "test": result["test"]["official"],
                "examples_per_second": max(row["examples_per_second"] for row in history)}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("ci", "cpu", "gpu"), default="cpu")
    parser.add_argument("--data-dir", required=True, help="an existing copy of TweetEval's datasets/ folder")
    parser.add_argument("--lessons", nargs="+", default=list(LESSONS))
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    os.environ.update(MTL_TUTORIAL_SCALE=args.scale, MTL_TUTORIAL_DATA_DIR=str(Path(args.data_dir).resolve()),
                      HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    os.environ.pop("MTL_TUTORIAL_QUICK", None)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MTL_TUTORIAL_RUNS"] = str(Path(folder) / "runs")
        seconds = {}
        for name in args.lessons:
            seconds[name] = time_lesson(name, Path(folder))
            print(f"{name}: {seconds[name]:.0f} s", flush=True)
        report = {"scale": args.scale, "machine": machine(), "seconds": seconds,
                  "scores": run_scores(Path(folder) / "runs")}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["scores"], indent=2))


if __name__ == "__main__":
    main()

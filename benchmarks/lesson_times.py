"""How long each lesson takes, top to bottom in a real kernel, at one scale, and what its runs scored.

The lessons run in order in one fresh runs folder, as a student would go through them: lesson 0 trains
the multi-task run, lesson 4 reads it back (and trains its few-batch loop), lesson 5 trains the
single-task baselines. Run by hand on a quiet machine; results go to benchmarks/LESSONS.md.

    python benchmarks/lesson_times.py --scale cpu --data-dir ../shared/data/tweeteval \
        --output benchmarks/lessons-cpu.json

The full setting (`--scale gpu`) needs roberta-base from the hub; `--random-encoder` puts a randomly
initialised encoder of its size in its place (benchmarks/gpu_recipe.py: the time does not depend on the
weights). `--work` keeps the runs in a folder, so a later call can time the remaining lessons on them:

    python benchmarks/lesson_times.py --scale gpu --random-encoder --data-dir DATA --work W \
        --lessons 00_overview 01_data --output first.json
    python benchmarks/lesson_times.py --scale gpu --random-encoder --data-dir DATA --work W \
        --lessons 05_evaluation --output second.json
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
import nbformat
import torch
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
from gpu_recipe import build_encoder, training_tweets  # noqa: E402  (sibling scripts)
from step_cost import machine  # noqa: E402

from mtl_tutorial.config import TrainConfig  # noqa: E402
from mtl_tutorial.lessons import LESSONS, SCALES, lesson  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def time_lesson(name: str, folder: Path, cell_timeout: int) -> float:
    """Run one lesson's .py side top to bottom in a new kernel working in `folder`; return its seconds.
    The notebook and what its cells printed (up to an error) are saved as `folder/executed/<name>.ipynb`."""
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}, shutdown_kernel="immediate")
    # nbclient plays the front end of Output widgets, and then sometimes sat idle for the whole cell timeout
    # after lesson 4's training panel (2 runs in 5; nbclient 0.11, ipykernel 7.4): the lessons' widgets
    # need no front end to be timed, so their output goes to the cell
    client.comm_open_handlers = {}
    try:
        client.execute()
    finally:
        (folder / "executed").mkdir(exist_ok=True)
        nbformat.write(notebook, folder / "executed" / f"{name}.ipynb")
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


def random_encoder(folder: Path, data_dir: str, hidden_size: int | None, layers: int | None) -> dict:
    """The random roberta-base-size encoder in `folder` (built there once, its tokenizer learnt from every
    task's training tweets); return what it is."""
    description = folder / "encoder.json"
    if not description.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tweets = training_tweets(TrainConfig(data_dir=data_dir))  # the lessons' tasks, emotion and sentiment
        description.write_text(json.dumps(build_encoder(folder, tweets, hidden_size, layers)))
    return json.loads(description.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="cpu")
    parser.add_argument("--data-dir", required=True, help="an existing copy of TweetEval's datasets/ folder")
    stems = [lesson.stem for lesson in LESSONS]
    parser.add_argument("--lessons", nargs="+", choices=stems, default=stems)
    parser.add_argument("--output", type=Path, required=True, help="the report (JSON), written after "
                        "every lesson")
    parser.add_argument("--work", type=Path, help="keep the runs (and the random encoder) here, for a later "
                        "call (default: a temporary folder)")
    parser.add_argument("--random-encoder", action="store_true", help="a randomly initialised RoBERTa of "
                        "roberta-base's size instead of the scale's encoder")
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds a cell may run")
    parser.add_argument("--hidden-size", type=int, help="shrink the random encoder (a rehearsal on a CPU)")
    parser.add_argument("--layers", type=int, help="shrink the random encoder (a rehearsal on a CPU)")
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    os.environ.update(MTL_TUTORIAL_SCALE=args.scale, MTL_TUTORIAL_DATA_DIR=data_dir,
                      HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory() as temporary:
        work = (args.work or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)  # the lessons' working folder: their runs/ go in it
        report = {"scale": args.scale, "machine": machine(),
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
        if args.random_encoder:
            encoder = work / "encoder"
            report["random_encoder"] = random_encoder(encoder, data_dir, args.hidden_size, args.layers)
            os.environ["MTL_TUTORIAL_ENCODER"] = str(encoder)
        os.environ.pop("MTL_TUTORIAL_RUNS", None)  # runs/ beside the lesson (in `work`), as a student's
        report["seconds"] = {}
        for name in args.lessons:
            report["seconds"][name] = time_lesson(name, work, args.cell_timeout)
            report["scores"] = run_scores(work / "runs")
            args.output.write_text(json.dumps(report, indent=2) + "\n")  # a run cut short keeps its lessons
            print(f"{name}: {report['seconds'][name]:.0f} s (it trains {lesson(name).trains})", flush=True)
    print(json.dumps(report["scores"], indent=2))


if __name__ == "__main__":
    main()

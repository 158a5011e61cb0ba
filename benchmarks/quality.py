"""Does multi-task learning help? Single-task baselines and multi-task runs with each sampler.

Every arm uses the same encoder, data caps, epochs, learning rate and seeds, and the package's own
`fit`. Runs already finished are kept, so the script can be stopped and started again; the table
(benchmarks/QUALITY_RESULTS.md) is rebuilt from whatever has finished. Run by hand:

    python benchmarks/quality.py --data-dir ../shared/data/tweeteval --runs runs/quality
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd

from mtl_tutorial.train import RESULTS_FILE, TrainConfig, fit, load_config

# name -> (what differs from the common budget, seeds); the key comparison gets three seeds.
ARMS = {
    "single-task emotion": ({"tasks": ["emotion"]}, (77, 78, 79)),
    "multi-task proportional": ({"sampler": "proportional"}, (77, 78, 79)),
    "multi-task temperature T=2": ({"sampler": "temperature", "temperature": 2.0}, (77, 78, 79)),
    "single-task sentiment": ({"tasks": ["sentiment"]}, (77,)),
    "multi-task uniform": ({"sampler": "uniform"}, (77,)),
    "multi-task annealed": ({"sampler": "annealed"}, (77,)),
}
# Test scores published in the TweetEval paper (Barbieri et al. 2020), single-task, full training data.
PUBLISHED = {"paper: RoBERTa-base": {"emotion": 76.1, "sentiment": 71.3},
             "paper: RoBERTa pre-trained on tweets from scratch": {"emotion": 72.0, "sentiment": 69.1},
             "paper: RoBERTa-base retrained on tweets": {"emotion": 78.5}}


def common_budget(data_dir: str | None) -> dict:
    """What every arm shares: MiniLM, emotion in full and at most 4000 sentiment tweets, 2 epochs."""
    return {"tasks": ["emotion", "sentiment"], "epochs": 2, "learning_rate": 1e-4, "max_train_examples": 4000,
            "data_dir": data_dir}


def run_folder(runs: Path, arm: str, seed: int) -> Path:
    return runs / f"{arm.replace(' ', '_').replace('=', '')}-seed{seed}"


def run_arms(runs: Path, data_dir: str | None, arms: list[str]) -> None:
    """Train every (arm, seed) that has no results yet, first seeds first, so an early stop still
    leaves one seed of every arm; a half-done run resumes from its last finished epoch."""
    order = sorted(((index, arm, seed) for arm in arms for index, seed in enumerate(ARMS[arm][1])), key=lambda item: item[0])
    for _, arm, seed in order:
        folder = run_folder(runs, arm, seed)
        if (folder / RESULTS_FILE).exists():
            continue
        config = TrainConfig(**{**common_budget(data_dir), **ARMS[arm][0], "seed": seed})
        print(f"== {arm}, seed {seed} -> {folder}", flush=True)
        fit(config, folder, resume=(folder / "config.json").exists(), progress=False)


def collect(runs: Path) -> pd.DataFrame:
    """One row per finished run and task: official test score, best epoch, training time."""
    rows = []
    for arm, (_, seeds) in ARMS.items():
        for seed in seeds:
            folder = run_folder(runs, arm, seed)
            if not (folder / RESULTS_FILE).exists():
                continue
            results = json.loads((folder / RESULTS_FILE).read_text())
            history = pd.read_csv(folder / "history.csv")
            minutes = history.drop_duplicates("epoch")["seconds"].sum() / 60
            for task, result in results.items():
                rows.append({"arm": arm, "seed": seed, "task": task, "test": 100 * result["test"]["official"],
                             "dev": 100 * result["dev"]["official"], "best epoch": result["best_epoch"],
                             "training minutes": minutes, "command": rerun_command(load_config(folder), folder)})
    columns = ["arm", "seed", "task", "test", "dev", "best epoch", "training minutes", "command"]
    return pd.DataFrame(rows, columns=columns)


def rerun_command(config: TrainConfig, folder: Path) -> str:
    """The one command that re-trains this run from scratch."""
    parts = ["mtl-tutorial train --tasks", " ".join(config.tasks), f"--sampler {config.sampler}"]
    if config.sampler == "temperature":
        parts.append(f"--temperature {config.temperature}")
    parts += [f"--epochs {config.epochs}", f"--learning-rate {config.learning_rate}",
              f"--max-train-examples {config.max_train_examples}", f"--seed {config.seed}", f"--out {folder}"]
    return " ".join(parts)


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± spread (sample standard deviation) of each arm's official test score, per task."""
    cells = {}
    for (arm, task), group in rows.groupby(["arm", "task"], sort=False):
        scores = group["test"].tolist()
        spread = f" ± {statistics.stdev(scores):.1f}" if len(scores) > 1 else ""
        cells.setdefault(arm, {})[task] = f"{statistics.mean(scores):.1f}{spread} (n={len(scores)})"
    for source, scores in PUBLISHED.items():
        cells[source] = {task: f"{score:.1f}" for task, score in scores.items()}
    return pd.DataFrame(cells).T.reindex(columns=["emotion", "sentiment"]).fillna("")


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, numbers to one decimal."""
    cells = [[f"{value:.1f}" if isinstance(value, float) else str(value) for value in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality"))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--table", type=Path, default=Path(__file__).with_name("QUALITY_RESULTS.md"))
    parser.add_argument("--only-table", action="store_true", help="rebuild the table from finished runs, train nothing")
    args = parser.parse_args()
    if not args.only_table:
        run_arms(args.runs, args.data_dir, args.arms)
    rows = collect(args.runs)
    text = ["# Quality runs (generated by benchmarks/quality.py)", "",
            f"Common budget: {json.dumps({k: v for k, v in common_budget(None).items() if k != 'data_dir'})}; "
            "official TweetEval test scores x 100 (emotion macro-F1, sentiment macro-recall).", "",
            markdown_table(summary_table(rows).rename_axis("arm").reset_index()), "", "## Every run", "",
            markdown_table(rows.drop(columns="command")), "", "## Re-run a row", ""]
    text += [f"- `{command}`" for command in rows["command"].drop_duplicates()]
    args.table.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

"""Does multi-task learning help? Single-task baselines and multi-task runs, sampled or all-tasks.

The multi-task arms either sample one task per step (each sampler, adaptive included) or take a batch of
every task per step, combined by each method (equal, uncertainty, PCGrad, MGDA, UPGrad).

Every arm uses the same encoder, data caps, epochs, learning rate and seeds, and the package's own
`fit`. Runs already finished are kept, so the script can be stopped and started again; the report
(benchmarks/QUALITY_RESULTS.md and its plots) is rebuilt from whatever has finished. Run by hand:

    python benchmarks/quality.py --data-dir ../shared/data/tweeteval --runs runs/quality
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
from pathlib import Path

import pandas as pd
from scipy.stats import ttest_rel

from mtl_tutorial.cli import command_line
from mtl_tutorial.combine import COMBINERS
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.files import write_atomically
from mtl_tutorial.lessons import SCALES
from mtl_tutorial.runs import best_folder, is_finished, load_config, load_history, open_run, saved_config
from mtl_tutorial.train import fit

import quality_plots

# name -> (what differs from the common budget, seeds); the key comparison gets four seeds.
KEY_SEEDS = (77, 78, 79, 80)
# the samplers the sharings run with: temperature at the common budget, uniform at the CPU lesson scale
SHARING_SAMPLERS = {"temperature T=2": {"sampler": "temperature", "temperature": 2.0},
                    "uniform": {"sampler": "uniform"}}
ARMS = {
    "single-task emotion": ({"tasks": ["emotion"]}, KEY_SEEDS),
    "multi-task proportional": ({"sampler": "proportional"}, KEY_SEEDS),
    "multi-task temperature T=2": ({"sampler": "temperature", "temperature": 2.0}, KEY_SEEDS),
    "single-task sentiment": ({"tasks": ["sentiment"]}, (77,)),
    "multi-task uniform": ({"sampler": "uniform"}, (77,)),
    "multi-task annealed": ({"sampler": "annealed"}, (77,)),
    # from temperature sampling towards the tasks below their single-task dev scores at this budget (the
    # single-task arms' mean dev scores in QUALITY_RESULTS.md); without targets, 2 epochs leave it at T=2
    "multi-task adaptive": ({"sampler": "adaptive", "temperature": 2.0,
                             "target_scores": {"emotion": 0.7295, "sentiment": 0.679}}, (77,)),
    # all-tasks: equal weights and the best other method on seed 77's mean dev score (UPGrad; MGDA tied on
    # the mean, UPGrad was higher on emotion's dev) get three seeds
    **{f"multi-task all-tasks {combine}": ({"strategy": "all-tasks", "combine": combine},
                                           KEY_SEEDS[:3] if combine in ("equal", "upgrad") else (77,))
       for combine in COMBINERS},
    # how much to share (lesson 8), paired with hard sharing on the same sampler
    **{f"multi-task {sampler} {sharing}": ({**changes, "sharing": sharing}, KEY_SEEDS[:3])
       for sampler, changes in SHARING_SAMPLERS.items() for sharing in ("lora", "soft")},
    # LoRA trains few parameters from zero: it is usually given a larger learning rate than full fine-tuning
    **{f"multi-task {sampler} lora lr 1e-3": ({**changes, "sharing": "lora", "learning_rate": 1e-3},
                                              KEY_SEEDS[:3] if sampler == "temperature T=2" else (77,))
       for sampler, changes in SHARING_SAMPLERS.items()},
    # does a third task help (lesson 7)? irony beside emotion and sentiment, at the CPU lesson scale
    "multi-task uniform + irony": ({"sampler": "uniform", "tasks": ["emotion", "sentiment", "irony"]},
                                   KEY_SEEDS[:3]),
    "single-task irony": ({"tasks": ["irony"]}, KEY_SEEDS[:3]),
}
COLUMNS = ["arm", "seed", "task", "test", "dev", "best epoch", "training minutes", "seconds per epoch",
           "peak MiB", "checkpoint MiB", "command"]
PEAK_MEMORY_FILE = "peak_rss_mib.txt"  # written by run_arms beside the run
TEMPERATURE = "multi-task temperature T=2"  # the best sampler at this budget: new arms are paired with it too
# Test scores published in the TweetEval paper (Barbieri et al. 2020), single-task, full training data.
PUBLISHED = {"paper: RoBERTa-base": {"emotion": 76.1, "sentiment": 71.3},
             "paper: RoBERTa pre-trained on tweets from scratch": {"emotion": 72.0, "sentiment": 69.1},
             "paper: RoBERTa-base retrained on tweets": {"emotion": 78.5}}
PLOTS = {"scores": "quality_scores.png", "dev curves": "quality_dev_curves.png",
         "gradient cosine": "quality_gradient_cosine.png"}


def common_budget(data_dir: str | None, scale: str | None = None, **changes) -> dict:
    """Every arm's budget: MiniLM, emotion in full (3257), a seeded sample of 6000 sentiment tweets, 2 epochs.

    6000 keeps a CPU run near 7 minutes while the tasks still differ in size (1 : 1.8), so the
    samplers differ.
    `changes` (e.g. a smaller model or caps for a smoke test) apply to every arm alike. With `scale` (one
    of `lessons.SCALES`, e.g. "cpu"), its settings replace this budget: the lessons' recorded experiments.
    """
    if scale:
        return {"tasks": ["emotion", "sentiment"], **SCALES[scale].settings, "data_dir": data_dir, **changes}
    return {"tasks": ["emotion", "sentiment"], "epochs": 2, "learning_rate": 1e-4, "max_train_examples": 6000,
            "data_dir": data_dir, **changes}


def run_folder(runs: Path, arm: str, seed: int) -> Path:
    return runs / f"{arm.replace(' ', '_').replace('=', '')}-seed{seed}"


def arm_seeds(arms: list[str], seeds: list[int] | None) -> list[tuple[str, int]]:
    """Every (arm, seed) to run, first seeds first, so an early stop still leaves one seed of every arm."""
    pairs = [(index, arm, seed) for arm in arms for index, seed in enumerate(seeds or ARMS[arm][1])]
    return [(arm, seed) for _, arm, seed in sorted(pairs, key=lambda pair: pair[0])]


def run_arms(runs: Path, budget: dict, arms: list[str], seeds: list[int] | None = None) -> None:
    """Train every (arm, seed) without results yet; a half-done run resumes from its last finished epoch."""
    for arm, seed in arm_seeds(arms, seeds):
        folder = run_folder(runs, arm, seed)
        if is_finished(folder):
            continue
        config = TrainConfig(**{**budget, **ARMS[arm][0], "seed": seed})
        print(f"== {arm}, seed {seed} -> {folder}", flush=True)
        forget_peak_memory()
        fit(config, folder, resume=saved_config(folder) is not None, progress=False)
        (folder / PEAK_MEMORY_FILE).write_text(f"{peak_memory_mib():.0f}\n", encoding="utf-8")


def forget_peak_memory() -> None:
    """Start this process's peak resident memory again from what it holds now (Linux: /proc/self/clear_refs),
    so that the next reading is one run's peak, not an earlier run's in the same process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the peak is the process's; run one (arm, seed) per process (--arms A --seeds S)


def peak_memory_mib() -> float:
    """This process's peak resident memory since `forget_peak_memory` (Linux's VmHWM), else since it began."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    high_water = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
    return high_water[0] / 1024 if high_water else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def finished_runs(runs: Path, arms: list[str], seeds: list[int] | None = None) -> dict[tuple[str, int], Path]:
    """(arm, seed) -> run folder, for the runs that have their test results."""
    found = {(arm, seed): run_folder(runs, arm, seed) for arm, seed in arm_seeds(arms, seeds)}
    return {key: folder for key, folder in found.items() if is_finished(folder)}


def collect(finished: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """One row per finished run and task: official test score (x 100), best epoch, training time, command."""
    rows = []
    for (arm, seed), folder in finished.items():
        run = open_run(folder)
        results, history = run.results, run.history
        seconds = history.drop_duplicates("epoch")["seconds"]
        peak = folder / PEAK_MEMORY_FILE
        for task, result in results.items():
            files = [path for path in best_folder(folder, task).rglob("*") if path.is_file()]
            rows.append({"arm": arm, "seed": seed, "task": task, "test": 100 * result["test"]["official"],
                         "dev": 100 * result["dev"]["official"], "best epoch": result["best_epoch"],
                         "training minutes": seconds.sum() / 60, "seconds per epoch": seconds.mean(),
                         "peak MiB": float(peak.read_text()) if peak.exists() else None,
                         "checkpoint MiB": sum(path.stat().st_size for path in files) / 2**20,
                         "command": command_line(load_config(folder), folder)})
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± spread (sample standard deviation over seeds) of each arm's official test score, per task."""
    cells = {}
    for (arm, task), group in rows.groupby(["arm", "task"], sort=False):
        scores = group["test"].tolist()
        spread = f" ± {statistics.stdev(scores):.1f}" if len(scores) > 1 else ""
        cells.setdefault(arm, {})[task] = f"{statistics.mean(scores):.1f}{spread} (n={len(scores)})"
    for source, scores in PUBLISHED.items():
        cells[source] = {task: f"{score:.1f}" for task, score in scores.items()}
    return pd.DataFrame(cells).T.reindex(columns=list(dict.fromkeys(rows["task"]))).fillna("")


def paired_differences(rows: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Each multi-task arm minus `baseline` (default: the single-task arm of the same task), seed by seed
    (same seed = same data sample and initial heads), against the seed-to-seed spread, with a paired
    t-test where n > 1."""
    found = []
    for task in dict.fromkeys(rows["task"]):
        reference = baseline or f"single-task {task}"
        alone = rows[(rows["arm"] == reference) & (rows["task"] == task)].set_index("seed")["test"]
        for arm in dict.fromkeys(rows.loc[rows["arm"].str.startswith("multi-task"), "arm"]):
            together = rows[(rows["arm"] == arm) & (rows["task"] == task)].set_index("seed")["test"]
            differences = (together - alone).dropna()
            if arm == reference or differences.empty:
                continue
            seeds = differences.index
            spread, p_value, verdict = "n/a", "n/a", "one seed: spread unknown"
            if len(seeds) > 1:
                largest = max(statistics.stdev(alone[seeds]), statistics.stdev(together[seeds]))
                spread, p_value = f"{largest:.1f}", f"{ttest_rel(together[seeds], alone[seeds]).pvalue:.2f}"
                larger = abs(differences.mean()) > largest
                verdict = "larger than the seed spread" if larger else "within the seed spread"
            found.append({"task": task, "multi-task arm": arm, "seeds": len(seeds),
                          "mean difference": differences.mean(),
                          "per seed": ", ".join(f"{value:+.1f}" for value in differences),
                          "seed spread (larger sd of the two arms)": spread, "paired t-test p": p_value,
                          "verdict": verdict})
    return pd.DataFrame(found)


def earlier_runs(report_file: Path) -> pd.DataFrame:
    """The "Every run" rows of an earlier report of this script: new arms pair with runs no longer on disk."""
    lines = report_file.read_text(encoding="utf-8").split("## Every run", 1)[-1].strip().splitlines()
    table = [line.strip("|").split("|") for line in lines if line.startswith("| ")]
    if len(table) < 2:
        raise ValueError(f"{report_file}: no '## Every run' table, so nothing to compare with")
    header, body = [cell.strip() for cell in table[0]], table[1:]
    frame = pd.DataFrame([[cell.strip() for cell in row] for row in body], columns=header)
    numbers = [name for name in COLUMNS[1:-1] if name in frame.columns and name != "task"]
    frame[numbers] = frame[numbers].apply(pd.to_numeric, errors="coerce")
    return frame.assign(command=None)


def draw_plots(rows: pd.DataFrame, finished: dict[tuple[str, int], Path], folder: Path) -> None:
    """Test scores per arm and seed; dev curves and gradient cosines of each arm's first finished seed."""
    first = {}
    for (arm, _), run in finished.items():
        first.setdefault(arm, load_history(run))
    figures = {"scores": quality_plots.arm_scores(rows, PUBLISHED),
               "dev curves": quality_plots.arm_curves(first)}
    multitask = {arm: history for arm, history in first.items() if "gradient_cosine" in history}
    if multitask:
        # with two tasks both rows of an epoch hold the same cosine: keep one, titled by the pair
        one_task = {}
        for arm, history in multitask.items():
            pair = " vs ".join(history["task"].unique())
            one_task[arm] = history[history["task"] == history["task"].iloc[0]].assign(task=pair)
        figures["gradient cosine"] = quality_plots.arm_curves(one_task, "gradient_cosine",
                                                              "cosine of the two tasks' encoder gradients")
    for name, figure in figures.items():
        write_atomically(folder / PLOTS[name],
                         lambda temporary: figure.savefig(temporary, dpi=110, format="png"))


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, numbers to one decimal, missing values (NaN, None) blank."""
    cells = [["" if pd.isna(value) else f"{value:.1f}" if isinstance(value, float) else str(value)
              for value in row]
             for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def report(rows: pd.DataFrame, budget: dict, compared: Path | None = None,
           pair_with: str = TEMPERATURE) -> str:
    """The Markdown report: summary beside the published scores, paired differences, every run, commands."""
    differences = paired_differences(rows)
    shown = {key: value for key, value in budget.items() if key != "data_dir"}
    against_temperature = paired_differences(rows, pair_with)
    text = ["# Quality runs (generated by benchmarks/quality.py)", "",
            f"Common budget: `{json.dumps(shown)}`; official TweetEval test scores x 100 (emotion macro-F1, "
            "sentiment macro-recall), each from the task's own best dev epoch.", "",
            *([f"Rows without a command come from `{compared}`, an earlier report of this budget; its scores "
               "are rounded to 0.1, so a mean or spread here can differ from its own in the last digit; what "
               "it did not record is left blank.", ""]
              if compared else []),
            markdown_table(summary_table(rows).rename_axis("arm").reset_index()), "",
            "## Multi-task minus single-task, paired by seed", "",
            markdown_table(differences) if len(differences)
            else "(no multi-task run has a single-task run of the same seed yet)", "",
            *([f"## Minus {pair_with}, paired by seed", "", markdown_table(against_temperature), ""]
              if len(against_temperature) else []),
            "## Every run", "", markdown_table(rows.drop(columns="command")), "", "## Re-run a row", ""]
    commands = rows["command"].dropna().drop_duplicates()
    return "\n".join(text + [f"- `{command}`" for command in commands]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality"))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int,
                        help="the same seeds for every arm (default: each arm's own)")
    parser.add_argument("--table", type=Path, default=Path(__file__).with_name("QUALITY_RESULTS.md"),
                        help="the report to write; its plots go beside it")
    parser.add_argument("--only-table", action="store_true",
                        help="rebuild the report from finished runs, train nothing")
    parser.add_argument("--compare-with", type=Path, help="an earlier report of the same budget: its runs "
                        "join the tables (e.g. the single-task and temperature arms for new arms)")
    parser.add_argument("--pair-with", default=TEMPERATURE, choices=list(ARMS),
                        help="the arm every multi-task arm is also paired with, seed by seed")
    parser.add_argument("--scale", choices=list(SCALES), help="one of the lessons' scales as the budget "
                        "(cpu: the recorded experiments of lessons 7 and 8)")
    smaller = parser.add_argument_group("a different budget for every arm (smoke tests, other encoders)")
    smaller.add_argument("--model")
    smaller.add_argument("--epochs", type=int)
    smaller.add_argument("--max-train-examples", type=int)
    smaller.add_argument("--max-eval-examples", type=int)
    smaller.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"))
    args = parser.parse_args()
    options = ("model", "epochs", "max_train_examples", "max_eval_examples", "mixed_precision")
    changes = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    budget = common_budget(args.data_dir, args.scale, **changes)
    if not args.only_table:
        run_arms(args.runs, budget, args.arms, args.seeds)
    finished = finished_runs(args.runs, args.arms, args.seeds)
    if not finished:
        parser.error(f"no finished run in {args.runs}")
    rows = collect(finished)
    if args.compare_with:
        earlier = earlier_runs(args.compare_with)
        rows = pd.concat([earlier[~earlier["arm"].isin(rows["arm"])], rows], ignore_index=True)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    draw_plots(rows, finished, args.table.parent)
    text = report(rows, budget, args.compare_with, args.pair_with)
    write_atomically(args.table, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    print(text)


if __name__ == "__main__":
    main()

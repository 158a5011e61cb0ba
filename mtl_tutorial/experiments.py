"""Lessons 6 to 8's recorded experiments: runs too long for a lesson, trained once and shipped as tables.

Each file in recorded/ (its README says how each was made) has a reader here, and the comparisons the
lessons make of it: paired by seed, like against like.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import ttest_rel

RECORDED = Path(__file__).with_name("recorded")
SHORT_EXPERIMENT = RECORDED / "all_tasks_short.csv"  # lesson 6 (recorded/README)
THIRD_TASK_EXPERIMENT = RECORDED / "third_task.csv"  # lesson 7 (recorded/README)
WITHOUT_IRONY, WITH_IRONY = "multi-task uniform", "multi-task uniform + irony"  # its two paired arms
SHARING_EXPERIMENT = RECORDED / "sharing.csv"  # lesson 8 (recorded/README)


def short_experiment() -> pd.DataFrame:
    """Test scores x 100 of samplers and all-tasks methods on one small budget, one seed (recorded/README):
    one row per arm, with its strategy, method, learning rate and what the method did."""
    return pd.read_csv(SHORT_EXPERIMENT, keep_default_na=False)


def third_task_experiment() -> pd.DataFrame:
    """Lesson 7's recorded experiment (recorded/README): test and dev scores x 100 of multi-task runs with
    and without irony over several seeds, and of single-task runs; one row per run and task."""
    return pd.read_csv(THIRD_TASK_EXPERIMENT, keep_default_na=False)


def with_minus_without(experiment: pd.DataFrame, tasks=("emotion", "sentiment")) -> pd.DataFrame:
    """Per task and seed trained in both arms: the test score without irony, with it, and the difference
    (with - without). Seeds that only one arm has are left out: each difference is of one seed."""
    scores = experiment[experiment["task"].isin(tasks)].pivot_table(index=["task", "seed"], columns="arm",
                                                                   values="test")
    paired = scores.reindex(columns=[WITHOUT_IRONY, WITH_IRONY]).dropna()
    paired.columns = ["without irony", "with irony"]
    paired["difference"] = paired["with irony"] - paired["without irony"]
    return paired.reset_index()


def paired_test(differences: pd.DataFrame) -> pd.DataFrame:
    """Per task of `with_minus_without`: the seeds, the mean difference and the paired t-test's t and p
    (NaN with fewer than 2 seeds: one pair has no spread to test against)."""
    rows = []
    for task, own in differences.groupby("task", sort=False):
        t, p = (ttest_rel(own["with irony"], own["without irony"]) if len(own) > 1
                else (float("nan"), float("nan")))
        rows.append({"task": task, "seeds": len(own), "mean difference": own["difference"].mean(),
                     "t": float(t), "p": float(p)})
    return pd.DataFrame(rows, columns=["task", "seeds", "mean difference", "t", "p"]).set_index("task")


# ---------------------------------------------------------------------------------------------
# Lesson 8's recorded experiment: single-task, hard, LoRA and soft sharing at the CPU lesson scale
# ---------------------------------------------------------------------------------------------

# the arms of benchmarks/quality.py that lesson 8 reads, and its name for each ("single-task <task>" as one)
SHARING_ARMS = {"single-task": "single-task", "multi-task uniform": "hard", "multi-task uniform lora": "LoRA",
                "multi-task uniform soft": "soft", "multi-task uniform lora lr 1e-3": "LoRA at lr 1e-3"}
COSTS = ["seconds per epoch", "peak MiB", "checkpoint MiB"]


def sharing_experiment(path: str | Path = SHARING_EXPERIMENT) -> pd.DataFrame:
    """Lesson 8's recorded runs (recorded/README): one row per run and task, test and dev scores x 100 and
    the run's costs; `sharing` names the arm as `SHARING_ARMS` does (other lessons' arms are left out)."""
    table = pd.read_csv(path)
    arms = table["arm"].where(~table["arm"].str.startswith("single-task "), "single-task")
    return table.assign(sharing=arms.map(SHARING_ARMS)).dropna(subset=["sharing"]).reset_index(drop=True)


def sharing_results(table: pd.DataFrame, seed: int = 77) -> pd.DataFrame:
    """One seed's runs of `sharing_experiment`, like against like: per task and way of sharing (in the order
    of `SHARING_ARMS`), dev and test scores, test minus the single-task run's, and the run's costs."""
    rows = table[table["seed"] == seed]
    order = [name for name in SHARING_ARMS.values() if name in set(rows["sharing"])]
    tasks = list(dict.fromkeys(rows["task"]))
    frame = rows.set_index(["task", "sharing"]).reindex(
        [(task, name) for task in tasks for name in order]).dropna(subset=["test"])
    alone = frame.xs("single-task", level="sharing")["test"] if "single-task" in order else None
    versus = (frame["test"] - alone.reindex(frame.index.get_level_values("task")).to_numpy()
              if alone is not None else float("nan"))
    return frame[["dev", "test"]].assign(**{"test - single-task": versus}).join(frame[COSTS])


def sharing_costs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per run of `sharing_results` (single-task: one run per task, first): its time per epoch, its
    peak memory, and the mean size of one task's checkpoint."""
    rows = results.reset_index()
    alone = rows["sharing"] == "single-task"
    rows["run"] = rows["sharing"].where(~alone, "single-task " + rows["task"])
    return pd.concat([rows[alone], rows[~alone]]).groupby("run", sort=False)[COSTS].mean()


def seed_spread(table: pd.DataFrame, sharing: str = "hard") -> pd.DataFrame:
    """Per task, how far the test score of one way of sharing moved with the seed alone: its seeds, the lowest
    and highest score, and their range (0 with one seed, which cannot show a spread)."""
    scores = table[table["sharing"] == sharing].groupby("task", sort=False)["test"]
    spread = pd.DataFrame({"seeds": scores.size(), "lowest": scores.min(), "highest": scores.max()})
    return spread.assign(range=spread["highest"] - spread["lowest"])

"""Pictures of an experiment with several arms and seeds (benchmarks/quality.py): scores, curves per arm."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from mtl_tutorial.metrics import official_metric_name


def arm_scores(rows: pd.DataFrame, references: dict[str, dict[str, float]] | None = None) -> Figure:
    """One panel per task: each arm's test score per seed (dots), their mean (bar), published scores (lines).

    `rows` has one row per run and task: arm, seed, task, test (as from benchmarks/quality.py).
    """
    tasks = list(dict.fromkeys(rows["task"]))
    width = max(5.5, 0.75 * rows["arm"].nunique())  # room for every arm's name
    figure, axes_list = plt.subplots(1, len(tasks), figsize=(width * len(tasks), 5.5), squeeze=False,
                                     constrained_layout=True)
    for axes, task in zip(axes_list[0], tasks):
        mine = rows[rows["task"] == task]
        arms = list(dict.fromkeys(mine["arm"]))
        means = [mine.loc[mine["arm"] == arm, "test"].mean() for arm in arms]
        colors = ["C1" if arm.startswith("single") else "C0" for arm in arms]
        axes.bar(range(len(arms)), means, color=colors, alpha=0.45)
        for position, arm in enumerate(arms):
            scores = mine.loc[mine["arm"] == arm, "test"]
            axes.plot([position] * len(scores), scores, "k.", markersize=9)
            axes.annotate(f"{means[position]:.1f}", (position, means[position]), ha="center", va="bottom",
                          fontsize="small", xytext=(0, 3), textcoords="offset points")
        for index, (source, scores) in enumerate((references or {}).items()):
            if task in scores:
                axes.axhline(scores[task], color=f"C{index + 2}", linestyle="--", linewidth=1,
                             label=f"{source}: {scores[task]:.1f}")
        low = min(mine["test"].min(), *[scores.get(task, 100) for scores in (references or {}).values()])
        names = [arm.removeprefix("multi-task ").replace("single-task ", "single-task\n") for arm in arms]
        axes.set_xticks(range(len(arms)), names, fontsize="small", rotation=40, ha="right")
        axes.set(ylim=(max(0, low - 5), None), ylabel=f"test {official_metric_name(task)} x 100",
                 title=f"{task}: bars = mean over seeds, dots = seeds")
        if references:
            axes.legend(fontsize="x-small", loc="lower right")
    return figure


def arm_curves(histories: dict[str, pd.DataFrame], column: str = "dev_official",
               ylabel: str = "official dev score") -> Figure:
    """One panel per task, one line per arm: `column` of each run's history against the epoch."""
    tasks = list(dict.fromkeys(task for history in histories.values() for task in history["task"]))
    figure, axes_list = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False,
                                     constrained_layout=True)
    for axes, task in zip(axes_list[0], tasks):
        for index, (arm, history) in enumerate(histories.items()):
            rows = history[history["task"] == task]
            if len(rows):
                axes.plot(rows["epoch"], rows[column], "o-", color=f"C{index}", label=arm)
        axes.set(xlabel="epoch", ylabel=ylabel, title=task)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    return figure

"""Lesson 8's pictures: what each task shares and owns in hard, LoRA and soft sharing, counted from the
models, and the recorded experiment's scores per task beside each run's costs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..experiments import COSTS, sharing_costs, sharing_results
from ..metrics import official_metric_name
from .pipeline import labelled_box

SHARED_TRAINED, FROZEN = "#9ecae1", "#e5e5e5"
COST_TITLES = ["time per epoch (s)", "peak memory (MiB)", "one task's checkpoint (MiB)"]  # experiments.COSTS
PANEL_TITLES = {"hard": "hard sharing: one encoder", "lora": "LoRA: a frozen encoder, an adapter per task",
                "soft": "soft sharing: an encoder copy per task"}


def task_colour(index: int):
    return to_rgba(f"C{index + 1}", 0.4)  # C0 is close to the shared encoder's blue


def what_each_task_has(counts: pd.DataFrame, sharing: str, task: str) -> str:
    """One task's lines under its panel: what it trains alone and with every task; what its checkpoint
    stores."""
    row = counts.loc[(sharing, task)]
    every = row["trained by every task"]
    return (f"{task}: trains {row['trained by this task alone']:,} alone"
            + (f" + {every:,} shared" if every else "")
            + f",\n    stores {row['stored in its checkpoint']:,}")


def sharing_diagram(counts: pd.DataFrame) -> Figure:
    """One panel per way of sharing in `counts` (`sharing.parameter_table`: hard, lora, soft): the encoder(s)
    and heads, coloured by who trains them (every task, one task, nobody), and each task's counts beneath."""
    sharings = list(dict.fromkeys(counts.index.get_level_values("sharing")))
    unknown = sorted(set(sharings) - set(PANEL_TITLES))
    if unknown:
        raise ValueError(f"no drawing for sharing {unknown}: it draws {', '.join(PANEL_TITLES)}")
    tasks = list(dict.fromkeys(counts.index.get_level_values("task")))
    figure, axes_list = plt.subplots(1, len(sharings), figsize=(5.4 * len(sharings), 4.6), squeeze=False,
                                     constrained_layout=True)
    slot = 10 / len(tasks)
    places = [slot * (index + 0.5) for index in range(len(tasks))]
    for axes, sharing in zip(axes_list[0], sharings):
        axes.set(xlim=(-0.3, 10.3), ylim=(-0.6, 8.2), title=PANEL_TITLES[sharing])
        axes.axis("off")
        first = counts.loc[(sharing, tasks[0])]
        if sharing == "soft":
            for index, (task, x) in enumerate(zip(tasks, places)):
                labelled_box(axes, (x, 4.2), f"{task}'s copy\nof the encoder", (0.8 * slot, 2.6),
                             task_colour(index))
            axes.plot([places[0], places[-1]], [2.4, 2.4], "k--", linewidth=1)
            axes.text(5, 2.0, "copies pulled together by an L2 penalty", ha="center", fontsize=8,
                      style="italic")
        else:
            trained = sharing == "hard"
            words = (f"encoder, shared: trained by every task\n{first['trained by every task']:,} parameters"
                     if trained else f"pre-trained encoder, shared and frozen\n{first['frozen']:,} parameters"
                     "\n\n\n")  # room below for the adapters
            labelled_box(axes, (5, 4.2), words, (9.6, 2.6), SHARED_TRAINED if trained else FROZEN)
            if not trained:
                for index, (task, x) in enumerate(zip(tasks, places)):
                    labelled_box(axes, (x, 3.5), f"{task}'s adapter (B A)", (0.7 * slot, 0.7),
                                 task_colour(index), fontsize=8)
        for index, (task, x) in enumerate(zip(tasks, places)):
            axes.annotate("", (x, 6.9), (x, 5.6), arrowprops={"arrowstyle": "->", "color": "black"})
            labelled_box(axes, (x, 7.5), f"{task} head", (0.8 * slot, 0.9), task_colour(index))
        lines = [what_each_task_has(counts, sharing, task) for task in tasks]
        axes.text(0, 1.2, "\n".join(lines), ha="left", va="top", fontsize=8, family="monospace")
    legend = [Patch(facecolor=SHARED_TRAINED, edgecolor="black", label="trained by every task"),
              Patch(facecolor=FROZEN, edgecolor="black", label="frozen, used by every task"),
              *[Patch(facecolor=task_colour(index), edgecolor="black", label=f"owned by {task} alone")
                for index, task in enumerate(tasks)]]
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend), fontsize="small")
    return figure


def short_number(value: float) -> str:
    """87.2, 1225, 0.855: three digits, or the whole number when it is larger."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def sharing_scores_and_costs(table: pd.DataFrame, seed: int = 77, title: str = "") -> Figure:
    """Top: per task, each way of sharing's dev and test score (bars from 0, seed `seed`), the other seeds'
    test scores as dots, the single-task test score dashed. Below: each run's costs, bars from 0."""
    results = sharing_results(table, seed)
    tasks = list(dict.fromkeys(results.index.get_level_values("task")))
    costs = sharing_costs(results)
    figure = plt.figure(figsize=(max(4.6 * len(tasks), 13), 3.2 + 0.7 * len(costs)), constrained_layout=True)
    top, bottom = figure.subfigures(2, 1, height_ratios=[1, 1])
    for axes, task in zip(top.subplots(1, len(tasks), squeeze=False)[0], tasks):
        rows = results.loc[task]
        names = list(rows.index)[::-1]  # the first row on top
        positions = range(len(names))
        axes.barh([p + 0.2 for p in positions], rows.loc[names, "dev"], 0.4, color="lightgrey", label="dev")
        axes.barh([p - 0.2 for p in positions], rows.loc[names, "test"], 0.4, color="C0", label="test")
        for container, column in zip(axes.containers, ("dev", "test")):
            axes.bar_label(container, [f"{value:.1f}" for value in rows.loc[names, column]], padding=2,
                           fontsize="small")
        others = table[(table["task"] == task) & (table["seed"] != seed) & table["sharing"].isin(names)]
        if len(others):
            axes.plot(others["test"], [names.index(name) - 0.2 for name in others["sharing"]], "kD",
                      markersize=4, label="test, other seeds")
        if "single-task" in rows.index:
            axes.axvline(rows.loc["single-task", "test"], color="C0", linestyle="--", linewidth=1,
                         label="single-task test")
        highest = max(rows[["dev", "test"]].max().max(), others["test"].max() if len(others) else 0)
        axes.set_yticks(list(positions), names)
        axes.set(xlim=(0, highest + 12), xlabel="score x 100",
                 title=f"{task} ({official_metric_name(task)}), seed {seed}")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    for axes, cost, words in zip(bottom.subplots(1, len(COSTS), sharey=True), COSTS, COST_TITLES):
        values = costs[cost].iloc[::-1]
        axes.barh(values.index, values, color="C7")
        axes.bar_label(axes.containers[0], [short_number(value) for value in values], padding=2,
                       fontsize="small")
        axes.set(xlim=(0, 1.25 * values.max()), title=words)
    if title:
        figure.suptitle(title)
    return figure

"""Lesson 6's and 7's pictures: two tasks' gradients drawn in the plane they span, with what each way of
combining them makes of them, the scores of several training strategies side by side, and what adding a
task changed, seed by seed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure


def in_their_plane(first, second, others: dict) -> tuple[tuple, tuple, dict]:
    """2-D coordinates of `first`, `second` and each of `others` (vectors of their span) in an orthonormal
    basis of span{first, second}: the first axis along `first`, the second at right angles to it."""
    first, second = (torch.as_tensor(v, dtype=torch.float64).flatten() for v in (first, second))
    if first.norm() == 0 or second.norm() == 0:
        raise ValueError("a gradient is zero: there is no plane to draw it in")
    along = first / first.norm()
    across = second - (second @ along) * along
    across = across / across.norm() if across.norm() > 1e-9 * second.norm() else torch.zeros_like(across)

    def coordinates(vector):
        vector = torch.as_tensor(vector, dtype=torch.float64).flatten()
        return float(vector @ along), float(vector @ across)

    return coordinates(first), coordinates(second), {name: coordinates(v) for name, v in others.items()}


def same_point(first: tuple, second: tuple) -> bool:
    """Whether two arrows' ends coincide, up to float rounding (relative to their size)."""
    scale = max(abs(value) for value in (*first, *second)) or 1.0
    return all(abs(a - b) <= 1e-6 * scale for a, b in zip(first, second))


def combined_gradients(first, second, combined: dict, names=("task 1", "task 2"), title: str = "") -> Figure:
    """Two tasks' gradients and each method's combined step, drawn in the plane the two gradients span
    (every combination of them lies in it, so nothing is lost); the cosine of the two is in the title."""
    (x1, y1), (x2, y2), steps = in_their_plane(first, second, combined)
    cosine = (x1 * x2 + y1 * y2) / ((x1**2 + y1**2) ** 0.5 * (x2**2 + y2**2) ** 0.5)
    figure, axes = plt.subplots(figsize=(8.5, 5), constrained_layout=True)

    def arrow(end, colour, label, width, style="-"):
        axes.plot([0, end[0]], [0, end[1]], color=colour, linewidth=width, label=label, linestyle=style)
        axes.annotate("", end, (0, 0), arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": width,
                                                   "shrinkA": 0, "shrinkB": 0})

    axes.plot([x1, x2], [y1, y2], ":", color="grey", label="segment between them (MGDA picks on it)")
    for (end, name, colour) in (((x1, y1), names[0], "C0"), ((x2, y2), names[1], "C1")):
        arrow(end, colour, f"{name} gradient", 3)
    drawn = {}
    for index, (name, end) in enumerate(steps.items(), start=2):
        twin = next((other for other, place in drawn.items() if same_point(place, end)), None)
        if twin is None:
            arrow(end, f"C{index}", f"{name} step", 1.5)
        else:  # dashed on top of the arrow it coincides with, so that both stay visible
            arrow(end, f"C{index}", f"{name} step (the same as {twin})", 1.5, "--")
        drawn[name] = end
    points = [(0, 0), (x1, y1), (x2, y2), *steps.values()]
    for limits, values in ((axes.set_xlim, [p[0] for p in points]), (axes.set_ylim, [p[1] for p in points])):
        margin = 0.1 * (max(values) - min(values) or 1)
        limits(min(values) - margin, max(values) + margin)
    axes.set_aspect("equal")
    axes.axhline(0, color="black", linewidth=0.5)
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set(xlabel=f"along the {names[0]} gradient", ylabel=f"at right angles to it, towards {names[1]}",
             title=(title + "\n" if title else "") + f"cosine of the two gradients = {cosine:+.3f}")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    return figure


def strategy_scores(table: pd.DataFrame, tasks=("emotion", "sentiment"), title: str = "") -> Figure:
    """Horizontal bars from 0: each arm's (row's) test score per task. Arms are compared only with arms of
    the same learning rate: one panel per `learning_rate` (if the table has one), each with dashed lines at
    its first row's scores (its reference, e.g. single-task training)."""
    groups = (list(table.groupby("learning_rate", sort=False)) if "learning_rate" in table
              else [(None, table)])
    heights = [0.3 * len(rows) * len(tasks) + 1.0 for _, rows in groups]
    figure, axes_list = plt.subplots(len(groups), 1, figsize=(9, sum(heights) + 0.5), sharex=True,
                                     squeeze=False, constrained_layout=True, height_ratios=heights)
    highest = max(table[task].max() for task in tasks)
    for axes, (rate, rows) in zip(axes_list[:, 0], groups):
        frame = rows.set_index("arm")[list(tasks)].iloc[::-1]  # the first row on top
        frame.plot.barh(ax=axes, width=0.8, color=[f"C{index}" for index in range(len(tasks))], legend=False)
        for container in axes.containers:
            axes.bar_label(container, fmt="%.1f", padding=2, fontsize="small")
        for index, task in enumerate(tasks):
            axes.axvline(rows[task].iloc[0], color=f"C{index}", linestyle="--", linewidth=1)
        where = f"learning rate {rate:g}: " if rate is not None else ""
        axes.set(xlim=(0, highest + 8), ylabel="", title=f"{where}dashed = {rows['arm'].iloc[0]}")
    axes_list[-1, 0].set_xlabel("test score x 100")
    handles, labels = axes_list[0, 0].get_legend_handles_labels()
    axes_list[0, 0].legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        figure.suptitle(title)
    return figure


def paired_differences(differences: pd.DataFrame, title: str = "") -> Figure:
    """One panel per task of `experiments.with_minus_without`: each seed's test score with the third task
    minus without it (a dot), their mean (dashed), and 0 (solid): no difference; one scale for all."""
    tasks = list(dict.fromkeys(differences["task"])) or ["no seed in both arms"]
    figure, axes_list = plt.subplots(1, len(tasks), figsize=(4 * len(tasks) + 1, 3.5), sharey=True,
                                     squeeze=False, constrained_layout=True)
    for index, (axes, task) in enumerate(zip(axes_list[0], tasks)):
        own = differences[differences["task"] == task]
        axes.axhline(0, color="black", linewidth=1)
        axes.scatter(own["seed"].astype(str), own["difference"], color=f"C{index}", zorder=3)
        for seed, difference in zip(own["seed"].astype(str), own["difference"]):
            axes.annotate(f"{difference:+.1f}", (seed, difference), textcoords="offset points", xytext=(6, 0),
                          va="center", fontsize="small")
        if len(own):
            axes.axhline(own["difference"].mean(), color=f"C{index}", linestyle="--", linewidth=1,
                         label=f"mean {own['difference'].mean():+.1f}")
            axes.legend(loc="upper right", fontsize="small")
        axes.set(title=task, xlabel="seed")
    axes_list[0, 0].set_ylabel("test score x 100: with - without")
    if title:
        figure.suptitle(title)
    return figure

"""Lesson 4's optimiser, from the first steps of a real run (mtl_tutorial.optimisation): the learning-rate
schedule, gradient norms and the clip, AdamW's step, cross-entropy from logits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure


def learning_rate_schedule(record) -> Figure:
    """The learning rate of every step of the run, from its own scheduler: linear warm-up from 0, then
    linear decay to 0; the steps that `record_steps` took are marked."""
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    schedule, taken = record.schedule, record.steps
    axes.plot(schedule.index, schedule.values, label="learning rate at each step")
    axes.plot(taken["step"], taken["learning_rate"], "o", markersize=3, label="the steps recorded")
    axes.axvline(record.warmup_steps, color="grey", linestyle=":",
                 label=f"end of warm-up (step {record.warmup_steps})")
    axes.set(xlabel="step", ylabel="learning rate", ylim=(0, 1.1 * schedule.max()), xlim=(0, len(schedule)),
             title=f"Warm-up and linear decay over the run's {len(schedule)} steps")
    axes.legend(fontsize="small")
    return figure


def gradient_norms(record) -> Figure:
    """Each recorded step's gradient norm before clipping, and the clip: a step above the line is scaled
    down to it before the optimiser uses it."""
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    taken = record.steps
    colours = ["C3" if clipped else "C0" for clipped in taken["clipped"]]
    axes.bar(taken["step"], taken["gradient_norm"], color=colours)
    axes.axhline(record.max_grad_norm, color="black", linestyle="--",
                 label=f"max_grad_norm = {record.max_grad_norm:g} (red bars were clipped to it)")
    axes.set(xlabel="step", ylabel="gradient norm before clipping", ylim=(0, None),
             title=f"{int(taken['clipped'].sum())} of {len(taken)} steps clipped")
    axes.legend(fontsize="small")
    return figure


def adamw_steps(record) -> Figure:
    """AdamW's step against the gradient: the median distance a weight moved, beside the learning rate of
    the step, and the gradient norm (right axis), which varies far more than the step does."""
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    taken = record.steps
    axes.plot(taken["step"], taken["learning_rate"], "--", color="grey", label="learning rate")
    axes.plot(taken["step"], taken["update_size"], "o-", markersize=3, label="median move of a weight")
    axes.set(xlabel="step", ylabel="size", ylim=(0, 1.1 * max(taken["learning_rate"].max(),
                                                               taken["update_size"].max())),
             title="AdamW's step follows the learning rate, not the gradient's size")
    right = axes.twinx()
    right.plot(taken["step"], taken["gradient_norm"], ":", color="C3", label="gradient norm (right axis)")
    right.set(ylabel="gradient norm", ylim=(0, None))
    lines = axes.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    axes.legend(lines, [line.get_label() for line in lines], fontsize="small", loc="upper left")
    return figure


def cross_entropy_probabilities(table: pd.DataFrame, rows: int = 4) -> Figure:
    """For a few tweets of one batch: the softmax probability of every label, the true label's bar dark,
    and its loss -log p (a table from `optimisation.cross_entropy_table`)."""
    shown = table.head(rows)
    names = [column.removeprefix("logit ") for column in table.columns if column.startswith("logit ")]
    logits = torch.tensor(shown[[f"logit {name}" for name in names]].to_numpy())
    probabilities = logits.softmax(-1).numpy()
    figure, axes_list = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3), sharey=True,
                                     squeeze=False, constrained_layout=True)
    for axes, (row, tweet), values in zip(axes_list[0], shown.iterrows(), probabilities):
        colours = ["C0" if name == tweet["label"] else "lightgrey" for name in names]
        axes.bar(names, values, color=colours)
        axes.axhline(1 / len(names), color="black", linestyle=":", linewidth=0.8)
        axes.set(title=f"tweet {row + 1}: label {tweet['label']}\nloss -log p = {tweet['loss = -log p']:.3f}",
                 ylim=(0, 1))
        axes.tick_params(axis="x", rotation=45)
    axes_list[0][0].set_ylabel("softmax probability (dotted: uniform)")
    return figure

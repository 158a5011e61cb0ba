"""Pictures of lessons 0 to 6 that come from data, a model or a run's history: the architecture, dev curves,
label distributions, tweet lengths, pad-token shares, similarity maps, sampling probabilities, schedules and
temperatures, the task mix, task weights and gradient cosines per epoch, confusion matrices, head
probabilities, multi- against single-task."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..metrics import official_metric_name
from ..sampling import task_probabilities, task_schedule


def labelled_box(axes, centre, text: str, size, colour, fontsize: float = 9, **style) -> None:
    """A rounded box of `size` (width, height) around `centre`, its `text` in the middle; `style` goes to the
    patch (a hatch, a dashed edge)."""
    (x, y), (width, height) = centre, size
    axes.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, facecolor=colour,
                                  edgecolor="black", boxstyle="round,pad=0.05", **style))
    axes.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def architecture(tasks=("emotion", "sentiment"), labels: dict[str, list[str]] | None = None) -> Figure:
    """Hard parameter sharing as a picture: each task's tweets, the sampler that picks one task per step,
    the tokenizer, ONE shared encoder, pooling to one vector per tweet, then one head per task."""
    tasks, labels = list(tasks), labels or {}
    if not tasks:
        raise ValueError("architecture needs at least one task name")
    height = max(len(tasks), 2)
    figure, axes = plt.subplots(figsize=(12, 1.1 * height + 1.4), constrained_layout=True)
    axes.set(xlim=(0, 12.2), ylim=(-1.0, height))
    axes.axis("off")
    middle = (height - 1) / 2
    rows = [middle + (len(tasks) - 1) / 2 - index for index in range(len(tasks))]  # first task on top

    def box(x, y, text, width, colour, box_height=0.7):
        labelled_box(axes, (x, y), text, (width, box_height), colour)

    def arrow(start, end):
        axes.annotate("", end, start, arrowprops={"arrowstyle": "->", "color": "black"})

    box(6.6, middle, "shared encoder\n(every Transformer layer,\nupdated by every task)", 2.0, "#9ecae1",
        0.8 * height)
    for x, text, width in ((2.9, "sampler\npicks one task\nper step", 1.5), (4.7, "tokenizer", 1.3),
                           (8.6, "pooling\none vector\nper tweet", 1.3)):
        box(x, middle, text, width, "#fdd0a2" if x < 3 else "#e5e5e5")
    for start, end in ((3.65, 4.05), (5.35, 5.6), (7.6, 7.95)):
        arrow((start, middle), (end, middle))
    for index, (task, y) in enumerate(zip(tasks, rows)):
        box(0.9, y, f"{task}\ntweets", 1.5, "white")
        arrow((1.65, y), (2.15, middle))
        names = textwrap.fill(", ".join(labels.get(task, [])), 26)
        box(10.9, y, f"{task} head" + (f"\n{names}" if names else ""), 2.3, to_rgba(f"C{index}", 0.35), 0.75)
        arrow((9.25, middle), (9.75, y))
    caption = ("At each step the sampler draws one task; that task's batch goes through the tokenizer, "
               "the shared encoder and pooling,\nthen through that task's head only "
               "(its name picks the head). Every task's loss updates the encoder.")
    axes.text(6.1, -0.75, caption, ha="center", va="center", fontsize=9, style="italic")
    axes.set_title("Hard parameter sharing: one encoder for every task, one head per task")
    return figure


def dev_curves(history: pd.DataFrame, title: str = "") -> Figure:
    """Per-epoch curves of every task: official dev score (best epoch starred), train and dev loss."""
    figure, (score_axes, loss_axes) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for index, (task, rows) in enumerate(history.groupby("task", sort=False)):
        colour = f"C{index}"
        score_axes.plot(rows["epoch"], rows["dev_official"], "o-", color=colour,
                        label=f"{task} ({official_metric_name(task)})")
        best = rows.loc[rows["dev_official"].idxmax()]
        score_axes.plot(best["epoch"], best["dev_official"], "*", color=colour, markersize=16)
        loss_axes.plot(rows["epoch"], rows["train_loss"], "o--", color=colour, label=f"{task} train")
        loss_axes.plot(rows["epoch"], rows["dev_loss"], "o-", color=colour, label=f"{task} dev")
    score_axes.set(xlabel="epoch", ylabel="official dev score", title="Dev score per task (★ = best epoch)")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="Training and dev loss")
    for axes in (score_axes, loss_axes):
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def label_distribution(tasks: dict, split: str = "train") -> Figure:
    """One bar chart per task: how many `split` examples carry each label."""
    figure, axes_list = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.5), squeeze=False,
                                     constrained_layout=True)
    for axes, task in zip(axes_list[0], tasks.values()):
        counts = task.splits[split]["label"].value_counts().reindex(range(task.num_labels), fill_value=0)
        axes.bar(task.label_names, counts.values, color="C0")
        axes.set(title=f"{task.name}: {split} labels (n={counts.sum()})", ylabel="tweets")
        axes.tick_params(axis="x", rotation=45)
    return figure


def token_lengths(lengths: dict[str, list[int]], max_length: int = 64) -> Figure:
    """Histogram of tweet lengths in tokens, per task, with the truncation length marked.

    Each task's bars add up to 1 (shares, not counts), so a small task stays visible beside a big one.
    """
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    for task, values in lengths.items():
        share = [1 / len(values)] * len(values)
        axes.hist(values, bins=range(0, max_length + 2, 2), weights=share, alpha=0.5,
                  label=f"{task} (n={len(values):,})")
    axes.axvline(max_length, color="black", linestyle="--", label=f"max_length = {max_length}")
    axes.set(xlabel="tokens per tweet (after truncation)", ylabel="share of the task's tweets (sums to 1)",
             title="Tweet lengths")
    axes.legend()
    return figure


def sampling_probabilities(sizes: dict[str, int], samplers=("proportional", "temperature", "uniform"),
                           temperature: float = 2.0) -> Figure:
    """Bars of each task's sampling probability under each sampler."""
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    width = 0.8 / len(sizes)
    for index, task in enumerate(sizes):
        values = [task_probabilities(sizes, sampler, temperature)[task] for sampler in samplers]
        positions = [x + index * width for x in range(len(samplers))]
        axes.bar(positions, values, width, label=f"{task} (n={sizes[task]})")
    axes.set_xticks([x + width * (len(sizes) - 1) / 2 for x in range(len(samplers))], samplers)
    axes.set(ylabel="probability of the task at a step", ylim=(0, 1), title="Task sampling probabilities")
    axes.legend()
    return figure


def annealed_probabilities(sizes: dict[str, int], num_epochs: int = 5) -> Figure:
    """How the annealed sampler moves from proportional (epoch 1) towards uniform (last epoch)."""
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    epochs = list(range(1, num_epochs + 1))
    for task in sizes:
        probabilities = [task_probabilities(sizes, "annealed", epoch=e, num_epochs=num_epochs)[task]
                         for e in epochs]
        axes.plot(epochs, probabilities, "o-", label=task)
    axes.set(xlabel="epoch", ylabel="probability", ylim=(0, 1), title="Annealed sampling over epochs")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend()
    return figure


LINE_STYLES = ("-", "--", ":", "-.")


def schedule_counts(sizes: dict[str, int], steps: int,
                    samplers=("proportional", "temperature", "uniform", "round_robin"),
                    seed: int = 77, temperature: float = 2.0) -> Figure:
    """The realised schedule: cumulative steps given to each task during one epoch, per sampler."""
    figure, axes_list = plt.subplots(1, len(samplers), figsize=(3.6 * len(samplers), 3.2), sharey=True,
                                     squeeze=False, constrained_layout=True)
    for axes, sampler in zip(axes_list[0], samplers):
        schedule = pd.Series(task_schedule(sizes, steps, sampler, seed, temperature))
        for index, task in enumerate(sizes):  # thick solid under thin dashed: equal counts show both lines
            axes.plot(range(1, steps + 1), (schedule == task).cumsum().values, label=task,
                      linewidth=3.5 - 1.5 * min(index, 1), linestyle=LINE_STYLES[index % len(LINE_STYLES)])
        axes.set(title=sampler, xlabel="step", ylim=(0, steps))
    axes_list[0][0].set_ylabel("steps given to the task so far")
    axes_list[0][0].legend()
    return figure


def confusion_matrix(table: pd.DataFrame, title: str = "") -> Figure:
    """Draw a confusion table (rows = true label, columns = prediction) with its counts."""
    size = (1.1 * len(table) + 2.5, 1.0 * len(table) + 1.5)
    figure, axes = plt.subplots(figsize=size, constrained_layout=True)
    image = axes.imshow(table.values, cmap="Blues")
    axes.set_xticks(range(len(table.columns)), table.columns, rotation=45)
    axes.set_yticks(range(len(table.index)), table.index)
    axes.set(xlabel="predicted label", ylabel="true label", title=title)
    for row in range(len(table.index)):
        for column in range(len(table.columns)):
            value = table.values[row, column]
            colour = "white" if value > table.values.max() / 2 else "black"
            axes.text(column, row, value, ha="center", va="center", color=colour)
    figure.colorbar(image, ax=axes)
    return figure


def pad_fractions(waste: dict[str, dict[str, float]]) -> Figure:
    """Horizontal bars: the share of pad tokens per task and way of padding (see `batching.padding_waste`)."""
    table = pd.DataFrame(waste)  # rows: ways of padding, columns: tasks
    figure, axes = plt.subplots(figsize=(8, 1.0 + 0.9 * len(table)), constrained_layout=True)
    table.iloc[::-1].plot.barh(ax=axes, width=0.8)
    for container in axes.containers:
        axes.bar_label(container, fmt="{:.0%}", padding=3, fontsize="small")
    axes.set(xlabel="share of the tokens in a batch that are padding", xlim=(0, 1),
             title="Compute spent on pad tokens")
    axes.xaxis.set_major_formatter("{x:.0%}")
    axes.legend(title="task", loc="lower right")
    return figure


def similarity_maps(tables: dict[str, pd.DataFrame]) -> Figure:
    """One heat map per sequence representation: cosine similarity between the same few tweets."""
    figure, axes_list = plt.subplots(1, len(tables), figsize=(3.6 * len(tables) + 2.5, 4.2), squeeze=False,
                                     constrained_layout=True)
    for axes, (name, table) in zip(axes_list[0], tables.items()):
        image = axes.imshow(table.values, cmap="viridis", vmin=-1, vmax=1)
        short = [f"{i + 1}" for i in range(len(table))]
        axes.set_xticks(range(len(table)), short)
        axes.set_yticks(range(len(table)), short)
        axes.set(title=f"pooling = {name!r}", xlabel="tweet")
        for row in range(len(table)):
            for column in range(len(table)):
                value = table.values[row, column]
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize="small",
                          color="black" if value > 0.3 else "white")
    axes_list[0][0].set_ylabel("tweet")
    figure.colorbar(image, ax=axes_list[0].tolist(), label="cosine similarity")
    return figure


def temperature_effect(sizes: dict[str, int], temperature: float = 2.0, highest: float = 20.0) -> Figure:
    """Each task's sampling probability as the temperature T grows, with the chosen T marked.

    T = 1 is proportional sampling; as T grows, p_i ∝ n_i^(1/T) flattens towards uniform (1/K).
    """
    figure, axes = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    grid = [1 + (highest - 1) * i / 200 for i in range(201)]
    for index, task in enumerate(sizes):
        curve = [task_probabilities(sizes, "temperature", t)[task] for t in grid]
        chosen = task_probabilities(sizes, "temperature", temperature)[task]
        axes.plot(grid, curve, color=f"C{index}", label=f"{task} (n={sizes[task]})")
        axes.plot(temperature, chosen, "o", color=f"C{index}", markersize=9)
        axes.annotate(f"{chosen:.2f}", (temperature, chosen), textcoords="offset points", xytext=(8, 4))
    axes.axhline(1 / len(sizes), color="grey", linestyle=":", label="uniform (T → ∞)")
    axes.axvline(temperature, color="black", linestyle="--", linewidth=1)
    axes.set(xlabel="temperature T", ylabel="probability of the task at a step", ylim=(0, 1),
             xlim=(1, highest), title=f"Temperature sampling, T = {temperature:g}")
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1))
    return figure


def head_probabilities(answer: pd.DataFrame, text: str = "") -> Figure:
    """Every head's label probabilities for one tweet (`evaluate.label_tweet`), its choice in a darker bar."""
    tasks = list(dict.fromkeys(answer["task"]))
    figure, axes_list = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 2.8), squeeze=False,
                                     constrained_layout=True)
    for axes, task in zip(axes_list[0], tasks):
        rows = answer[answer["task"] == task]
        colours = ["C0" if chosen else "lightsteelblue" for chosen in rows["chosen"]]
        axes.barh(rows["label"], rows["probability"], color=colours)
        axes.invert_yaxis()
        axes.set(xlim=(0, 1), xlabel="probability", title=f"{task} head")
    if text:
        figure.suptitle(f"“{text}”" if len(text) <= 80 else f"“{text[:77]}...”")
    return figure


def multitask_vs_single_task(table: pd.DataFrame) -> Figure:
    """Bars of each task's test score: majority baseline, single-task and multi-task.

    `table` is what `lessons.multitask_vs_single_task` gives.
    """
    columns = ["majority baseline", "single-task", "multi-task"]
    figure, axes = plt.subplots(figsize=(2.6 * len(table) + 3, 3.8), constrained_layout=True)
    table[columns].plot.bar(ax=axes, color=["lightgrey", "C1", "C0"], rot=0, width=0.8)
    for container in axes.containers:
        axes.bar_label(container, fmt="%.3f", padding=2, fontsize="small")
    tick_labels = [f"{task}\n({metric})" for task, metric in zip(table.index, table["metric"])]
    axes.set_xticks(range(len(table)), tick_labels)
    axes.set(xlabel="", ylabel="official test score", ylim=(0, 1),
             title="Multi-task vs single-task, each from its best dev epoch")
    axes.legend(loc="upper right")
    return figure


def per_task_by_epoch(history: pd.DataFrame, column: str, ylabel: str, title: str, ylim=None) -> Figure:
    """One line per task: `column` of a run's history against the epoch."""
    if column not in history:
        raise KeyError(f"this history has no {column!r} column; it has {list(history.columns)}")
    figure, axes = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for task, rows in history.groupby("task", sort=False):
        axes.plot(rows["epoch"], rows[column], "o-", label=task)
    axes.set(xlabel="epoch", ylabel=ylabel, ylim=ylim, title=title)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def sampling_by_epoch(history: pd.DataFrame) -> Figure:
    """Each task's sampling probability in each epoch of a run (it moves under the adaptive and annealed
    samplers)."""
    return per_task_by_epoch(history, "sampling_probability", "probability of the task at a step",
                             "Task mix per epoch", (0, 1))


def task_weights(history: pd.DataFrame) -> Figure:
    """Each task's mean weight per epoch in an all-tasks run: 1 (equal), exp(-s) (uncertainty) or the
    aggregator's (PCGrad, MGDA, UPGrad)."""
    return per_task_by_epoch(history, "weight", "mean weight of the task in a step", "Task weights per epoch")


def gradient_conflict(history: pd.DataFrame) -> Figure:
    """Cosine between the tasks' gradients on the shared encoder, per epoch: above 0 they agree.

    The cosine is symmetric, so two tasks give one line; with three or more, each task's line is its mean
    cosine with the others. A run of one task (or one that did not measure it) gets a note instead.
    """
    figure, axes = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    tasks = list(dict.fromkeys(history["task"]))
    measured = "gradient_cosine" in history and history["gradient_cosine"].notna().any()
    if len(tasks) < 2 or not measured:
        why = (f"this run trained one task ({', '.join(tasks)})" if len(tasks) < 2
               else "this run did not measure it (gradient_probe_batches = 0)")
        axes.text(0.5, 0.5, f"The gradient cosine needs two tasks:\n{why}.", ha="center", va="center",
                  transform=axes.transAxes)
        axes.axis("off")
        return figure
    if len(tasks) == 2:  # both tasks' rows hold the same cosine
        lines = {f"{tasks[0]} vs {tasks[1]}": history[history["task"] == tasks[0]]}
    else:
        lines = {f"{task} vs the others (mean)": rows for task, rows in history.groupby("task", sort=False)}
    for label, rows in lines.items():
        axes.plot(rows["epoch"], rows["gradient_cosine"], "o-", label=label)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set(xlabel="epoch", ylabel="cosine of encoder gradients", ylim=(-1, 1),
             title="Do the tasks pull the encoder the same way?")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend()
    return figure

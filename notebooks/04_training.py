# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: jupyter,colab,tags,points,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 4 — Training: one loop for every task
#
# `fit` is the whole training loop, short enough to read top to bottom (`mtl_tutorial/train.py`). Per epoch:
#
# ```python
# schedule = task_schedule(sizes, steps_per_epoch, sampler, ...)   # lesson 3
# for task in schedule:
#     batch = next(streams[task])                    # that task's next batch, reshuffled every pass
#     logits = model(batch["input_ids"], batch["attention_mask"], task)   # shared encoder, task's head
#     loss = cross_entropy(logits, batch["labels"])
#     accelerator.backward(loss)
#     accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)      # clip BEFORE the step
#     optimizer.step(); scheduler.step(); optimizer.zero_grad()
#     loss_sum[task] += loss * batch_size             # per-task training loss, really accumulated
# # then, for every task: dev scores, history row, and a checkpoint if the task's dev score improved
# ```
#
# The optimiser is AdamW with a linear schedule and 10% warm-up, as in the original tutorial.
# [Accelerate](https://huggingface.co/docs/accelerate) puts the model on the GPU when there is one and
# runs the same loop on several GPUs under `accelerate launch`. A single-task baseline is the same
# loop with one task.
#
# **You will learn**
#
# * to write the training loop by hand and check that it takes exactly the steps `fit` takes;
# * what the loop's lines do, each drawn from this lesson's own run: logits and cross-entropy, AdamW,
#   warm-up and linear decay of the learning rate, and gradient clipping;
# * to train a run from a panel, read its history and find each task's best epoch.
#
# **Assumes** lessons 1-3 (batches, the model, task sampling) and what a gradient is. **Takes** on a 2-core
# CPU about half a minute when lesson 0's run is there to read back (31 s measured at the CPU lesson scale,
# benchmarks/LESSONS.md, before the section on the optimiser, whose 30 training steps print their time),
# or about 9 minutes when it trains that run itself. Not yet measured on a GPU.

# %%
# Colab only: install the package (a wheel beside this notebook, else its repository) and switch on widgets.
import sys

PACKAGE_URL = "git+https://github.com/OWNER/mtl-tutorial"  # the repository this notebook comes from
if "google.colab" in sys.modules:
    import glob, os, subprocess

    class Stop(Exception):
        _render_traceback_ = lambda self: [str(self)]  # shown as one line; "Run all" stops here

    wheels = [wheel for folder in ("", "/content/drive/MyDrive/", "/content/drive/MyDrive/*/")
              for wheel in glob.glob(folder + "mtl_tutorial-*.whl")]  # here, or in your mounted Drive
    url = "file://" + os.path.abspath(max(wheels, key=os.path.getmtime)) if wheels else PACKAGE_URL
    fix = ("put the course's mtl_tutorial-*.whl beside this notebook (Files panel) or in your mounted Drive, "
           "or set PACKAGE_URL to git+https://github.com/<owner>/mtl-tutorial; then run this cell again")
    if "OWNER" in url:
        raise Stop(f"No mtl_tutorial wheel beside this notebook and no repository set: {fix}.")
    print(f"Installing mtl-tutorial[notebooks] from {url} ...")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", f"mtl-tutorial[notebooks] @ {url}"],
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stderr, file=sys.stderr)
        raise Stop(f"pip could not install mtl-tutorial from {url} (its error is above): {fix}.")
    from google.colab import output
    output.enable_custom_widget_manager()

# %% [markdown]
# **Settings** (one cell decides the scale). The panel below starts from them; what it does not show
# (learning rate, batch size, dev and test caps) comes from here.

# %%
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# **Where the runs live.** Runs are written to `runs/` beside this notebook (or to the folder named by the
# environment variable `MTL_TUTORIAL_RUNS`), and the next lesson reads them back from there. A Colab
# runtime forgets its files when it stops, so on Colab the next cell keeps the runs on your Google Drive
# instead (Colab asks once for permission); anywhere else it changes nothing.

# %%
runs = mtl.runs_folder()
if mtl.on_colab():
    from google.colab import drive

    drive.mount("/content/drive")
    runs = mtl.runs_folder("/content/drive/MyDrive/mtl-tutorial/runs")
print("runs are kept in the folder", runs)

# %% [markdown]
# ## The loop by hand, on a few batches
#
# Before handing the work to `fit`, we write the loop ourselves on a few batches: 64 training tweets per
# task, one epoch. First what the loop needs: the tasks, the model, each task's stream of batches, the
# number of steps, the optimiser and its schedule. We start from the same seed as `fit`, so that we get the
# same heads and the same batches.

# %%
import dataclasses

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from transformers import get_linear_schedule_with_warmup

few = dataclasses.replace(config, epochs=1, max_train_examples=64, max_eval_examples=64, mixed_precision="no",
                          gradient_probe_batches=0)
device = "cuda" if torch.cuda.is_available() else "cpu"
set_seed(few.seed)  # fit starts with the same call
tasks = mtl.runs.load_run_tasks(few)
labels = {name: task.label_names for name, task in tasks.items()}
model, tokenizer = mtl.build_model(labels, few.model, few.pooling)
model.to(device)
train = {name: mtl.encode_task(tokenizer, task, few.max_length)["train"] for name, task in tasks.items()}
streams = {name: mtl.BatchStream(split, few.batch_size, few.seed) for name, split in train.items()}
sizes = {name: len(split) for name, split in train.items()}
steps = sum(mtl.batching.batches_per_pass(size, few.batch_size) for size in sizes.values())
optimizer = torch.optim.AdamW(model.parameters(), lr=few.learning_rate, weight_decay=few.weight_decay,
                              fused=True)
scheduler = get_linear_schedule_with_warmup(optimizer, int(few.warmup_ratio * steps), steps)
print(f"{steps} steps: {sizes}")

# %% [markdown]
# And the loop itself: the sampler picks a task, that task's next batch goes through the shared encoder and
# the task's own head, then loss, backward, clip, step, schedule, and the gradients are cleared.

# %%
torch.manual_seed(few.seed + 1)  # fit seeds the dropout of epoch e with seed + e
model.train()
log = []
schedule = mtl.task_schedule(sizes, steps, few.sampler, few.seed, few.temperature, epoch=1, num_epochs=1)
for task in schedule:
    batch = {key: value.to(device) for key, value in next(streams[task]).items()}
    logits = model(batch["input_ids"], batch["attention_mask"], task)  # shared encoder, the task's head
    loss = F.cross_entropy(logits, batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), few.max_grad_norm)  # clip BEFORE the step
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    log.append({"task": task, "loss": loss.item(), "size": len(batch["labels"])})
    print(f"{task:>9}: loss {loss.item():.4f}")

# %% [markdown]
# Now `fit` with the same settings (read back from `runs` if this lesson trained it before). Its history
# records each task's mean training loss over the epoch; our loop's losses, averaged the same way, should be
# the same numbers: the same batches went through the same model in the same order.

# %%
by_fit = mtl.open_or_train(few, runs / "by-hand-vs-fit")
mtl.exercises.hand_loop_vs_fit(log, by_fit.history).round(6)

# %% [markdown]
# They agree (on a GPU, to within its rounding). From here on `fit` runs the loop: it adds what a real run
# needs around it (dev scores after every epoch, a checkpoint per task, resuming, several processes).

# %% [markdown]
# ## What each line of the step does
#
# Four lines of that loop carry most of the mathematics: `cross_entropy`, `clip_grad_norm_`,
# `optimizer.step()` and `scheduler.step()`. To see each at work, `mtl.optimisation.record_steps` takes the
# first 30 steps (or the whole first epoch, if it is shorter) of this lesson's run (the settings at the
# top) exactly as `fit` takes them, and records every step: its task, its loss, the learning rate the
# scheduler gave it, the gradient's norm *before* clipping, and how far AdamW moved a typical weight (the
# median over the weights that had a gradient).

# %%
import time

started = time.perf_counter()
record = mtl.optimisation.record_steps(config, steps=30)
print(f"{len(record.steps)} steps of this lesson's run in {time.perf_counter() - started:.0f} s")
record.steps.round(6)

# %% [markdown]
# ### Logits and cross-entropy
#
# A head ends in a linear layer with one output per label: the **logits**, any real numbers. The softmax
# turns them into probabilities, $p_k = e^{z_k} / \sum_j e^{z_j}$ (positive, summing to 1; the largest
# logit gets the largest probability). **Cross-entropy** is the loss of one tweet, $-\log p_y$, where $y$ is
# its true label: 0 when the model gives the true label probability 1, large when it gives it little. The
# loss of a batch is the mean over its tweets (`F.cross_entropy(logits, labels)` does softmax, log and mean
# in one numerically safe call). The first recorded step's batch, worked out by hand:

# %%
first = record.first_batch
task = first.attrs["task"]
labels_of_task = len([column for column in first.columns if column.startswith("logit ")])
print(f"step 1 trained {task}: mean of -log p over its {len(first)} tweets = "
      f"{first['loss = -log p'].mean():.4f}; the step's F.cross_entropy = "
      f"{record.steps['loss'].iloc[0]:.4f}; "
      f"a head that gives all {labels_of_task} labels the same probability has loss log {labels_of_task} = "
      f"{mtl.optimisation.uniform_guess_loss(labels_of_task):.4f}")
mtl.plots.cross_entropy_probabilities(first);
first.head().round(3)

# %% [markdown]
# The new heads start with weights near 0 (drawn from N(0, 0.02)), so their logits are all near 0 and every
# label gets about the same probability: the first losses sit at $\log K$ for $K$ labels, the dotted line
# in the bars. Training pushes the true label's logit up and the others down.
#
# ### AdamW
#
# Plain gradient descent moves every weight by the learning rate times its gradient, so weights with tiny
# gradients hardly move and a large gradient makes a large jump. **Adam** (Kingma & Ba, 2015) keeps, for
# every weight, a running mean of its gradient $m$ and of its squared gradient $v$ (with factors 0.9 and
# 0.999), and moves the weight by $\text{lr} \cdot \hat m / (\sqrt{\hat v} + \epsilon)$, where the hats undo
# the bias of starting both means at 0. The ratio is ±1 at Adam's first step and stays near ±1 while a
# weight's gradients keep their sign; when they change sign from batch to batch it shrinks. Either way a
# weight moves by at most about the learning rate, *whatever the size of its gradient*: the step follows
# the learning rate, not the gradient. **AdamW** (Loshchilov &
# Hutter, 2019) adds weight decay apart from that ratio, shrinking every weight a little at each step
# (`weight_decay`; these lessons' settings keep it at 0). The recorded steps show it:

# %%
moved = record.steps.query("learning_rate > 0")
ratio = moved["update_size"] / moved["learning_rate"]
norms = record.steps["gradient_norm"]
print(f"gradient norm from {norms.min():.2f} to {norms.max():.2f}; a weight's median move from "
      f"{ratio.min():.2f} to {ratio.max():.2f} times the step's learning rate")
mtl.plots.adamw_steps(record);

# %% [markdown]
# ### Warm-up and linear decay
#
# At the start the heads are random and Adam's running means know nothing yet, so the first steps are the
# least reliable; a full-size step then could wreck the pre-trained encoder. **Warm-up** raises the learning
# rate from 0 to its peak over the first 10% of the steps (`warmup_ratio`), and **linear decay** then
# lowers it by the same amount at every step, to nearly 0 at the last step (0 itself would come one step
# later), so that the run ends with small, careful steps. The schedule below is
# read from the scheduler the run makes (`get_linear_schedule_with_warmup`), every step of it:

# %%
print(f"{len(record.schedule)} steps in the run ({config.epochs} epochs): the learning rate rises from 0 to "
      f"{record.schedule.max():g} over the first {record.warmup_steps} steps, then falls to "
      f"{record.schedule.iloc[-1]:.2g} at the last; the first step has learning rate "
      f"{record.steps['learning_rate'].iloc[0]:g}"
      + (", so it changes no weight" if record.steps["update_size"].iloc[0] == 0 else ""))
mtl.plots.learning_rate_schedule(record);

# %% [markdown]
# ### Gradient clipping, and where it goes
#
# Now and then one batch gives a gradient far larger than the others (an odd batch, a sharp spot of the
# loss). `clip_grad_norm_` measures the norm of the whole gradient, all weights together, and when it is
# above `max_grad_norm` scales the gradient down to that norm; the direction stays the same. It must come
# **between `backward()` and `optimizer.step()`**: after `backward()`, because only then is there a gradient
# to measure; before the step, because the step is what uses it (the original tutorial clipped after
# the step, which changed nothing). The recorded norms, before clipping, and the clip:

# %%
clipped = record.steps["clipped"]
print(f"{clipped.sum()} of {len(clipped)} steps had a gradient norm above max_grad_norm = "
      f"{record.max_grad_norm:g} and were scaled down to it; the largest norm was {norms.max():.2f}")
mtl.plots.gradient_norms(record);

# %% [markdown]
# With Adam, clipping matters less than with plain gradient descent, since Adam divides by the gradient's
# running size anyway; what it still does is keep one outlying batch from dominating the running means.
#
# **Quiz on the optimiser.** Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
emotion_labels = 4
peak_step = record.warmup_steps + 1
mtl.widgets.quiz([
    Question("A fresh emotion head gives each of its 4 labels the same probability. What is its "
             "cross-entropy?",
             ["0", "about 0.69 (log 2)", "about 1.39 (log 4)", "4"], "about 1.39 (log 4)",
             f"-log(1/4) = log 4 = {mtl.optimisation.uniform_guess_loss(emotion_labels):.3f}; the first "
             "emotion steps above are close to it."),
    Question("Logits of [2, 0, 0] for the labels negative, neutral, positive: which is true?",
             ["they are probabilities", "the softmax gives negative the highest probability",
              "the loss is 0 if the label is negative"],
             "the softmax gives negative the highest probability",
             "e^2 / (e^2 + 1 + 1) = 0.79: the highest, but not 1, so the loss is -log 0.79 = 0.24, not 0."),
    Question("With Adam, a weight whose gradient is 100 times smaller than another's moves...",
             ["100 times less", "about as far: the step follows the learning rate", "not at all"],
             "about as far: the step follows the learning rate",
             f"Adam divides by the running size of each weight's gradient: above, the gradient norm ranged "
             f"from {norms.min():.2f} to {norms.max():.2f} while the median move stayed between "
             f"{ratio.min():.2f} and {ratio.max():.2f} times the step's learning rate."),
    Question("At which step does this run's learning rate reach its peak?",
             ["step 1", f"step {peak_step}", f"step {len(record.schedule)}"], f"step {peak_step}",
             f"Warm-up takes the first {record.warmup_steps} steps (10% of {len(record.schedule)}, rounded "
             "down); the schedule then decays linearly toward 0."),
    Question("Where must clip_grad_norm_ go?",
             ["before loss.backward()", "between loss.backward() and optimizer.step()",
              "after optimizer.step()"],
             "between loss.backward() and optimizer.step()",
             "Before backward there is no gradient to measure; after the step the update has already "
             "used it (the original tutorial clipped there, to no effect)."),
])

# %% [markdown]
# ## Choose and train
#
# Pick one or more TweetEval tasks (Ctrl- or Cmd-click for several), the encoder, the task sampler, the number
# of epochs and how many training tweets per task, then press **Train**. After every epoch the dev curves of
# every task are redrawn. On a CPU keep to the packaged MiniLM and at most the lesson's 12.5% share of every
# task (the run's history below says how many tweets a second it trained); `roberta-base` needs a GPU (and the
# internet, to download it).
#
# Every run is written to `multitask` in the runs folder, replacing the one before once it has finished
# (a failed or interrupted run leaves the previous one whole; the status line says why): **lesson 5 reads
# that folder.**

# %%

panel = mtl.widgets.training_panel(config, runs / "multitask")
panel

# %% [markdown]
# The next cell does what the Train button does, so that this notebook also trains when it is run top to
# bottom without anyone pressing a button (the curves appear in the panel above). If the runs folder
# already holds this very run, finished (lesson 0 trains the same settings), it reads it back instead of
# training it twice; the Train button always trains.

# %%
run = panel.open_or_train()

# %% [markdown]
# ### The curves in TensorBoard (optional)
#
# Tick **also log the curves for TensorBoard** in the panel (in Python `report_to="tensorboard"` in the
# `TrainConfig`; on the command line `--report-to tensorboard`) and the run also writes its curves into its
# `logs/` folder through Accelerate's trackers: each task's training loss and the learning rate every
# `log_every` steps (50), and after every epoch each task's dev scores, the task mix and the gradient
# cosines. It changes no score. TensorBoard draws every run of the runs folder side by side: in a terminal
# `tensorboard --logdir runs`, or in Jupyter and Colab a cell with `%load_ext tensorboard` and then
# `%tensorboard --logdir runs` (this notebook starts no server).

# %%
logs = run.folder / "logs"
print(f"this run's TensorBoard logs: {logs if logs.exists() else 'none (tick the box, then Train)'}")
print(f"to draw them: tensorboard --logdir {runs}")

# %% [markdown]
# ## What came back
#
# `fit` returns the run's folder, its history and its results. The history has one row per epoch and
# task: the training loss of the task's own batches, the dev loss and scores, whether this epoch is the
# task's best so far, and the epoch's speed and share of pad tokens.

# %%
run.history.round(4)

# %% [markdown]
# The `examples_per_second` column is the training speed of each epoch: training tweets a second, without
# the dev evaluation. On this machine:

# %%
speed = run.history.groupby("epoch")["examples_per_second"].first()
per_epoch = ", ".join(f"{value:.0f}" for value in speed)
print(f"{speed.mean():.0f} training tweets a second on {device} (per epoch: {per_epoch})")

# %%

mtl.plots.dev_curves(run.history);

# %% [markdown]
# The star marks each task's best dev epoch. The tasks need not peak together, so the loop keeps one
# checkpoint **per task**, `best/<task>/`, and tests each task with its own. The test scores, beside
# the score of always answering the commonest training label:

# %%
mtl.results_table(run.results).round(4)

# %%
sorted(path.name for path in run.folder.iterdir())

# %% [markdown]
# `history.csv` is written after every epoch, and `last/` holds everything needed to continue a stopped
# run (`fit(..., resume=True)`). Lesson 5 opens this folder.
#
# **Things to try:** one task alone (a single-task baseline); `uniform` against `proportional` on a share of
# every task (12.5% or 25%: with the same number of tweets per task the two make the same mix); more epochs,
# and watch the dev loss turn upwards while the training loss keeps falling.
#
# ## Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell: the check runs your code and
# the package's on real tweets and says what is right or wrong. The hidden cell after each exercise holds
# a solution.
#
# **Exercise 1: one training step.** Write the body of the loop above as a function: forward through the
# task's head, cross-entropy loss, backward, clip the gradient to `max_grad_norm`, optimiser step, schedule
# step, clear the gradients; return the loss. The check runs it for two steps (a sentiment batch, then an
# emotion batch) on a tiny model and compares every weight with the package's `train_step`.

# %%
def train_step(model, batch, task, optimizer, scheduler, max_grad_norm):
    """One step on one task's batch; returns the loss."""
    raise NotImplementedError("forward, loss, backward, clip, step, schedule, zero_grad")


mtl.exercises.check_train_step(train_step)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
# Solution
def train_step(model, batch, task, optimizer, scheduler, max_grad_norm):
    """One step on one task's batch; returns the loss."""
    logits = model(batch["input_ids"], batch["attention_mask"], task)
    loss = F.cross_entropy(logits, batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return loss


mtl.exercises.check_train_step(train_step)

# %% [markdown]
# **Exercise 2: each task's best epoch.** From a history table like `run.history` (one row per epoch and
# task), return `{task: epoch}`: the epoch of the task's highest official dev score, `dev_official` (the
# first one if two are equal). The check tries it on your run and on a recorded 5-epoch run.

# %%
def best_epochs(history):
    """{task: the epoch of its highest dev_official}."""
    raise NotImplementedError("group the rows by task, find the row of the highest dev_official")


mtl.exercises.check_best_epochs(best_epochs, run.history)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def best_epochs(history):
    """{task: the epoch of its highest dev_official}."""
    best_rows = history.loc[history.groupby("task", sort=False)["dev_official"].idxmax()]
    return {task: int(epoch) for task, epoch in zip(best_rows["task"], best_rows["epoch"])}


mtl.exercises.check_best_epochs(best_epochs, run.history)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
best = {task: result["best_epoch"] for task, result in run.results.items()}
epochs = [str(epoch) for epoch in sorted(run.history["epoch"].unique())]
first_task = next(iter(best))
first_rows = run.history[run.history["task"] == first_task]
dev_scores = ", ".join(f"epoch {e}: {s:.3f}" for e, s in zip(first_rows["epoch"], first_rows["dev_official"]))
questions = [
    Question(f"In your run, at which epoch did {first_task} reach its best dev score?", epochs,
             str(best[first_task]), f"The star in the dev curves. Its dev scores: {dev_scores}."),
    Question("Why did the hand-written loop and fit give the same losses?",
             ["fit has no randomness", "both started from the same seed: same heads, batches, tasks and "
              "dropout masks", "the losses were rounded"],
             "both started from the same seed: same heads, batches, tasks and dropout masks",
             "Every random choice in fit is seeded: heads by set_seed, batches and schedule by (seed, pass "
             "or epoch), dropout by seed + epoch."),
]
if len(best) > 1:
    same = len(set(best.values())) == 1
    questions.append(Question(
        "Did all the tasks of your run peak at the same epoch?", ["yes", "no"], "yes" if same else "no",
        f"Best epochs: {best}. They need not agree, so fit keeps a checkpoint per task, best/<task>/."))
mtl.widgets.quiz(questions)

# %% [markdown]
# ## Key takeaways
#
# * A training step is forward, cross-entropy of the logits, backward, clip, optimiser step, schedule step,
#   and clearing the gradients; `fit` runs exactly these steps, which a hand-written loop can reproduce.
# * Cross-entropy is $-\log$ of the probability the softmax gives the true label; a fresh head starts
#   at $\log K$.
# * AdamW moves each weight by about the learning rate whatever the size of its gradient; warm-up and linear
#   decay shape that rate over the run; clipping, between backward and step, caps the gradient's norm.
# * Each task keeps the checkpoint of its own best dev epoch.
#
# **Next:** lesson 5 tests each task's best checkpoint and compares the multi-task run with single-task
# runs.

# %% [markdown]
# ## References
#
# * Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic Optimization. *ICLR 2015*.
# * Loshchilov, I. and Hutter, F. (2019). Decoupled Weight Decay Regularization. *ICLR 2019* (AdamW).
# * Stickland, A. C. and Murray, I. (2019). BERT and PALs: Projected Attention Layers for Efficient
#   Adaptation in Multi-Task Learning. *ICML 2019* (the annealed sampler of the panel).
# * Arivazhagan, N. et al. (2019). Massively Multilingual Neural Machine Translation in the Wild: Findings
#   and Challenges. arXiv:1907.05019 (the temperature sampler of the panel).
# * Liu, Y. et al. (2019). RoBERTa: A Robustly Optimized BERT Pretraining Approach. arXiv:1907.11692.
# * Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
#   Pre-Trained Transformers. *NeurIPS 2020*.

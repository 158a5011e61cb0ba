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
# # Lesson 7 — Capstone: your pieces, one run, and a third task
#
# **You will learn**
#
# * to assemble a whole multi-task training run from your own pieces of lessons 1-4: collate function,
#   head, forward pass, task sampler, training step and best-epoch choice;
# * to show that a hand-built run and `fit` compute the same thing, by seeding both alike and comparing
#   their scores task by task;
# * to ask whether adding a task (irony) helps the others, and to answer with one live seed and with a
#   recorded experiment of several seeds;
# * to read a paired test: per-seed differences, their mean, and the t-test's p-value.
#
# **Assumes** lessons 1-4 (you paste your answers to their exercises here) and lesson 5's reading of
# multi-task against single-task scores. **Takes** about 6 minutes on a 2-core CPU (358 s measured at the
# CPU lesson scale, benchmarks/LESSONS.md): three small runs train, yours and `fit`'s (about 2 minutes
# each), then `fit`'s with irony.

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
# Lessons 1-4 built a multi-task run one piece at a time, and lesson 4 handed the loop to `fit`. Here you put
# your own pieces back together: the six functions you wrote go at the top, each checked again, and the
# lesson assembles them into one run (`mtl.exercises.train_with_your_pieces`, a loop that reads top to bottom
# in `mtl_tutorial/exercises/lesson7_capstone.py`). `fit` then trains the same settings from the same seed,
# and the two are compared task by task. Last, a question that a course on multi-task learning has to ask
# at least once: does one more task help the others?
#
# **Settings** (one cell decides the scale): the capstone scale is the lesson scale with a cap on each task's
# training tweets (at the CPU lesson scale at most 1,000, which cuts sentiment and leaves emotion's eighth
# as it is), so that three runs fit in the lesson, trained on one device at full precision.

# %%
import torch
import torch.nn.functional as F
from IPython.display import display
from torch import nn
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
mtl.course.skip_cells_without_answers()  # a cell that needs an answer you have not written says so, and waits
config = mtl.capstone_config()
print(mtl.describe_scale(config))

# %% [markdown]
# **Where the runs live**: `runs/` beside this notebook, as in lesson 4 (on Colab, your Google Drive).

# %%
runs = mtl.runs_folder()
if mtl.on_colab():
    from google.colab import drive

    drive.mount("/content/drive")
    runs = mtl.runs_folder("/content/drive/MyDrive/mtl-tutorial/runs")
print("runs are kept in the folder", runs)

# %% [markdown]
# ## Your pieces
#
# Paste your answer to each exercise of lessons 1-4 into its cell (or write it again) and run the cell: the
# same check as in its lesson runs it once more, on real tweets, against the package. The hidden cell after
# each exercise holds a solution. The run below uses the last version of each piece that you ran.
#
# **Exercise 1: the collate function** (lesson 1, exercise 2). `collate(examples, pad_id)`: a list of
# `{"input_ids": [...], "label": int}` to one batch, padded on the right to its longest tweet.

# %%
def collate(examples, pad_id):
    """Pad a batch to its longest tweet: {"input_ids", "attention_mask", "labels"}, all torch.long."""
    raise NotImplementedError("paste your collate of lesson 1")


mtl.exercises.check_collate(collate)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def collate(examples, pad_id):
    """Pad a batch to its longest tweet: {"input_ids", "attention_mask", "labels"}, all torch.long."""
    width = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"])
        attention_mask[row, :length] = 1
    labels = torch.tensor([example["label"] for example in examples])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


mtl.exercises.check_collate(collate)

# %% [markdown]
# **Exercise 2: the classification head** (lesson 2, exercise 2). `Head(hidden_size, num_labels, dropout)`:
# dense, tanh, dropout, output layer, weights from N(0, 0.02) and zero biases. The run gives your heads the
# weights that `fit`'s heads draw from the seed, so that both runs start from the same point; your head's
# layers do the computing.

# %%
class Head(nn.Module):
    """dense -> tanh -> dropout -> linear, weights from N(0, 0.02), zero biases."""

    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        raise NotImplementedError("paste your Head of lesson 2")

    def forward(self, features):
        raise NotImplementedError


mtl.exercises.check_head(Head)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
class Head(nn.Module):
    """dense -> tanh -> dropout -> linear, weights from N(0, 0.02), zero biases."""

    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)
        for layer in (self.dense, self.out):
            nn.init.normal_(layer.weight, mean=0.0, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        return self.out(self.dropout(torch.tanh(self.dense(features))))


mtl.exercises.check_head(Head)

# %% [markdown]
# **Exercise 3: the forward pass, routed by task** (lesson 2, exercise 3). `forward(self, input_ids,
# attention_mask, task)`: the shared encoder, one vector per tweet, the logits of `self.heads[task]`.

# %%
def forward(self, input_ids, attention_mask, task):
    """Logits of `task`'s head for a batch of that task's tweets."""
    raise NotImplementedError("paste your forward of lesson 2")


mtl.exercises.check_forward(forward)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def forward(self, input_ids, attention_mask, task):
    """Logits of `task`'s head for a batch of that task's tweets."""
    outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
    return self.heads[task](mtl.model.sequence_representation(outputs, attention_mask, self.pooling))


mtl.exercises.check_forward(forward)

# %% [markdown]
# **Exercise 4: the schedule of an epoch** (lesson 3, exercise 3). `draw_schedule(probabilities, steps,
# seed)`: `steps` task names drawn with the given probabilities, the same list for the same seed, the global
# random generators untouched. The run calls it once per epoch with the seed `fit` uses for that epoch.

# %%
def draw_schedule(probabilities, steps, seed):
    """A list of `steps` task names drawn with `probabilities`, the same for the same seed."""
    raise NotImplementedError("paste your draw_schedule of lesson 3")


mtl.exercises.check_schedule(draw_schedule)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def draw_schedule(probabilities, steps, seed):
    """A list of `steps` task names drawn with `probabilities`, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    tasks = list(probabilities)
    weights = torch.tensor([probabilities[task] for task in tasks])
    draws = torch.multinomial(weights, steps, replacement=True, generator=generator)
    return [tasks[i] for i in draws.tolist()]


mtl.exercises.check_schedule(draw_schedule)

# %% [markdown]
# **Exercise 5: one training step** (lesson 4, exercise 1). `train_step(model, batch, task, optimizer,
# scheduler, max_grad_norm)`: forward, cross-entropy, backward, clip, optimiser step, schedule step, clear
# the gradients; return the loss.

# %%
def train_step(model, batch, task, optimizer, scheduler, max_grad_norm):
    """One step on one task's batch; returns the loss."""
    raise NotImplementedError("paste your train_step of lesson 4")


mtl.exercises.check_train_step(train_step)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
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
# **Exercise 6: each task's best epoch** (lesson 4, exercise 2). `best_epochs(history) -> {task: epoch}`:
# the epoch of each task's highest `dev_official`, the first of equal ones. The run asks it after every
# epoch and keeps a task's weights when the answer is that epoch.

# %%
def best_epochs(history):
    """{task: the epoch of its highest dev_official}."""
    raise NotImplementedError("paste your best_epochs of lesson 4")


mtl.exercises.check_best_epochs(best_epochs)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def best_epochs(history):
    """{task: the epoch of its highest dev_official}."""
    best_rows = history.loc[history.groupby("task", sort=False)["dev_official"].idxmax()]
    return {task: int(epoch) for task, epoch in zip(best_rows["task"], best_rows["epoch"])}


mtl.exercises.check_best_epochs(best_epochs)

# %% [markdown]
# ## One run from your pieces
#
# `train_with_your_pieces` is `fit`'s loop without what a real run adds around it (Accelerate, checkpoints
# on disk, resuming, several processes). It draws the data and the model from the seed in `fit`'s order,
# makes every batch with your `collate`, computes with your heads and `forward`, draws each epoch's tasks
# with your `draw_schedule`, takes every step with your `train_step`, scores dev after every epoch, keeps
# the weights of the epoch your `best_epochs` names, and at the end tests each task with its own best
# weights. First, how long the two runs will take on this machine:

# %%
fit_folder = runs / "capstone" / "fit"
print(mtl.training_plan({fit_folder: config}))
print("your run trains as long as fit's")

# %%
# uses your answers: collate, Head, forward, draw_schedule, train_step, best_epochs
pieces = mtl.exercises.YourPieces(collate=collate, head=Head, forward=forward, sampler=draw_schedule,
                                  train_step=train_step, best_epochs=best_epochs)
yours = mtl.exercises.train_with_your_pieces(config, pieces)

# %% [markdown]
# Now `fit`, with the same settings and seed (read back if an earlier session of this lesson trained it):

# %%
fitted = mtl.open_or_train(config, fit_folder)

# %%
# uses your answers: collate, Head, forward, draw_schedule, train_step, best_epochs
comparison = mtl.exercises.compare_with_fit(yours, fitted)
display(comparison.round(4))
if comparison["same"].all():
    print("Every task trained on the same tweets, chose the same best epoch and got the same dev and test "
          "scores as fit's run: your pieces and fit compute the same run.")
else:
    differ = ", ".join(comparison.index[~comparison["same"]])
    print(f"Your run and fit's differ for {differ}: read the columns above, and the note below.")

# %% [markdown]
# With pieces that compute what the package computes, every column agrees: the same seed gave the same
# heads (your `Head` starts from the weights `fit`'s heads drew), the same batches, the same tasks at each
# step (when your `draw_schedule` draws as the package's `draw_tasks` does) and the same dropout masks;
# every step then computes the same numbers. On a GPU the two can differ in the last digits, as lesson 4's
# comparison can there.
#
# When yours differ, the columns say where. Different *tweets trained* per task mean that your
# `draw_schedule` draws other tasks than the package's (a correct sampler may: lesson 3's check asks for
# the right probabilities and reproducibility, not for the package's exact draws); the runs are then two
# different, equally valid runs, and their scores differ by about as much as two seeds' would. The same
# tweets with other scores point at a step or a forward pass that computes something else, which the checks
# above would have named; another *best epoch* at the same dev scores points at `best_epochs`.
#
# ## Does a third task help?
#
# TweetEval has more tasks than emotion and sentiment. Irony (is this tweet ironic?) is about how a tweet is
# meant, close to both. Adding it gives the shared encoder more tweets to learn from, but also a third task
# to share its steps with. We train `fit` once more, with irony added, on the same settings and seed, and
# compare with the run without it.

# %%
with_irony = mtl.capstone_config(tasks=("emotion", "sentiment", "irony"))
irony_folder = runs / "capstone" / "with-irony"
print(mtl.training_plan({irony_folder: with_irony}))
with_irony_run = mtl.open_or_train(with_irony, irony_folder)

# %%
live = mtl.with_vs_without(with_irony_run, fitted)
display(live.round(2))
for task, row in live.dropna().iterrows():
    print(f"{task}: {row['without']:.1f} without irony, {row['with']:.1f} with it "
          f"({row['with - without']:+.1f})")
irony = live.loc["irony"]
print(f"irony itself: {irony['with']:.1f}, against {irony['majority baseline']:.1f} for always answering "
      "its commonest label")

# %% [markdown]
# One seed, at a small scale: the differences printed above mix what irony does with what any change of the
# run does. Adding a task changes the schedule (a third of the steps go to irony under uniform sampling, so
# emotion and sentiment get fewer), the random draws that follow, and the whole path of training. Seeds
# of the *same* settings already differ by several points at these small scales (in the recorded runs
# below, at the CPU lesson scale without the capstone's cap, emotion without irony scores 65.0, 68.4 and
# 70.3 over three seeds), so a difference of that size says nothing yet.
#
# ## The answer over several seeds
#
# To tell an effect from the noise, the question was asked again at the CPU lesson scale (an eighth of every
# task's training tweets, 3 epochs) with three seeds for each multi-task arm (one for the single-task runs),
# and recorded with the package (`mtl_tutorial/recorded/README.md`). Each seed gives a *pair*: the run without
# irony and the run with it, which share the seed's starting heads, training sample and each task's batch
# order (dropout starts from the same seed too, but its masks part ways once the schedules differ). The
# difference within a pair removes what the seed does to both, and the question becomes: are the differences
# clearly away from 0?

# %%
experiment = mtl.third_task_experiment()
display(experiment)
differences = mtl.with_minus_without(experiment)
display(differences.round(2))

# %%
tests = mtl.paired_test(differences)
display(tests.round(3))
if tests.empty:
    print("The recorded file holds no seed trained both with and without irony: there is nothing to pair.")
for task, row in tests.iterrows():
    own = differences[differences["task"] == task]["difference"]
    spread = f", from {own.min():+.1f} to {own.max():+.1f}" if len(own) > 1 else ""
    verdict = ("no test: one pair has no spread to measure the noise by" if row["seeds"] < 2
               else f"paired t-test t = {row['t']:.2f}, p = {row['p']:.2f}: "
               + ("a difference unlikely to come from the seeds alone (p < 0.05)" if row["p"] < 0.05
                  else "the seeds alone could easily give differences like these (p >= 0.05)"))
    print(f"{task}: with irony minus without, {row['mean difference']:+.2f} points on average over "
          f"{row['seeds']:.0f} seeds{spread}; {verdict}.")

# %%
mtl.plots.paired_differences(differences, title="Test score with irony minus without, one dot per seed");

# %% [markdown]
# How to read it: every dot is one seed's difference, the solid line is "no difference" and the dashed one
# the mean. When the dots sit on both sides of 0, irony helped with some seeds and hurt with others, and the
# mean alone would over-read it. The paired t-test weighs the mean difference against how much the
# differences vary: $t = \bar d / (s_d / \sqrt{n})$ with $n$ pairs. With three seeds it can only detect a
# large, steady effect; a p-value above 0.05 says "not shown", not "no effect". And the answer holds for
# these tasks, this scale and uniform sampling: with a sampler that gives irony fewer steps, or with the
# full data, it may change.
#
# To go further, change how the steps are shared and compare again: `sampler="proportional"` in
# `mtl.capstone_config(tasks=("emotion", "sentiment", "irony"), sampler="proportional")` gives each task
# steps in proportion to its training tweets instead of a third each.

# %% [markdown]
# The single-task runs of the recorded file trained one seed: beside them, each arm's run of that same seed
# (like against like), so that one can see where multi-task training, with or without irony, stands against
# each task trained alone.

# %%
first_seed = experiment["seed"].min()
one_seed = experiment[experiment["seed"] == first_seed].pivot_table(index="task", columns="arm",
                                                                    values="test")
print(f"test scores x 100 of the runs of seed {first_seed}:")
display(one_seed.round(1))

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
emotion_change = live.loc["emotion", "with - without"]
questions = [
    Question("Your run and fit's started from the same heads. Why, when your Head draws its own weights?",
             ["the run gives your heads the weights fit's heads drew from the seed",
              "any head class draws the same numbers from the same seed", "the heads are not trained"],
             "the run gives your heads the weights fit's heads drew from the seed",
             "The run copies the package's freshly drawn weights into your layers. The same seed gives the "
             "same numbers only for the same draws in the same order, which another head class need not "
             "make; and the heads do train, every step of their task."),
    Question("Your sampler draws the right probabilities but other tasks than the package's at each step. "
             "What does the comparison show?",
             ["other tweets trained per task, and scores that differ by about a seed's spread",
              "the same scores: the probabilities are the same", "an error: the check would have failed"],
             "other tweets trained per task, and scores that differ by about a seed's spread",
             "The tasks of each step decide which batches train, so the runs part ways at the first step "
             "that differs; the mix is the same, so neither run is wrong. The check asks for the right "
             "probabilities and reproducibility, not for the package's exact draws, so it passes."),
    Question("With irony added (one seed, the capstone scale), did emotion's test score go up?",
             ["yes", "no"], "yes" if emotion_change > 0 else "no",
             f"It moved by {emotion_change:+.1f} points. Either way, one seed cannot tell irony's effect "
             "from the seed's: that is what the recorded seeds are for."),
    Question("Why compare the runs with and without irony seed by seed (a paired test)?",
             ["each pair shares its seed's heads, training sample and batch order, so the difference "
              "leaves the seed's own effect out", "a paired test needs no more than one seed",
              "pairing makes the two runs identical"],
             "each pair shares its seed's heads, training sample and batch order, so the difference "
             "leaves the seed's own effect out",
             "A seed that helps both arms moves both scores; their difference cancels it, so less noise "
             "is left to hide an effect. One pair has no spread to test against (the test needs two or "
             "more), and the runs of a pair differ in their tasks, so they are not identical."),
]
if (tests["seeds"] > 1).any():
    task, row = next((task, row) for task, row in tests.iterrows() if row["seeds"] > 1)
    shown = row["p"] < 0.05
    questions.append(Question(
        f"The recorded paired test for {task} gives p = {row['p']:.2f}. What does it say?",
        ["the effect of irony is shown", "not shown: the seeds alone could give such differences",
         "irony certainly has no effect"],
        "the effect of irony is shown" if shown else "not shown: the seeds alone could give such differences",
        f"p < 0.05 means differences as steady as these rarely come from the seeds alone; here p is "
        f"{row['p']:.2f}. A p above 0.05 is no proof of no effect either: with {row['seeds']:.0f} seeds the "
        "test sees only large, steady effects."))
mtl.widgets.quiz(questions)

# %% [markdown]
# ## Key takeaways
#
# * A whole multi-task run is six pieces: a collate function, a head, a forward routed by task, a seeded
#   task sampler, a training step and each task's best epoch. `fit` is those pieces plus what a real run
#   needs around them.
# * Seeded alike, a hand-built run and `fit` compute the same run; where they differ, the tweets trained,
#   the best epochs and the scores, task by task, say which piece is responsible.
# * Whether a task helps the others is an experiment, not a guess: one seed shows a difference, several
#   paired seeds tell it from the noise, and a p-value above 0.05 means "not shown", not "no effect".
#
# **Next:** lesson 8, "How much to share": instead of one encoder for every task, soft sharing (an encoder
# per task, tied by a penalty) and LoRA (one frozen encoder, a small adapter per task).

# %% [markdown]
# ## References
#
# * Van Hee, C., Lefever, E. and Hoste, V. (2018). SemEval-2018 Task 3: Irony Detection in English Tweets.
#   *SemEval 2018*.
# * Barbieri, F., Camacho-Collados, J., Espinosa Anke, L. and Neves, L. (2020). TweetEval: Unified Benchmark
#   and Comparative Evaluation for Tweet Classification. *Findings of EMNLP 2020*.
# * Hugging Face transformers, `examples/pytorch/text-classification/run_glue_no_trainer.py`: a training
#   loop written out by hand, the model of `train_with_your_pieces`.

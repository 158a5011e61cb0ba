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
# # Lesson 5 — Evaluation: what did the model learn, and did sharing help?
#
# We test each task with its own best checkpoint, look at its mistakes, compare the multi-task model with
# single-task models trained the same way, label new tweets, and finally go through what the original
# tutorial got wrong.
#
# **You will learn**
#
# * to test each task with the checkpoint of its own best dev epoch, and read a confusion matrix;
# * to compare a multi-task model with single-task baselines fairly: same settings, same test tweets,
#   and an eye on how many training tweets each task really saw;
# * how large a difference must be before a small test set and one seed can show it;
# * the original tutorial's defects, each shown in a cell, and what the package does instead.
#
# **Assumes** lessons 1-4 (lesson 4's run is read back; without it this lesson trains it). **Takes** on a
# 2-core CPU about 9 minutes at the CPU lesson scale (514 s measured, benchmarks/LESSONS.md): it trains the
# two single-task baselines (and, if lesson 4's run is missing, about 9 minutes more for that). On a GPU
# (H200, full recipe) more than 4 minutes (it was stopped at 258 s, before it finished).

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
# **Settings** (one cell decides the scale):

# %%
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# **Where the runs live.** Runs are written to `runs/` beside this notebook (or to the folder named by the
# environment variable `MTL_TUTORIAL_RUNS`); lesson 4 left its run there. A Colab
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
# ## The run from lesson 4
#
# Lesson 4 left its run in `multitask` in the runs folder. If that run finished, we use it as it is,
# whatever you chose there; if it stopped part-way, it resumes; if there is none (a fresh Colab runtime,
# or lesson 4 skipped), it trains now with the same package function, so this notebook always runs top
# to bottom. Further down, each task's single-task baseline is found or trained the same way. Before
# anything trains, the plan: what is read back, what trains, and roughly how long that takes here.

# %%
folder = runs / "multitask"
config = mtl.saved_config(folder) or config  # the settings lesson 4 trained with, if it did
baselines = mtl.single_task_configs(config, runs / "single")
print(mtl.training_plan({folder: config, **baselines}))

# %%
run = mtl.open_or_train(config, folder)
print(mtl.describe_scale(config))

# %% [markdown]
# ## Test scores, each from the task's best epoch

# %%
mtl.results_table(run.results).round(4)

# %% [markdown]
# How precise are these scores? Each comes from the test tweets of this scale (the cell below counts them):
# an accuracy near 0.5 measured on $n$ tweets has a standard error of about $\sqrt{0.5 \cdot 0.5 / n}$, and
# macro scores, which average over labels with fewer tweets each, move more. The original tutorial
# (roberta-base, full data, 5 epochs) reported emotion test accuracy 0.816 and macro-F1 0.782, from its
# epoch-5 checkpoint.
#
# ## Where the mistakes are
#
# A confusion matrix counts, for each true label (row), which label the model chose (column).

# %%

predictions = {task: mtl.predictions_on_test(folder, task) for task in run.results}
for task, table in predictions.items():
    print(f"{task}: {len(table):,} test tweets, so an accuracy near 0.5 has a standard error of about "
          f"{(0.25 / len(table)) ** 0.5:.3f}")
for task, table in predictions.items():
    best_epoch = run.results[task]["best_epoch"]
    mtl.plots.confusion_matrix(mtl.confusion_of(table), title=f"{task}: test, best epoch {best_epoch}")

# %% [markdown]
# A few of the mistakes, to read:

# %%
import pandas as pd
from IPython.display import display

first_task = next(iter(predictions))
mistakes = predictions[first_task].query("true != predicted")
with pd.option_context("display.max_colwidth", 120):
    display(mistakes.head(8))

# %% [markdown]
# How often each label occurs among the test tweets, and how often the model chose it:

# %%
columns = {"test tweets": "true", "predictions": "predicted"}
for task, table in predictions.items():
    shares = pd.DataFrame({f"share of {name}": table[column].value_counts(normalize=True, sort=False)
                           for name, column in columns.items()})
    print(f"{task}:\n{shares.T.round(3).to_string()}\n")

# %% [markdown]
# Read the matrices, the mistakes and the shares above together; the mistakes are not spread evenly.
#
# * **Class imbalance.** A label with few training tweets (lesson 1: optimism is emotion's rarest) tends
#   to be chosen less often than it occurs, and with less data or fewer epochs sometimes never: compare
#   its two shares above, then its column in the matrix and its recall (the diagonal cell over its row).
#   Macro-F1 and macro-recall weigh every label alike, so a rare label's low recall costs as much as a
#   common one's.
# * **Labels that overlap.** Joy and optimism, or anger and sadness, can hinge on a word or two; many
#   mistakes fall between such neighbours, where human annotators disagree too.
# * **Sarcasm, irony and hashtags.** "great, another monday" is positive word by word. Look for such tweets
#   in the mistakes listed above; a model that has seen few of them reads them literally.
# * **Small data.** The settings printed at the top say how many tweets this run trained on. At the CPU
#   lesson scale that is an eighth of each task's: 407 for emotion (38 of them optimism) and 5,702 for
#   sentiment. A head that has seen a few dozen examples of a label knows it poorly, and the scores move
#   from one seed to the next.

# %% [markdown]
# ## Multi-task against single-task
#
# Did sharing the encoder help? The fair comparison is the same settings with one task at a time: the
# same encoder, data, epochs and learning rate, each task with its own best epoch. Those baselines are
# trained here (or read back from `single/<task>` in the runs folder if an earlier run of this notebook
# made them). They use the settings of the multi-task run, whatever its scale.

# %%
single = mtl.single_task_runs(config, runs / "single")
comparison = mtl.multitask_vs_single_task(run, single)
comparison.round(4)

# %%
mtl.plots.multitask_vs_single_task(comparison);

# %% [markdown]
# How to read it: the grey bar is the floor (always the commonest label). A positive difference means
# the task gained from training beside the other; a negative one means the tasks competed for the
# shared encoder (*negative transfer*). Two things besides sharing move the difference:
#
# * **Noise.** With one seed and a few hundred test tweets, a difference of a few points can be chance
#   (the cell after the next prints, for this run's test sets, the size of difference that two standard
#   errors of the test sampling alone allow; a new seed adds its own spread on top).
# * **Training.** In the same number of epochs the multi-task run makes as many steps as both tasks have
#   batches, so its shared encoder gets more updates than either single-task run, and the sampler decides
#   how many of them go to each task. The next cell counts the tweets each task's head trained on. When
#   the multi-task run gave a task many more tweets than its single-task run, part of that task's gain is
#   more training, not sharing. When it gave a task about as many or fewer, more training of that task
#   cannot explain a gain: what remains is the encoder's updates from the *other* task (sharing), or noise.
#
# A fairer test would also give each task as many training steps alone as beside the other, and use several
# seeds. `benchmarks/QUALITY.md` (below) does the second, four seeds paired by seed, but like this lesson it
# gives both runs the same epochs, not the same steps. With the full recipe on a GPU, the small task
# (emotion) is the one that can gain, since the large sentiment set shapes the shared encoder.

# %%
seen = {"multi-task": run.history.groupby("task")["train_examples"].sum(),
        "single-task": {task: single[task].history["train_examples"].sum() for task in single}}
pd.DataFrame(seen).rename_axis("training tweets seen, all epochs")

# %%
for task, row in comparison.iterrows():
    multi, alone = seen["multi-task"][task], seen["single-task"][task]
    noise = 2 * (2 * 0.25 / len(predictions[task])) ** 0.5  # two standard errors of a difference
    training = ("more" if multi > 1.2 * alone else "fewer" if multi < alone / 1.2 else "about as many")
    print(f"{task}: multi - single = {row['multi - single']:+.3f} "
          f"({'beyond' if abs(row['multi - single']) > noise else 'within'} about ±{noise:.2f}, two standard "
          f"errors on {len(predictions[task]):,} test tweets); the multi-task run trained it on {training} "
          f"tweets ({multi:,} against {alone:,})")

# %% [markdown]
# ### Do the two tasks pull the encoder the same way?
#
# After every epoch, `fit` takes a few training batches of each task, computes the gradient of each
# task's loss with respect to the *shared* encoder, and records the cosine between them in the history
# (`gradient_cosine`). Near +1 the tasks push the encoder in the same direction and help each other;
# near 0 they are unrelated; below 0 they conflict, and one task's step partly undoes the other's
# (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning").

# %%
mtl.plots.gradient_conflict(run.history);

# %% [markdown]
# The cosine is symmetric, so two tasks give one line (with three or more, each task's line is its mean
# cosine with the others; a run of one task gets a note instead, as there is nothing to compare). It is
# measured on a few batches, so read its sign more than its exact value. A line that stays below 0 is the
# task interference of lesson 2; lesson 3's `--strategy all-tasks` with `--combine pcgrad`, `mgda` or
# `upgrad` builds steps that work against no task.
#
# ### What a controlled experiment found
#
# One run of one seed on a sample of the tweets cannot settle the question. `benchmarks/quality.py` repeats
# this comparison at a larger scale on a CPU: the packaged MiniLM, all 3,257 emotion training tweets and a
# sample of 6,000 of the 45,615 sentiment ones, full dev and test sets, each sampler, and four seeds for
# single-task emotion and the proportional and temperature samplers (one for uniform and annealed). Its report
# is `benchmarks/QUALITY.md`. For emotion, temperature sampling (T = 2) gained +1.2 points of test macro-F1
# over single-task training (77.5 ± 0.4 against 76.3 ± 1.0) and was better on every seed, yet with four seeds
# the gain is not significant (paired t-test p = 0.14). Proportional sampling gained on two seeds and lost on
# two (-0.2 on average). Sentiment did not change. The lesson in method: compare several seeds, paired by
# seed, before you say that multi-task learning helped.
#
# ## Label your own tweets
#
# Type a tweet and press **Label it**: every head answers, each from its task's best checkpoint. The cell
# after the panel does the same from code.

# %%

labeller = mtl.widgets.prediction_panel(folder)
labeller

# %%
labeller.predict("can't believe they cancelled the show, i'm so angry right now")

# %% [markdown]
# Read each head's answer above. The tweet is plainly angry and negative, yet a model trained briefly on
# few tweets can miss, say by calling it positive or neutral, when the words it leans on were common
# among other labels' training tweets. The probabilities show how sure each head was: among three labels,
# a choice at 0.4 is little better than a guess. Try your own tweets, sarcastic ones too.
#
# Unlike the original tutorial's `regular_encode`, whose predict mode still asked for labels, this needs
# nothing but the text.
#
# ## What the original tutorial got wrong
#
# The tutorial this package grew out of taught the right ideas, but its code had defects that quietly
# changed what it measured. Each one, and what the package does instead:
#
# **1. Gradient clipping after the optimiser step.** It called `clip_grad_norm_` after `optimizer.step()`,
# when the update had already been made with the unclipped gradient; the clipping never did anything.
# The right order, in the package's training step (backward, clip, then step):

# %%
import inspect


print(inspect.getsource(mtl.train_step))

# %% [markdown]
# **2. Losses never accumulated.** Per-task training losses were initialised and never added to, and the
# dev loss was never summed, so its reported dev loss was always 0. Here both are real numbers, per task
# and epoch:

# %%
run.history[["epoch", "task", "train_loss", "dev_loss"]].round(4)

# %% [markdown]
# **3. `itertools.cycle` over a DataLoader.** To make each task's loader endless it wrapped it in
# `itertools.cycle`, which stores the items of the first pass and then replays them: after one pass the
# data is never reshuffled again, and every batch stays in memory. Watch the order of 8 items, in
# batches of 2, over three passes:

# %%
import itertools

import torch
from torch.utils.data import DataLoader

torch.manual_seed(0)
replayed = itertools.cycle(DataLoader(range(8), batch_size=2, shuffle=True))
for number in range(3):
    print(f"pass {number + 1}:", [next(replayed).tolist() for _ in range(4)])

# %% [markdown]
# The package's `mtl.BatchStream` draws a new order on every pass (and can resume from any position):

# %%

items = mtl.EncodedSplit(input_ids=[[i] for i in range(8)], labels=list(range(8)))
stream = mtl.BatchStream(items, batch_size=2, group_by_length=False)
for number in range(3):
    print(f"pass {number + 1}:", [next(stream)["labels"].tolist() for _ in range(4)])

# %% [markdown]
# **4. `device == 'cuda'`.** It compared a `torch.device` with a string to decide when to empty the CUDA
# cache. A device never equals a string, so that code never ran (and emptying the cache every step would
# only have slowed training). Compare the device's `.type` instead; here Accelerate chooses the device.

# %%
device = torch.device("cuda")
print(device == "cuda", device.type == "cuda")

# %% [markdown]
# **5. `from transformers import *`, `transformers.AdamW` and `encode_plus`.** A star import hides where
# names come from, and two of the names it relied on are gone from current transformers: `AdamW` (the
# package uses `torch.optim.AdamW`) and the tokenizer's `encode_plus`, which its dataset class called for
# every tweet, so with transformers 5 that class stops with an `AttributeError` at the first batch. The
# package calls the tokenizer itself, once per split (lesson 1).

# %%
import transformers
from transformers import AutoTokenizer

run_tokenizer = AutoTokenizer.from_pretrained(mtl.runs.best_folder(folder, first_task))
print(transformers.__version__, "has AdamW:", hasattr(transformers, "AdamW"),
      "| the tokenizer has encode_plus:", hasattr(run_tokenizer, "encode_plus"))

# %% [markdown]
# **6. Padding every tweet to 64 tokens.** Lesson 1 measured it: with MiniLM's tokenizer, more than half of
# every batch was pad tokens. With per-batch padding and length grouping, the share of padding during this
# run was:

# %%
run.history.groupby("epoch")["pad_fraction"].first().round(3)

# %% [markdown]
# **7. Testing the last epoch while saying it tests the best.** It kept a checkpoint per epoch but tested
# the last one. In its own table emotion's best dev epoch was 3 (macro-F1 0.747); its text said epoch 1, and
# then loaded the epoch-5 checkpoint, `mt2_5.pt`, for the test score it reported. The package tests each
# task with its own best checkpoint. Best against last on this run (the same when a task's best epoch
# happens to be the last):

# %%
mtl.best_vs_last(run).round(4)

# %% [markdown]
# **8. No way to label new text.** See the labelling panel above.
#
# **9. `torch.cuda.get_device_name(0)` without a GPU.** It printed the GPU's name unconditionally, so on a
# machine without one the notebook stopped with an error before training. Ask only when there is a GPU
# (the package lets Accelerate choose the device):

# %%
try:
    print(torch.cuda.get_device_name(0))
except (AssertionError, RuntimeError) as error:  # what torch raises without a GPU
    print(f"{type(error).__name__}: {error}")
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: the run uses the CPU")

# %% [markdown]
# **10. An unseeded task draw.** It drew each step's task with NumPy's global generator, which it never
# seeded, so no two runs trained the tasks in the same order and no result could be reproduced exactly.
# The package draws an epoch's schedule from a generator seeded by (seed, epoch) (lesson 3): the same
# seed gives the same schedule.

# %%
full_sizes = {"emotion": 3257, "sentiment": 45615}
first, again = (mtl.task_schedule(full_sizes, 40, "proportional", seed=77) for _ in range(2))
print("".join(task[0].upper() for task in first), "the same twice:", first == again)

# %% [markdown]
# **11. Logits called probabilities.** Its evaluation split `torch.max` of the head's outputs into the
# predicted label and a variable it named `probabilities`, but the head returns *logits*: any real numbers,
# not summing to 1, and their maximum is no probability. Their argmax is the right label, so accuracy was
# fine, but reading them as probabilities is wrong (lesson 4 turns logits into probabilities step by step).
# The package's model returns logits, and `mtl.predict` turns them into probabilities with a softmax:

# %%
best_model, best_tokenizer = mtl.load_model(mtl.runs.best_folder(folder, first_task))
encoded_tweet = best_tokenizer(["i love rainy sundays with a good book"], return_tensors="pt")
with torch.no_grad():
    logits = best_model(encoded_tweet["input_ids"], encoded_tweet["attention_mask"], first_task)
print("logits:", logits.numpy().round(2), "sum", round(logits.sum().item(), 2))
print("probabilities:", logits.softmax(-1).numpy().round(2), "sum", round(logits.softmax(-1).sum().item(), 2))

# %% [markdown]
# **12. `model.module` on several GPUs, without `DataParallel`.** Its checkpoint code saved
# `model.state_dict()` when at most one GPU was visible and `model.module.state_dict()` when there were more.
# Only a multi-GPU wrapper (`DataParallel`, `DistributedDataParallel`) has `.module`, and it never wrapped the
# model, so on a machine with two or more GPUs the first save, after a whole epoch, fails with an
# `AttributeError`. On its one K80 it took the first branch and worked (its log reloads `mt2_5.pt`). The
# package saves `accelerator.unwrap_model(model)`, the bare model whether it is wrapped or not:

# %%
from accelerate.utils import extract_model_from_parallel  # what unwrap_model calls

wrapped = torch.nn.DataParallel(best_model)  # on a CPU it only holds the model
print("has .module:", hasattr(best_model, "module"), "| wrapped in DataParallel:", hasattr(wrapped, "module"))
print("unwrapped is the model, both ways:", extract_model_from_parallel(best_model) is best_model,
      extract_model_from_parallel(wrapped) is best_model)

# %% [markdown]
# **13. `results.txt` appended across runs.** It opened its results file in append mode, so a second run
# wrote its epochs after the first run's, and the file no longer said which line came from which run. The
# package gives each run its own folder, rewrites `history.csv` whole after every epoch, and refuses to
# train into a folder that holds a different run. This run's history has one row per epoch and task:

# %%
print(len(run.history), "rows =", run.history["epoch"].nunique(), "epochs x", run.history["task"].nunique(),
      "tasks")

# %% [markdown]
# ## Exercises
#
# Write the scores yourself. Replace each `raise NotImplementedError` with your code and run the cell: the
# check runs your function and the package's on real test tweets, labelled by a quick word model (tf-idf and
# logistic regression), by the majority class and, where there is one, by this lesson's model, and says
# what is right or wrong. The hidden cell after each exercise holds a solution.
#
# **Exercise 1: sentiment's official score.** SemEval-2017 Task 4A scores sentiment by **macro-recall**:
# the recall of each label (the share of its tweets that were found), averaged with equal weight over
# negative (0), neutral (1) and positive (2).

# %%
from sklearn.metrics import f1_score, recall_score

def sentiment_score(y_true, y_pred):
    """The mean over the three labels of each label's recall."""
    raise NotImplementedError("one recall per label, then their plain mean")


mtl.exercises.check_sentiment_score(sentiment_score, predictions=predictions.get("sentiment"))

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def sentiment_score(y_true, y_pred):
    """The mean over the three labels of each label's recall."""
    return recall_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)


mtl.exercises.check_sentiment_score(sentiment_score, predictions=predictions.get("sentiment"))

# %% [markdown]
# **Exercise 2: stance's official score.** TweetEval's stance tasks (SemEval-2016 Task 6) label a tweet
# none (0), against (1) or favor (2) of a target, and score a model by the **mean of the F1 of against and
# of the F1 of favor**: 'none' counts only through the mistakes it causes.

# %%
def stance_score(y_true, y_pred):
    """The mean of the F1 of 'against' (1) and of 'favor' (2)."""
    raise NotImplementedError("the F1 of label 1 and of label 2, then their mean")


mtl.exercises.check_stance_score(stance_score)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def stance_score(y_true, y_pred):
    """The mean of the F1 of 'against' (1) and of 'favor' (2)."""
    return f1_score(y_true, y_pred, labels=[1, 2], average="macro", zero_division=0)


mtl.exercises.check_stance_score(stance_score)

# %% [markdown]
# **Exercise 3: a confusion matrix.** Count, for every true label (row) and predicted label (column), how many
# tweets fall there: a `num_labels x num_labels` table, even for labels the model never predicts.

# %%
def confusion(y_true, y_pred, num_labels):
    """counts[true label, predicted label], num_labels x num_labels."""
    raise NotImplementedError("start from a table of zeros and add one per tweet")


mtl.exercises.check_confusion(confusion)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def confusion(y_true, y_pred, num_labels):
    """counts[true label, predicted label], num_labels x num_labels."""
    counts = torch.zeros((num_labels, num_labels), dtype=torch.long)
    for truth, guess in zip(y_true, y_pred):
        counts[truth, guess] += 1
    return counts


mtl.exercises.check_confusion(confusion)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
table = mtl.confusion_of(predictions[first_task])
recall = pd.Series(table.to_numpy().diagonal(), index=table.index) / table.sum(axis=1).clip(lower=1)
difference = comparison["multi - single"]
questions = [
    Question(f"Which {first_task} label did the model find least often (lowest recall) on test?",
             list(table.index), recall.idxmin(),
             "Each row's diagonal cell divided by the row's total: "
             + ", ".join(f"{label} {value:.2f}" for label, value in recall.items()) + "."),
    Question(f"Did multi-task training beat single-task training on {difference.index[0]} in this run?",
             ["yes", "no"], "yes" if difference.iloc[0] > 0 else "no",
             f"multi - single = {difference.iloc[0]:+.3f}, from one seed and "
             f"{len(predictions[difference.index[0]]):,} test tweets: compare it with the noise printed "
             "under the comparison before calling it a gain."),
    Question("A model that always answers 'neutral' gets what macro-recall on sentiment?",
             ["0", "1/3", "the share of neutral tweets"], "1/3",
             "Recall 1 on neutral and 0 on the other two labels: (1 + 0 + 0) / 3 (exercise 1)."),
    Question("The original tutorial clipped gradients after optimizer.step(). What did its clipping change?",
             ["it halved the learning rate", "nothing: the step had already used the unclipped gradient",
              "it made training diverge"],
             "nothing: the step had already used the unclipped gradient",
             "The update is made inside optimizer.step(); the gradient is cleared before the next one."),
]
mtl.widgets.quiz(questions)

# %% [markdown]
# ## Your best emotion model, outside this package
#
# `mtl.export.export_run` writes a task's best checkpoint as an ordinary Hugging Face model folder: the
# weights, the label names, the tokenizer and a model card. `transformers.pipeline` loads it without
# `mtl_tutorial`, so the model can be shared (`hf upload`, README "Export and share a run"). With mean or
# pooler pooling, which no standard class has, the folder ships a short modeling file that
# `trust_remote_code=True` runs; with first-token pooling it is the encoder family's own classifier.

# %%
import shutil

from transformers import pipeline

shutil.rmtree(runs / "exported" / "emotion", ignore_errors=True)  # exporting again replaces the old folder
exported = mtl.export.export_run(run.folder, runs / "exported", tasks=["emotion"])["emotion"]
classify = pipeline("text-classification", model=str(exported), top_k=None,
                    trust_remote_code=config.pooling != "cls")
new_tweets = ["can't believe they cancelled the show, i'm so angry right now",
              "i love rainy sundays with a good book", "tomorrow is a new day, we will get there"]
for tweet, labels in zip(new_tweets, classify(new_tweets, truncation=True, max_length=config.max_length)):
    print(f"{tweet!r}: " + ", ".join(f"{label['label']} {label['score']:.3f}" for label in labels))

# %% [markdown]
# ## Key takeaways
#
# * Test each task with the checkpoint of its own best dev epoch; the tasks need not peak together.
# * Macro-F1 and macro-recall expose what accuracy hides: a rare label that is never predicted.
# * A multi-task gain means something only against single-task runs of the same settings, beyond the
#   noise of the test set and the seed, and with the tweets each task really trained on counted.
# * The original tutorial's defects (clipping after the step, losses never summed, a replayed data
#   order, the last epoch tested as the best, an unseeded task draw, ...) each changed what it measured.
#
# **Next:** lesson 6, when the tasks' gradients pull apart, and the methods that combine every task at
# every step. The command line `mtl-tutorial train | evaluate | predict` does all of this outside a
# notebook, and `00_overview` runs the pipeline again on one page.

# %% [markdown]
# ## References
#
# * Barbieri, F., Camacho-Collados, J., Espinosa Anke, L. and Neves, L. (2020). TweetEval: Unified
#   Benchmark and Comparative Evaluation for Tweet Classification. *Findings of EMNLP 2020*.
# * Mohammad, S., Bravo-Marquez, F., Salameh, M. and Kiritchenko, S. (2018). SemEval-2018 Task 1: Affect
#   in Tweets. *SemEval-2018*.
# * Rosenthal, S., Farra, N. and Nakov, P. (2017). SemEval-2017 Task 4: Sentiment Analysis in Twitter.
#   *SemEval-2017*.
# * Mohammad, S., Kiritchenko, S., Sobhani, P., Zhu, X. and Cherry, C. (2016). SemEval-2016 Task 6:
#   Detecting Stance in Tweets. *SemEval-2016*.
# * Yu, T. et al. (2020). Gradient Surgery for Multi-Task Learning. *NeurIPS 2020*.
# * Sener, O. and Koltun, V. (2018). Multi-Task Learning as Multi-Objective Optimization. *NeurIPS 2018*.

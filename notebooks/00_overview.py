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
# # Multi-task learning for tweets — the whole pipeline on one page
#
# One pre-trained Transformer encoder, **shared** by two tweet classification tasks, each with its own
# small classification **head**: multi-task learning (Caruana, 1997) by hard parameter sharing
# (Ruder, 2017):
#
# * `emotion`: anger, joy, optimism or sadness (SemEval-2018 Task 1);
# * `sentiment`: negative, neutral or positive (SemEval-2017 Task 4A),
#
# both from the TweetEval benchmark (Barbieri et al., 2020). This page follows the original course
# tutorial's steps (data, model, task sampling, training, testing each task's best epoch) with one package
# call each. The lessons after it take each step slowly:
#
# | lesson | what it teaches |
# |---|---|
# | `01_data` | the two tasks, their splits and labels, the tokenizer, padding per batch |
# | `02_model` | hard and soft sharing, the shared encoder with one head per task, mean / cls / pooler |
# | `03_sampling` | which task trains at each step: proportional, temperature, uniform, annealed, ... |
# | `04_training` | the loop by hand and with `fit`; cross-entropy, AdamW, warm-up and decay, clipping |
# | `05_evaluation` | best checkpoints on test, mistakes, multi- against single-task, the original's defects |
# | `06_conflict` | when tasks pull apart: gradient cosines, PCGrad, MGDA, UPGrad, and a recorded experiment |
# | `07_capstone` | your pieces of lessons 1-4 in one run beside `fit`'s; does a third task (irony) help? |
# | `08_sharing` | how much to share: hard sharing, a LoRA adapter per task, soft sharing; scores and costs |
#
# **You will learn**
#
# * what multi-task learning by hard parameter sharing is, on two real tweet tasks;
# * the whole pipeline, one package call per step: data, model, task sampling, training, testing, labelling;
# * how each task is tested with the checkpoint of its own best dev epoch.
#
# **Assumes** Python and a first idea of what a neural network and fine-tuning are; the lessons explain the
# rest. **Takes** about 9 minutes on a 2-core CPU at the CPU lesson scale (518 s measured, almost all of it
# training; benchmarks/LESSONS.md) and about 4.5 minutes on a GPU with the full recipe (266 s on an H200).

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
# **Settings.** This one cell decides the scale, one of three, and prints which ran and what it cut:
#
# - **gpu**, the original tutorial's recipe: roberta-base, all the data, 5 epochs at learning rate 2e-5,
#   pooler output. Picked when there is a GPU (Colab: Runtime > Change runtime type > GPU).
# - **cpu**, the lesson scale for a laptop: the packaged MiniLM on an eighth of every task's training
#   tweets (so the tasks keep their size ratio), both tasks sampled alike, 3 epochs. Picked when there is
#   no GPU; each training lesson takes minutes (benchmarks/LESSONS.md has the times on a 2-core CPU).
# - **ci**, a smoke test that only proves every cell runs (400 tweets per task, 2 epochs); the test suite
#   asks for it with `MTL_TUTORIAL_SCALE=ci`. Its scores are too small to teach from.
#
# The environment variable `MTL_TUTORIAL_SCALE` picks one by name, and `MTL_TUTORIAL_ENCODER` swaps the
# encoder of any scale (a hub id or a folder). `config` holds every setting of the run (print it to see
# them all; lesson 4 explains the optimiser's); the cell prints the ones that differ between scales.

# %%
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# ## 1. Data
#
# Each task by its TweetEval name: train, dev and test splits of texts and label ids (all of them here,
# whatever the scale; a run draws its capped sample from them).

# %%
# NBVAL_CHECK_OUTPUT

tasks = mtl.load_tasks(config.tasks)
for task in tasks.values():
    print(task)

# %% [markdown]
# ## 2. Model
#
# The encoder plus one head (dense, tanh, dropout, linear) per task; nearly all parameters are shared.
# The picture for this page's tasks (lesson 2 builds it piece by piece):

# %%
mtl.plots.architecture(tasks, {name: task.label_names for name, task in tasks.items()});

# %%
# NBVAL_CHECK_OUTPUT

task_labels = {name: task.label_names for name, task in tasks.items()}
model, tokenizer = mtl.build_model(task_labels, config.model, config.pooling)
model.parameter_counts()

# %% [markdown]
# ## 3. Task sampling
#
# At each step one task is drawn, and that task's next batch goes through the encoder and its head. The
# original tutorial drew a task with probability proportional to its training-set size; other samplers
# give the small task more turns (lesson 3). Each sampler's probabilities, with the full training sets:

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd

full_sizes = {name: task.sizes()["train"] for name, task in tasks.items()}
pd.DataFrame({sampler: mtl.task_probabilities(full_sizes, sampler) for sampler in mtl.SAMPLERS}).T.round(3)

# %%
print(f"this scale samples with {mtl.lessons.describe_sampling(config)}; "
      f"the run below counts how many training tweets each task really got")

# %% [markdown]
# ## 4. Training
#
# `fit` runs the loop: AdamW with warm-up and linear decay, gradient clipping, dev scores for every task
# after every epoch, and the best checkpoint of each task kept. `open_or_train` calls it, or reads the run
# back if this folder already holds it finished (lessons 4 and 5 use the same folder). The history has one
# row per epoch and task: the training loss, the dev loss and scores, and `dev_official`, the task's
# official TweetEval score on dev (macro-F1 for emotion, macro-recall for sentiment), by which each task's
# best epoch is chosen.

# %%
run = mtl.open_or_train(config, mtl.runs_folder() / "multitask")
columns = ["epoch", "task", "train_loss", "dev_loss",
           "dev_accuracy", "dev_macro_f1", "dev_official", "seconds"]
run.history[columns].round(4)

# %%
steps = run.history.groupby("task", sort=False)["train_examples"].sum()
print("training tweets per task over the run: " + ", ".join(f"{task} {count:,} ({count / steps.sum():.0%})"
                                                            for task, count in steps.items()))

# %%

mtl.plots.dev_curves(run.history);

# %% [markdown]
# ## 5. Test, each task with its own best checkpoint
#
# The original tutorial tested the last epoch while meaning to test the best one; here each task is
# tested with the checkpoint of its best dev epoch, beside the majority-class baseline.

# %%
mtl.results_table(run.results).round(4)

# %% [markdown]
# For comparison, the original tutorial on a Tesla K80 (roberta-base, its own sentiment split):
#
# | epoch | emotion dev macro-F1 | sentiment dev macro-F1 |
# |---|---|---|
# | 1 | 0.706 | 0.696 |
# | 3 | 0.747 | 0.725 |
# | 5 | 0.744 | 0.726 |
#
# and emotion test accuracy 0.816, macro-F1 0.782, in 1 h 23 min. (Note that TweetEval's official
# sentiment score is macro-recall, not macro-F1.)
#
# ## 6. Label new tweets
#
# Every head answers, each from its task's best checkpoint:

# %%

new_tweets = ["i love rainy sundays with a good book", "my flight got cancelled AGAIN"]
mtl.predict_run(run.folder, new_tweets).round(3)

# %% [markdown]
# ## Key takeaways
#
# * One encoder, shared by every task, and one small head per task: hard parameter sharing.
# * At each step a sampler picks the task whose batch trains; it decides how much each task is trained.
# * Each task is tested with the checkpoint of its own best dev epoch, beside the majority-class baseline.
#
# **Next:** lesson 1 looks at the data closely.
#
# ## References
#
# * Caruana, R. (1997). Multitask Learning. *Machine Learning*, 28, 41-75.
# * Ruder, S. (2017). An Overview of Multi-Task Learning in Deep Neural Networks. arXiv:1706.05098.
# * Barbieri, F., Camacho-Collados, J., Espinosa Anke, L. and Neves, L. (2020). TweetEval: Unified
#   Benchmark and Comparative Evaluation for Tweet Classification. *Findings of EMNLP 2020*.
# * Mohammad, S., Bravo-Marquez, F., Salameh, M. and Kiritchenko, S. (2018). SemEval-2018 Task 1: Affect
#   in Tweets. *SemEval-2018*.
# * Rosenthal, S., Farra, N. and Nakov, P. (2017). SemEval-2017 Task 4: Sentiment Analysis in Twitter.
#   *SemEval-2017*.
# * Liu, Y. et al. (2019). RoBERTa: A Robustly Optimized BERT Pretraining Approach. arXiv:1907.11692.
# * Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
#   Pre-Trained Transformers. *NeurIPS 2020*.

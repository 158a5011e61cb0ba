# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
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

# %%
# Colab only: install the package and switch on widgets (elsewhere this cell does nothing).
import sys

PACKAGE_URL = "git+https://github.com/OWNER/mtl-tutorial"  # the repository this notebook comes from
if "google.colab" in sys.modules:
    import os, subprocess

    class Stop(Exception):
        _render_traceback_ = lambda self: [str(self)]  # shown as one line; "Run all" stops here

    fix = "set PACKAGE_URL in this cell to git+https://github.com/<owner>/mtl-tutorial, then run it again"
    if "OWNER" in PACKAGE_URL:
        raise Stop(f"The repository of these notebooks is not set: {fix}.")
    print(f"Installing mtl-tutorial[notebooks] from {PACKAGE_URL} ...")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", f"mtl-tutorial[notebooks] @ {PACKAGE_URL}"],
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stderr, file=sys.stderr)
        raise Stop(f"pip could not install mtl-tutorial from {PACKAGE_URL} (its error is above): {fix}.")
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
# ## Choose and train
#
# Pick one or more TweetEval tasks (Ctrl- or Cmd-click for several), the encoder, the task sampler, the
# number of epochs and how many training tweets per task, then press **Train**. After every epoch the
# dev curves of every task are redrawn. On a CPU keep to the packaged MiniLM and a few hundred tweets:
# it trains about 40 tweets a second; `roberta-base` needs a GPU (and the internet, to download it).
#
# Every run is written to `runs/multitask`, replacing the one before once it has finished (a failed or
# interrupted run leaves the previous one whole; the status line says why): **lesson 5 reads that folder.**

# %%

panel = mtl.widgets.training_panel(config, "runs/multitask")
panel

# %% [markdown]
# The next cell does exactly what the Train button does, so that this notebook also trains when it is run
# top to bottom without anyone pressing a button (the curves appear in the panel above).

# %%
run = panel.train()

# %% [markdown]
# ## What came back
#
# `fit` returns the run's folder, its history and its results. The history has one row per epoch and
# task: the training loss of the task's own batches, the dev loss and scores, whether this epoch is the
# task's best so far, and the epoch's speed and share of pad tokens.

# %%
run.history.round(4)

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
# **Things to try:** one task alone (a single-task baseline); `uniform` against `proportional` with
# 3,000 training tweets per task; more epochs, and watch the dev loss turn upwards while the training
# loss keeps falling.

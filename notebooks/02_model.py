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
# # Lesson 2 — The model: one shared encoder, one head per task
#
# **Multi-task learning** (Caruana, 1997) trains several tasks together so that what one task teaches
# the shared representation helps the others: a form of inductive transfer. There are two classic ways
# to share:
#
# * **Hard parameter sharing**: the tasks share the hidden layers and each has its own output layer.
#   One encoder serves every task, so it is pushed towards features useful to all of them.
# * **Soft parameter sharing**: each task keeps its own model, and the models are only *encouraged*
#   to stay alike, e.g. by a penalty on the distance between their weights.
#
# ```
#   hard sharing                              soft sharing
#   emotion head   sentiment head             emotion model ~~~~ sentiment model
#          \         /                          (own encoder)  tied   (own encoder)
#        shared encoder                          by a regulariser on their weights
#            tweet                             tweet               tweet
# ```
#
# Like the original tutorial we build hard sharing: every Transformer layer is shared, and a small
# classification head per task turns the encoder's vector for a tweet into that task's label scores.

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
# **Settings** (one cell decides the scale; here it picks the encoder and the sequence representation):

# %%
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# ## Building it
#
# `mtl.build_model` loads the pre-trained encoder and adds one freshly initialised head per task; it only
# needs each task's label names.

# %%

tasks = mtl.load_tasks(config.tasks)
model, tokenizer = mtl.build_model({name: task.label_names for name, task in tasks.items()}, config.model, config.pooling)
model.heads

# %% [markdown]
# Each head is `dense -> tanh -> dropout -> linear`, the same as BERT's classification head, with weights
# drawn from N(0, 0.02) and zero biases. The heads live in an `nn.ModuleDict` keyed by task name.
#
# ## Where the parameters are

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd

counts = pd.Series(model.parameter_counts())
pd.DataFrame({"parameters": counts, "share": (counts / counts.sum()).round(4)})

# %% [markdown]
# Almost everything is shared: each head adds well under 1% to the encoder. Soft sharing would need a
# whole encoder per task instead:

# %%
shared, heads = counts.iloc[0], counts.iloc[1:].sum()
print(f"hard sharing: {shared + heads:,} parameters")
print(f"one model per task: {len(tasks) * shared + heads:,} parameters")

# %% [markdown]
# ## One forward pass per task
#
# Every input belongs to exactly one task, and the task's name routes the encoder's output to that
# task's head. The same batch of tweets through each head:

# %%
tweets = ["what a beautiful morning, feeling blessed", "stuck in traffic for two hours. furious."]
batch = tokenizer(tweets, padding=True, return_tensors="pt")
for task in model.tasks:
    logits = model(batch["input_ids"], batch["attention_mask"], task)
    print(f"{task:>9}: logits of shape {tuple(logits.shape)} (tweets x {task} labels)")

# %% [markdown]
# `mtl.predict` does the same and turns logits into probabilities. The heads are untrained, so each
# answer is close to uniform: that is what training will change.

# %%

mtl.predict(model, tokenizer, tweets).round(3)

# %% [markdown]
# What does a training step on one task touch? Its loss flows back through its own head and the shared
# encoder; the other heads get no gradient at all.

# %%
import torch
import torch.nn.functional as F

logits = model(batch["input_ids"], batch["attention_mask"], "emotion")
F.cross_entropy(logits, torch.tensor([1, 0])).backward()  # as if the tweets were labelled joy, anger
for name, part in [("encoder", model.encoder), *model.heads.items()]:
    has_gradient = any(p.grad is not None for p in part.parameters())
    print(f"{name:>9}: {'gets a gradient' if has_gradient else 'untouched'}")
model.zero_grad()

# %% [markdown]
# ## One vector per tweet: mean, cls or pooler?
#
# The encoder gives one vector per *token*; a head needs one per *tweet*. Three common choices
# (`pooling` in `TrainConfig`):
#
# * `"mean"`: the average of the tweet's token vectors (pad tokens left out);
# * `"cls"`: the vector of the first token (`[CLS]` in BERT, `<s>` in RoBERTa);
# * `"pooler"`: that first vector passed through the encoder's extra dense + tanh layer,
#   `pooler_output`. The original tutorial used this one. BERT trained its pooler on next-sentence
#   prediction; RoBERTa dropped that task, so fine-tuning is what gives its pooler a meaning.
#
# Before any fine-tuning, which choice already places tweets of similar meaning close together? Cosine
# similarity between four tweets, two happy and two angry:

# %%

tweets = ["what a beautiful morning, feeling blessed", "best day ever, so happy right now",
          "stuck in traffic for two hours. furious.", "i hate it when the train is late again"]
maps = {pooling: mtl.similarities(model.encoder, tokenizer, tweets, pooling) for pooling in ("mean", "cls", "pooler")}
for number, tweet in enumerate(tweets, start=1):
    print(number, tweet)
mtl.plots.similarity_maps(maps);

# %% [markdown]
# The packaged MiniLM was trained as a sentence encoder *with mean pooling*, so its mean vectors already
# put the happy pair (1, 2) and the angry pair (3, 4) closer to each other than to the other pair. Its
# first-token and pooler vectors find every pair alike (cosines of 0.6 to 0.9): they were not trained to
# summarise a sentence. The quick setting therefore uses `"mean"`; the full recipe keeps the tutorial's
# `"pooler"` for RoBERTa. Fine-tuning adapts whichever vector we pick, but a good start helps a small run.
#
# **Next:** lesson 3 decides which task trains at each step.

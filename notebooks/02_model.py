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
# MT-DNN (Liu et al., 2019) shares BERT across the GLUE tasks in the same way.
#
# **You will learn**
#
# * the difference between hard and soft parameter sharing, and how many parameters each needs;
# * to build an encoder with one head per task, and route a batch to its task's head;
# * what a training step on one task changes (its head and the shared encoder, not the other heads);
# * three ways to turn token vectors into one vector per tweet (mean, cls, pooler).
#
# **Assumes** lesson 1 (token ids, attention masks) and the basics of PyTorch modules (`nn.Linear`,
# `forward`). **Takes** under half a minute on a 2-core CPU (17 s measured at the CPU lesson scale, 16 s
# on a GPU, benchmarks/LESSONS.md); nothing trains.

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
# NBVAL_CHECK_OUTPUT

tasks = mtl.load_tasks(config.tasks)
task_labels = {name: task.label_names for name, task in tasks.items()}
model, tokenizer = mtl.build_model(task_labels, config.model, config.pooling)
model.heads

# %% [markdown]
# Each head is `dense -> tanh -> dropout -> linear`, printed above in that order, with weights drawn from
# N(0, 0.02) and zero biases. In BERT (Devlin et al., 2019) the first two are the encoder's *pooler* and
# the last two its classifier; the original tutorial called the whole stack "the classification layer of
# single-task BERT". Its output is the **logits**: one real number per label, the larger the likelier.
# They are not probabilities (they need not be positive or sum to 1); a softmax turns them into
# probabilities, and lesson 4 works through how training uses them. The heads
# live in an `nn.ModuleDict` keyed by task name. The whole model, drawn for this lesson's tasks: at each
# step a sampler (lesson 3) picks one task, and that task's batch goes through the shared encoder and
# then through that task's head only.

# %%
mtl.plots.architecture(model.tasks, model.task_labels);

# %% [markdown]
#
# ## The code
#
# The whole model is two small classes. Here is the package's code exactly as it runs, first the head:

# %%
import inspect

from IPython.display import Code

Code(inspect.getsource(mtl.ClassificationHead), language="python")

# %% [markdown]
# and the forward pass of the multi-task model: the shared encoder reads the batch, one vector is taken per
# tweet (`sequence_representation`, below), and the task's name picks the head that turns it into logits.

# %%
forward_and_pooling = [mtl.MultiTaskModel.forward, mtl.model.sequence_representation]
Code("\n".join(inspect.getsource(code) for code in forward_and_pooling), language="python")

# %% [markdown]
# ## Where the parameters are

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd

counts = pd.Series(model.parameter_counts())
pd.DataFrame({"parameters": counts, "share": (counts / counts.sum()).round(4)})

# %% [markdown]
# Almost everything is shared: each head adds under 1% to the encoder. Soft sharing would need a
# whole encoder per task instead:

# %%
# NBVAL_CHECK_OUTPUT
shared, heads = counts.iloc[0], counts.iloc[1:].sum()
print(f"hard sharing: {shared + heads:,} parameters")
print(f"one model per task: {len(tasks) * shared + heads:,} parameters")

# %% [markdown]
# ## One forward pass per task
#
# Every input belongs to exactly one task, and the task's name routes the encoder's output to that
# task's head. The same batch of tweets through each head:

# %%
# NBVAL_CHECK_OUTPUT
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
# NBVAL_CHECK_OUTPUT
import torch
import torch.nn.functional as F

logits = model(batch["input_ids"], batch["attention_mask"], "emotion")
F.cross_entropy(logits, torch.tensor([1, 0])).backward()  # as if the tweets were labelled joy, anger
for name, part in [("encoder", model.encoder), *model.heads.items()]:
    has_gradient = any(p.grad is not None for p in part.parameters())
    print(f"{name:>9}: {'gets a gradient' if has_gradient else 'untouched'}")
model.zero_grad()

# %% [markdown]
# ## Why sharing helps, and when it hurts
#
# Every task's loss reaches the shared encoder, as the cell above shows. Ruder (2017) lists what a task
# can gain from that:
#
# * **Implicit data augmentation**: the encoder learns from the tweets of every task, more than any one
#   task has, and the noise peculiar to one task's labels averages out.
# * **Attention focusing**: when a task's data are few or noisy, the other tasks give extra evidence of
#   which features matter.
# * **Eavesdropping**: a feature that is hard to learn from one task may be easy to learn from another;
#   once the encoder has it, every head can use it.
# * **Representation bias**: the encoder is pushed towards features that several tasks prefer, which are
#   also more likely to serve a task it has not seen.
# * **Regularisation**: having to serve every task keeps the encoder from fitting the noise of one.
#
# Sharing can also hurt. When the tasks need different features, or their gradients point different
# ways, one task's steps partly undo the other's. This is *task interference*, and when a task ends worse
# than it would alone it is called *negative transfer*. It can be measured: after every epoch the training
# loop records the cosine between the two tasks' gradients on the shared encoder (positive: they pull the
# same way; negative: they conflict), and lesson 5 plots it beside the comparison with single-task models.

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
# With `"pooler"` the head's own dense + tanh comes on top of the pooler's dense + tanh: two such layers
# in a row, as in the original tutorial's recipe. That is redundant (Hugging Face's RoBERTa classifier
# puts a single dense + tanh on the first token's vector instead) but harmless: the pooler's layer is
# part of the encoder anyway, both layers are trained, and the pair simply makes a slightly deeper head.
#
# Before any fine-tuning, which choice already places tweets of similar meaning close together? Cosine
# similarity between four tweets, two happy and two angry:

# %%

tweets = ["what a beautiful morning, feeling blessed", "best day ever, so happy right now",
          "stuck in traffic for two hours. furious.", "i hate it when the train is late again"]
maps = {pooling: mtl.similarities(model.encoder, tokenizer, tweets, pooling)
        for pooling in ("mean", "cls", "pooler")}
for number, tweet in enumerate(tweets, start=1):
    print(number, tweet)
gaps = {}  # per pooling: how much closer the same-mood pairs are than the different-mood pairs
for pooling, table in maps.items():
    values = table.to_numpy()
    gaps[pooling] = (values[0, 1] + values[2, 3]) / 2 - values[:2, 2:].mean()
    print(f"{pooling:>6}: same mood {(values[0, 1] + values[2, 3]) / 2:.2f}, "
          f"different mood {values[:2, 2:].mean():.2f}, gap {gaps[pooling]:+.2f}")
mtl.plots.similarity_maps(maps);

# %% [markdown]
# The lines above the maps give, for each choice, the mean cosine of the same-mood pairs (1, 2 and 3, 4),
# of the different-mood pairs, and the gap between them: the larger the gap, the better that vector
# already separates the moods before any fine-tuning. What you see depends on the encoder in the
# settings. The packaged MiniLM was trained as a sentence encoder *with mean pooling*, so with it `mean`
# usually has the clearest gap, while its first-token and pooler vectors find every pair much alike:
# they were not trained to summarise a sentence. That is why the package's MiniLM settings use `"mean"`,
# while the full recipe keeps the tutorial's `"pooler"` for RoBERTa. Fine-tuning adapts whichever vector
# we pick, but a good start helps a small run.
#
# ## Exercises
#
# Write the three pieces of the model yourself. Replace each `raise NotImplementedError` with your code
# and run the cell: the check runs your code and the package's on real tweets (through the pre-trained
# MiniLM) and says what is right or wrong. The hidden cell after each exercise holds a solution.
#
# **Exercise 1: mean pooling.** From the encoder's `last_hidden_state` `(tweets, tokens, hidden)` and the
# `attention_mask` `(tweets, tokens)`, return one vector per tweet `(tweets, hidden)`: the mean of its
# *real* tokens (pads left out).

# %%
def mean_pool(last_hidden_state, attention_mask):
    """The mean of each tweet's real token vectors: (tweets, tokens, hidden) -> (tweets, hidden)."""
    raise NotImplementedError("zero the pads with the mask, sum over tokens, divide by the real count")


mtl.exercises.check_mean_pooling(mean_pool)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def mean_pool(last_hidden_state, attention_mask):
    """The mean of each tweet's real token vectors: (tweets, tokens, hidden) -> (tweets, hidden)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (tweets, tokens, 1)
    return (last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)


mtl.exercises.check_mean_pooling(mean_pool)

# %% [markdown]
# **Exercise 2: the classification head.** A module `Head(hidden_size, num_labels, dropout)`:
# dense (hidden -> hidden), tanh, dropout, output layer (hidden -> labels), with weights drawn from
# N(0, 0.02) and zero biases.

# %%
from torch import nn


class Head(nn.Module):
    """dense -> tanh -> dropout -> linear, weights from N(0, 0.02), zero biases."""

    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        raise NotImplementedError("make the two linear layers and the dropout, then initialise the weights")

    def forward(self, features):
        raise NotImplementedError


mtl.exercises.check_head(Head)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
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
# **Exercise 3: the forward pass, routed by task.** Write `MultiTaskModel.forward` as a function of the model
# (`self`): run the shared encoder `self.encoder`, take one vector per tweet with
# `mtl.model.sequence_representation(outputs, attention_mask, self.pooling)`, and return the logits of the
# head of `task`, `self.heads[task]`. A task without a head must raise an error.

# %%
def forward(self, input_ids, attention_mask, task):
    """Logits of `task`'s head for a batch of that task's tweets."""
    raise NotImplementedError("encoder, then one vector per tweet, then the task's own head")


mtl.exercises.check_forward(forward)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
# Solution
def forward(self, input_ids, attention_mask, task):
    """Logits of `task`'s head for a batch of that task's tweets."""
    outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
    return self.heads[task](mtl.model.sequence_representation(outputs, attention_mask, self.pooling))


mtl.exercises.check_forward(forward)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
shared_share = counts.iloc[0] / counts.sum()
clearest = max(gaps, key=gaps.get)
mtl.widgets.quiz([
    Question("What share of the model's parameters is shared by the tasks?",
             ["about half", "about 90%", "about 99%"],  # MiniLM 98.7%, roberta-base 99.1%
             "about 99%" if shared_share > 0.97 else "about 90%" if shared_share > 0.8 else "about half",
             f"The encoder holds {shared_share:.2%} of them; each head is a dense and an output layer."),
    Question("After backward() on an emotion batch's loss, which parts had a gradient?",
             ["only the emotion head", "the encoder and the emotion head", "the encoder and both heads"],
             "the encoder and the emotion head",
             "The loss flows back through its own head and the shared encoder; the sentiment head is "
             "untouched."),
    Question("How many logits does the sentiment head give for each tweet?", ["2", "3", "4"],
             str(len(tasks["sentiment"].label_names)),
             f"One per label: {', '.join(tasks['sentiment'].label_names)}."),
    Question("Before fine-tuning, which sequence representation best separated the happy pair from the angry "
             "pair?", list(maps), clearest,
             "Same-mood pairs minus different-mood pairs, in cosine: "
             + ", ".join(f"{pooling} {gap:+.2f}" for pooling, gap in gaps.items()) + "."),
])

# %% [markdown]
# ## Key takeaways
#
# * Hard sharing: one encoder for every task, one small head per task; nearly all parameters are shared.
# * The task's name routes a batch to its head; a step on one task changes that head and the encoder only.
# * A head returns logits, one per label; a softmax turns them into probabilities.
# * The sequence representation (mean, cls, pooler) matters most for a short run: use the one the encoder
#   was trained with where it has one (mean for the packaged MiniLM); RoBERTa's pooler was never
#   pre-trained, and the full recipe keeps it only because the tutorial did.
#
# **Next:** lesson 3 decides which task trains at each step.

# %% [markdown]
# ## References
#
# * Caruana, R. (1997). Multitask Learning. *Machine Learning*, 28, 41-75.
# * Ruder, S. (2017). An Overview of Multi-Task Learning in Deep Neural Networks. arXiv:1706.05098.
# * Liu, X., He, P., Chen, W. and Gao, J. (2019). Multi-Task Deep Neural Networks for Natural Language
#   Understanding. *ACL 2019*.
# * Devlin, J., Chang, M.-W., Lee, K. and Toutanova, K. (2019). BERT: Pre-training of Deep Bidirectional
#   Transformers for Language Understanding. *NAACL 2019*.
# * Liu, Y. et al. (2019). RoBERTa: A Robustly Optimized BERT Pretraining Approach. arXiv:1907.11692.
# * Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
#   Pre-Trained Transformers. *NeurIPS 2020*.

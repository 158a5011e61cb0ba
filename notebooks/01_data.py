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
# # Lesson 1 — The data: two tasks, one kind of text
#
# We teach one encoder two tweet classification tasks at once. Both come from SemEval shared tasks and
# are distributed together, with fixed splits, in the **TweetEval** benchmark (Barbieri et al., 2020):
#
# | task | source | labels |
# |---|---|---|
# | `emotion` | SemEval-2018 Task 1 (Affect in Tweets) | anger, joy, optimism, sadness |
# | `sentiment` | SemEval-2017 Task 4A (Sentiment in Twitter) | negative, neutral, positive |
#
# In this lesson we look at the data before any model sees it: how much there is, how the labels are
# spread, what a tokenizer turns a tweet into, and how much work padding wastes.
#
# **You will learn**
#
# * where the two tasks come from, how large their splits are and how unbalanced their labels;
# * why TweetEval scores emotion by macro-F1 and sentiment by macro-recall, and what the majority-class
#   baseline is;
# * what a tokenizer turns a tweet into, and how long tweets are in tokens;
# * how padding per batch, and grouping tweets by length, save most of the work of padding to 64.
#
# **Assumes** Python and pandas; no machine learning yet. **Takes** about half a minute on a 2-core CPU
# (27 s measured at the CPU lesson scale, 20 s on a GPU, benchmarks/LESSONS.md); nothing trains.

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
# **Settings.** One cell decides the scale of every lesson (gpu: the original tutorial's recipe; cpu: a
# lesson scale for a laptop; ci: a smoke test, see lesson 0). This lesson reads the data whole whatever
# the scale; only the tokenizer it uses depends on it.

# %%
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# ## The splits
#
# `mtl.load_tasks` finds each task by its TweetEval name: in `MTL_TUTORIAL_DATA_DIR` if set, else downloaded
# once from the `cardiffnlp/tweeteval` repository and checked against known SHA-256 sums.

# %%
# NBVAL_CHECK_OUTPUT

tasks = mtl.load_tasks(config.tasks)
for task in tasks.values():
    print(task)

# %% [markdown]
# The cell above prints each split's size: the two tasks differ in size by a factor of 14, about 3k
# emotion tweets against 46k sentiment tweets (the data are the same whatever the settings). That
# imbalance is the reason for lesson 3. (The original tutorial used its own split of the
# sentiment data, 42,756 / 4,751 / 12,284; TweetEval's dev set is smaller, 2,000 tweets.)
#
# Each split is a plain DataFrame of texts and label ids:

# %%
# NBVAL_CHECK_OUTPUT
emotion = tasks["emotion"]
print(emotion.label_names)
emotion.splits["train"].head()

# %% [markdown]
# ## How the labels are spread

# %%

mtl.plots.label_distribution(tasks, "train");

# %% [markdown]
# Neither task is balanced: anger is the commonest emotion and optimism the rarest; neutral is the commonest
# sentiment label (45% of the training tweets), positive close behind. A classifier that always answers the
# commonest label already gets a decent *accuracy*, which is why TweetEval scores emotion by **macro-F1** and
# sentiment by **macro-recall**: both average over the labels, so every label counts the same.
#
# The test split need not look like the training split. In sentiment's training data positive tweets
# outnumber negative ones 2.5 to 1; in its test data (collected later, for the 2017 evaluation) it is the
# other way round:

# %%
mtl.plots.label_distribution(tasks, "test");

# %% [markdown]
# A model that learnt "positive is common" pays for it on test. Keep that in mind when reading
# sentiment's test scores in lesson 5.

# %% [markdown]
# ## What the tokenizer does to a tweet
#
# The encoder never sees characters, only token ids from its own vocabulary. We load the tokenizer that
# goes with the settings' encoder.

# %%
# NBVAL_CHECK_OUTPUT

encoder, tokenizer = mtl.load_encoder(config.model)
tweet = "@user can't believe it's snowing AGAIN in april 😩 #spring"
print(tokenizer.tokenize(tweet))

# %% [markdown]
# The cell above prints the pieces this lesson's tokenizer makes. Words it knows stay whole; rarer words
# are cut into pieces. MiniLM's WordPiece marks a continuation with `##`; it lower-cases everything and
# has no emoji in its vocabulary, so 😩 becomes `[UNK]`. RoBERTa's byte-level BPE marks a word start with
# `Ġ` and reads the emoji's bytes instead. TweetEval already replaced user names with `@user`.
#
# The ids add the sequence markers the encoder was pre-trained with:

# %%
# NBVAL_CHECK_OUTPUT
ids = tokenizer(tweet)["input_ids"]
print(ids)
print(tokenizer.decode(ids))

# %% [markdown]
# ## How long tweets are, in tokens
#
# `mtl.encode_task` tokenises every split once, cutting at `max_length` tokens but not padding.

# %%

encoded = {name: mtl.encode_task(tokenizer, task, config.max_length) for name, task in tasks.items()}
lengths = {name: splits["train"].lengths() for name, splits in encoded.items()}
mtl.plots.token_lengths(lengths, config.max_length);

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd

for name, values in lengths.items():
    values = pd.Series(values)
    cut = (values >= config.max_length).mean()
    print(f"{name}: median {values.median():.0f} tokens, 95% of tweets at most {values.quantile(0.95):.0f}; "
          f"{cut:.1%} reach max_length = {config.max_length} and lose their end")
summary = {name: pd.Series(values).describe(percentiles=[0.5, 0.95]) for name, values in lengths.items()}
pd.DataFrame(summary).round(1)

# %% [markdown]
# Each task's bars add up to 1 (the y-axis is the share of the task's tweets, not a count), so the small
# emotion set is as visible as the big sentiment set. The cell above prints each task's median length and
# 95th percentile in tokens, and the share of tweets that reach `max_length`: only those lose their end,
# so when that share is small the limit cuts almost nothing. The numbers depend on the tokenizer: one
# that cuts words into more pieces makes the same tweets longer.
#
# ## Padding: per batch, or everything to 64?
#
# A batch is a rectangle, so shorter tweets are filled with pad tokens and an attention mask tells the
# encoder to ignore them. Here are three tweets padded to the longest of the three:

# %%
# NBVAL_CHECK_OUTPUT

batch = mtl.pad_batch(encoded["emotion"]["train"].input_ids[:3], tokenizer.pad_token_id)
print(batch["input_ids"])
print(batch["attention_mask"])

# %% [markdown]
# The encoder still computes every pad position, so padding is wasted work. The original tutorial padded
# every tweet to 64 tokens. Padding each batch to its own longest tweet wastes less, and grouping tweets
# of similar length into a batch (still in random order) wastes almost nothing:

# %%
# NBVAL_CHECK_OUTPUT
waste = {name: mtl.padding_waste(values, config.batch_size, config.max_length)
         for name, values in lengths.items()}
pd.DataFrame(waste).round(3)

# %%
mtl.plots.pad_fractions(waste);

# %% [markdown]
# The table and the bars give the share of pad tokens for each way of padding, per task. Padding every
# tweet to `max_length` wastes the most, random batches padded to their longest tweet less, and
# length-grouped batches, where the tweets of a batch are about as long as each other, almost nothing.
# The package tokenises once,
# pads per batch and groups by length by default (`TrainConfig.group_by_length`).
#
# ## Exercises
#
# Now you write three pieces of this lesson yourself. Each cell holds a function that is not written yet:
# replace its `raise NotImplementedError` with your code and run the cell. The check under it runs your
# function and the package's own on real TweetEval tweets and says, in words, what is right or wrong.
# The hidden cell after each exercise holds a solution (in JupyterLab, click the "…" to open it; Colab
# shows it): it fills the function in and runs the same check.
#
# **Exercise 1: tokenise a split once.** Turn a list of tweets into one list of token ids per tweet, with
# the encoder's markers, cut at `max_length` tokens and *not* padded (padding comes later, per batch).

# %%
def encode_tweets(tokenizer, texts, max_length):
    """One list of token ids per tweet: [CLS] ... [SEP], at most max_length ids, no padding."""
    raise NotImplementedError("call the tokenizer once on all the texts")


mtl.exercises.check_encode(encode_tweets)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def encode_tweets(tokenizer, texts, max_length):
    """One list of token ids per tweet: [CLS] ... [SEP], at most max_length ids, no padding."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


mtl.exercises.check_encode(encode_tweets)

# %% [markdown]
# **Exercise 2: pad a batch to its own longest tweet.** A PyTorch `DataLoader` calls a *collate function*
# to turn a list of examples into one batch. Each example is `{"input_ids": [...], "label": int}`. Return
# `input_ids` and `attention_mask` as `(tweets, longest tweet)` tensors of integers, padded on the right
# with `pad_id` (mask 1 on tokens, 0 on pads), and the `labels` as a tensor.

# %%
import torch


def collate(examples, pad_id):
    """Pad a batch to its longest tweet: {"input_ids", "attention_mask", "labels"}, all torch.long."""
    raise NotImplementedError("find the longest tweet, then fill a (tweets x longest) tensor with pad_id")


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
# **Exercise 3: the majority-class baseline.** The floor every model must beat: always answer the commonest
# label *of the training set*. Return its test accuracy and its test macro-F1 (`sklearn.metrics.f1_score`
# with `average="macro"` and `labels=list(range(num_labels))`).

# %%
from sklearn.metrics import accuracy_score, f1_score


def majority_baseline(train_labels, test_labels, num_labels):
    """{"accuracy": ..., "macro_f1": ...} on test of always predicting the commonest training label."""
    raise NotImplementedError("find the commonest training label, predict it for every test tweet, score it")


mtl.exercises.check_majority_baseline(majority_baseline)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def majority_baseline(train_labels, test_labels, num_labels):
    """{"accuracy": ..., "macro_f1": ...} on test of always predicting the commonest training label."""
    commonest = pd.Series(train_labels).mode()[0]
    predictions = [commonest] * len(test_labels)
    return {"accuracy": accuracy_score(test_labels, predictions),
            "macro_f1": f1_score(test_labels, predictions, labels=list(range(num_labels)), average="macro")}


mtl.exercises.check_majority_baseline(majority_baseline)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
emotion_counts = tasks["emotion"].splits["train"]["label"].value_counts()
rarest = emotion.label_names[emotion_counts.idxmin()]
sentiment = tasks["sentiment"]
sentiment_test = sentiment.splits["test"]["label"].map(dict(enumerate(sentiment.label_names)))
negative, positive = (sentiment_test == "negative").sum(), (sentiment_test == "positive").sum()
to_64 = pd.DataFrame(waste)["emotion"].iloc[0]  # the first way: every tweet padded to max_length
emoji_tokens = tokenizer.tokenize("😩")
unknown = emoji_tokens == [tokenizer.unk_token]
emoji_becomes = "[UNK], an unknown token" if unknown else "several pieces of its bytes"
mtl.widgets.quiz([
    Question("Which emotion label is the rarest in the training data?", emotion.label_names, rarest,
             f"Only {emotion_counts.min():,} of {emotion_counts.sum():,} training tweets are {rarest}."),
    Question("In sentiment's TEST split, which label is more common?", ["negative", "positive"],
             "negative" if negative > positive else "positive",
             "The test tweets were collected later than the training tweets, and their mix differs: "
             f"{negative:,} negative, {positive:,} positive."),
    Question("What does this lesson's tokenizer make of the emoji 😩?",
             ["[UNK], an unknown token", "several pieces of its bytes", "the word 'weary'"], emoji_becomes,
             f"It gave {emoji_tokens}: each tokenizer has its own vocabulary."),
    Question(f"Padding every emotion tweet to {config.max_length} tokens: what share of the encoder's work "
             "goes to pads?",
             ["less than 10%", "about a quarter", "more than half"],
             "more than half" if to_64 > 0.5 else "about a quarter" if to_64 > 0.15 else "less than 10%",
             f"{to_64:.0%} of the tokens are pads, and a pad costs as much compute as a real token."),
    Question("Why does TweetEval score emotion by macro-F1 rather than accuracy?",
             ["it is faster to compute", "every label counts the same, however rare it is",
              "accuracy cannot be computed for four labels"],
             "every label counts the same, however rare it is",
             "Always answering the commonest label gets a decent accuracy but a poor macro-F1 (exercise 3)."),
])

# %% [markdown]
# ## Key takeaways
#
# * Emotion has 3,257 training tweets and sentiment 45,615: a factor of 14, the problem of lesson 3.
# * Both tasks are unbalanced, and sentiment's test split is mixed differently from its training split;
#   macro-F1 and macro-recall count every label the same, and the majority-class baseline is the floor.
# * The encoder reads token ids from its own vocabulary, with the markers it was pre-trained with.
# * Tokenise each split once, pad each batch to its longest tweet, and group tweets of similar length.
#
# **Next:** lesson 2 builds the model that reads these batches.

# %% [markdown]
# ## References
#
# * Barbieri, F., Camacho-Collados, J., Espinosa Anke, L. and Neves, L. (2020). TweetEval: Unified
#   Benchmark and Comparative Evaluation for Tweet Classification. *Findings of EMNLP 2020*.
# * Mohammad, S., Bravo-Marquez, F., Salameh, M. and Kiritchenko, S. (2018). SemEval-2018 Task 1: Affect
#   in Tweets. *SemEval-2018*.
# * Rosenthal, S., Farra, N. and Nakov, P. (2017). SemEval-2017 Task 4: Sentiment Analysis in Twitter.
#   *SemEval-2017*.
# * Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
#   Pre-Trained Transformers. *NeurIPS 2020*.
# * Liu, Y. et al. (2019). RoBERTa: A Robustly Optimized BERT Pretraining Approach. arXiv:1907.11692.

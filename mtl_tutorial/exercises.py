"""Exercises for lessons 1-6: you write one piece of the pipeline, a check runs it against the package.

Each `check_...` function takes your function (or class), runs it and the package's own version on real
TweetEval tweets, and returns a `Verdict`: passed or not, and in plain words what is right or wrong. Read a
check's source to see what it tries: the checks are written to be read. A check never changes the global
random generators of your notebook.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import math
import random
import traceback
import types
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel, get_linear_schedule_with_warmup

from .batching import batches_per_pass, encode, pad_batch
from .combine import mgda_pair, pcgrad_pair, uncertainty_weighted_loss
from .config import TrainConfig
from .conflict import encoder_gradient
from .data import Task, load_task
from .metrics import confusion_table, majority_baseline, official_score
from .model import (ClassificationHead, MultiTaskModel, load_encoder, packaged_encoder_path,
                    sequence_representation)
from .sampling import passes_per_epoch, task_probabilities
from .train import make_optimizer, train_step

RECORDED_HISTORY = Path(__file__).with_name("recorded") / "history_5_epochs.csv"


# ---------------------------------------------------------------------------------------------
# Verdicts, and running a student's code without ever showing a traceback
# ---------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The answer of a check: did your code pass, and what is right or wrong with it, in words."""

    exercise: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{'✅ passed' if self.passed else '❌ not yet'}: {self.exercise}\n{self.message}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        mark = "✅ **Passed**" if self.passed else "❌ **Not yet**"
        return f"{mark}: {self.exercise}\n\n{self.message}"


class Wrong(Exception):
    """Raised inside a check when the student's code is wrong; its message becomes the verdict."""


def exercise(title: str):
    """Turn a check into one that returns a Verdict: its return value is the praise, a `Wrong` the diagnosis.

    The check runs on a copy of torch's random state: the seeds it sets leave the notebook's draws alone."""

    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs) -> Verdict:
            try:
                with torch.random.fork_rng(devices=[]):
                    return Verdict(title, True, check(*args, **kwargs))
            except Wrong as wrong:
                return Verdict(title, False, str(wrong))

        return run

    return decorate


HINTS = {  # words in an error message -> what the student probably did
    "out of bounds": "a label is larger than the number of logits: did you use another task's head?",
    "shapes cannot be multiplied": "a layer got a vector of the wrong size: check its sizes",
    "does not require grad": "the loss has no gradient: was it computed under torch.no_grad() or detached?",
    "has no attribute": "an object has no such attribute: check the name against the lesson's code",
}


def call(function, *args, **kwargs):
    """Run the student's `function`; if it raises, make the error a verdict that names it and its line."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # any error of the student's code becomes words, never a traceback
        message = f"your function raised {error.__class__.__name__}: {error}"
        if isinstance(error, NotImplementedError):
            raise Wrong(message + "\n(replace the `raise NotImplementedError` with your code)") from None
        message += where(error, function)
        hint = next((hint for words, hint in HINTS.items() if words in str(error)), None)
        raise Wrong(message + (f"\nHint: {hint}" if hint else "")) from None


def where(error: Exception, function) -> str:
    """'(in your code, line N: `...`)': the last line of the student's own code in the error's traceback."""
    code = getattr(function, "__code__", None) or getattr(getattr(function, "__init__", None), "__code__", 0)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if code and frame.filename == code.co_filename]
    if not frames or not frames[-1].line:
        return ""
    return f"\n(in your code, line {frames[-1].lineno}: `{frames[-1].line.strip()}`)"


def as_number(value, what: str = "your function") -> float:
    """A returned score or loss as a float: a Python number, a NumPy scalar or a one-element tensor."""
    if value is None:
        raise Wrong(f"{what} returned None: did you forget `return`?")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Wrong(f"{what} returned a tensor of shape {tuple(value.shape)}; it should give one number")
        return float(value.detach())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Wrong(f"{what} returned a {type(value).__name__}, not a number") from None


def as_tensor(value, what: str) -> torch.Tensor:
    if value is None:
        raise Wrong(f"{what} is None: did you forget `return`?")
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"{what} is a {type(value).__name__}, not a torch tensor: make one with "
                    "torch.tensor(...)")
    return value


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)


def same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-6)


def name_the_mistake(answer, mistakes: list[tuple[object, str]], equal) -> str:
    """The explanation of the first typical wrong answer (value, explanation) that `answer` equals, or ""."""
    return next((": " + explanation for value, explanation in mistakes if equal(answer, value)), "")


# ---------------------------------------------------------------------------------------------
# Real data for the checks: TweetEval tweets, the packaged MiniLM and a tiny model
# ---------------------------------------------------------------------------------------------


@functools.cache
def task(name: str, data_dir: str | None = None) -> Task:
    """A TweetEval task, loaded once (from `data_dir`, MTL_TUTORIAL_DATA_DIR, or the download cache)."""
    return load_task(name, data_dir=data_dir)


@functools.lru_cache(maxsize=1)
def tokenizer():
    """The packaged MiniLM's tokenizer (offline)."""
    return AutoTokenizer.from_pretrained(packaged_encoder_path())


@functools.lru_cache(maxsize=1)
def pretrained_encoder():
    """The packaged pre-trained MiniLM encoder, in eval mode; the checks only read it."""
    encoder, _ = load_encoder()
    return encoder.eval()


def token_ids(name: str, count: int, data_dir: str | None = None, split: str = "train",
              max_length: int = 64) -> tuple[list[list[int]], list[int]]:
    """The first `count` tweets of a split, tokenised by MiniLM's tokenizer: (ids per tweet, labels)."""
    frame = task(name, data_dir).splits[split].head(count)
    encoded = encode(tokenizer(), frame, max_length)
    return encoded.input_ids, encoded.labels


def real_batch(name: str, start: int, count: int, data_dir: str | None = None) -> dict:
    """`count` training tweets of a task from `start`, padded per batch as the package does."""
    ids, labels = token_ids(name, start + count, data_dir)
    return pad_batch(ids[start:], tokenizer().pad_token_id, labels[start:])


@functools.cache
def word_model_predictions(name: str, data_dir: str | None = None) -> tuple[tuple[int, ...], ...]:
    """(true labels, predictions) on a task's test split of a one-second classifier: tf-idf words and
    logistic regression trained on 3,000 training tweets. Real predictions with real mistakes."""
    splits = task(name, data_dir).splits
    train, test = splits["train"].head(3000), splits["test"]
    words = TfidfVectorizer(min_df=2, ngram_range=(1, 2))
    classifier = LogisticRegression(max_iter=1000).fit(words.fit_transform(train["text"]), train["label"])
    return tuple(test["label"].tolist()), tuple(classifier.predict(words.transform(test["text"])).tolist())


def majority_predictions(name: str, data_dir: str | None = None) -> tuple[list[int], list[int]]:
    """(true test labels, always the commonest training label): a model that learnt nothing else."""
    splits = task(name, data_dir).splits
    commonest = splits["train"]["label"].mode()[0]
    return splits["test"]["label"].tolist(), [int(commonest)] * len(splits["test"])


def tiny_model(task_labels: dict[str, list[str]]) -> MultiTaskModel:
    """A 2-layer, 32-wide random BERT with MiniLM's vocabulary and one head per task, without dropout,
    always the same (seeded): small enough that a check trains it in a blink, exactly reproducibly."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return MultiTaskModel(BertModel(config), task_labels, pooling="mean", dropout=0.0)


# ---------------------------------------------------------------------------------------------
# Lesson 1: the data
# ---------------------------------------------------------------------------------------------


@exercise("Lesson 1, exercise 1: tokenise a split once")
def check_encode(encode_tweets, data_dir: str | None = None) -> str:
    """`encode_tweets(tokenizer, texts, max_length) -> list of token-id lists`: truncated, not padded."""
    max_length = 24  # shorter than many tweets, so that truncation shows
    texts = task("emotion", data_dir).splits["train"]["text"].head(64).tolist()
    expected = encode(tokenizer(), pd.DataFrame({"text": texts, "label": 0}), max_length).input_ids
    answer = call(encode_tweets, tokenizer(), texts, max_length)
    if hasattr(answer, "keys"):
        raise Wrong("you returned the tokenizer's whole output (a dict with input_ids, attention_mask, ...): "
                    "return only its list of input_ids")
    if isinstance(answer, torch.Tensor):
        raise Wrong(f"you returned a tensor of shape {tuple(answer.shape)}: a tensor needs every tweet "
                    "padded to one length. Return one list of ids per tweet, and pad later, per batch")
    answer = [list(ids) for ids in answer]
    if len(answer) != len(texts):
        raise Wrong(f"you returned {len(answer)} sequences for {len(texts)} tweets")
    if len({len(ids) for ids in answer}) == 1:
        raise Wrong(f"every tweet came back {len(answer[0])} tokens long: you padded at tokenisation time. "
                    "Padding belongs in the batch (the lesson's padding section): leave padding off here")
    for row, (ids, right) in enumerate(zip(answer, expected)):
        if len(ids) > max_length:
            raise Wrong(f"tweet {row} has {len(ids)} tokens, more than max_length={max_length}: pass "
                        "truncation=True and max_length to the tokenizer")
        if ids != right:
            markers = tokenizer().cls_token_id in ids and tokenizer().sep_token_id in ids
            raise Wrong(f"tweet {row} ({texts[row]!r}) should be {right}, you gave {ids}" + (
                "" if markers else f": your ids lack the markers {tokenizer().cls_token} and "
                                   f"{tokenizer().sep_token} that the encoder was pre-trained with (keep "
                                   "add_special_tokens=True)"))
    lengths = [len(ids) for ids in expected]
    return (f"{len(texts)} emotion tweets, from {min(lengths)} to {max(lengths)} tokens (cut at "
            f"{max_length}), each starting with {tokenizer().cls_token} and ending with "
            f"{tokenizer().sep_token}, no padding.")


@exercise("Lesson 1, exercise 2: pad a batch to its own longest tweet")
def check_collate(collate, data_dir: str | None = None) -> str:
    """`collate(examples, pad_id) -> {"input_ids", "attention_mask", "labels"}`, each example a dict
    {"input_ids": [...], "label": int}: the batch is as wide as its longest tweet, padded on the right."""
    ids, labels = token_ids("emotion", 25, data_dir)
    batches = [(0, 8), (8, 24), (24, 25)]  # 8 tweets, 16 tweets, a single tweet
    widths = []
    for pad_id, whose in ((tokenizer().pad_token_id, "MiniLM's"), (1, "RoBERTa's")):
        for start, stop in batches:
            examples = [{"input_ids": list(ids[i]), "label": labels[i]} for i in range(start, stop)]
            expected = pad_batch(ids[start:stop], pad_id, labels[start:stop])
            compare_batches(call(collate, examples, pad_id), expected, ids[start:stop], pad_id, whose)
            widths.append(expected["input_ids"].shape[1])
    return (f"batches of 8, 16 and 1 tweets came back {widths[0]}, {widths[1]} and {widths[2]} tokens wide, "
            "each its own longest tweet (not 64); pads on the right with the tokenizer's pad id (0 for "
            "MiniLM, 1 for RoBERTa); the mask is 1 on tokens and 0 on pads; the labels in the examples' "
            "order.")


def compare_batches(answer, expected: dict, sequences: list[list[int]], pad_id: int, whose: str) -> None:
    """Explain the first difference between a student's padded batch and `pad_batch`'s."""
    if not isinstance(answer, dict):
        raise Wrong(f"your collate returned a {type(answer).__name__}; return a dict with the keys "
                    "'input_ids', 'attention_mask' and 'labels'")
    missing = [key for key in expected if key not in answer]
    if missing:
        raise Wrong(f"your batch has no {', '.join(map(repr, missing))} (its keys: "
                    f"{', '.join(map(repr, answer))})")
    for key in expected:
        if as_tensor(answer[key], f"your batch's {key!r}").dtype != torch.long:
            raise Wrong(f"{key!r} holds {answer[key].dtype}; it must hold integers (torch.long): the "
                        "embedding layer looks ids up by number, and cross-entropy wants class numbers")
    size, width = expected["input_ids"].shape
    got = answer["input_ids"]
    if got.dim() != 2 or got.shape[0] != size:
        raise Wrong(f"input_ids has shape {tuple(got.shape)}; for {size} tweets it should be ({size}, "
                    f"{width})")
    if got.shape[1] > width:
        raise Wrong(f"your batch is padded to {got.shape[1]}, not to its longest tweet ({width}): every "
                    f"column after the {width}th is pure padding, computed for nothing")
    if got.shape[1] < width:
        raise Wrong(f"your batch is {got.shape[1]} tokens wide, but its longest tweet has {width}: you cut "
                    "tweets short")
    if not torch.equal(got, expected["input_ids"]):
        left = torch.stack([torch.tensor([pad_id] * (width - len(ids)) + ids) for ids in sequences])
        if torch.equal(got, left):
            raise Wrong("you padded on the left: put each tweet's ids first and the pads after them")
        row = next(r for r in range(size) if not torch.equal(got[r], expected["input_ids"][r]))
        length = len(sequences[row])
        if torch.equal(got[row, :length], expected["input_ids"][row, :length]):
            raise Wrong(f"the pad positions of row {row} hold {sorted(set(got[row, length:].tolist()))}, not "
                        f"the pad id {pad_id} you were given ({whose} pad id is {pad_id}): fill with "
                        "`pad_id`")
        raise Wrong(f"row {row} does not start with its tweet's ids {sequences[row]}: it starts with "
                    f"{got[row, :length].tolist()}")
    mask, right_mask = answer["attention_mask"], expected["attention_mask"]
    if mask.shape != right_mask.shape:
        raise Wrong(f"attention_mask has shape {tuple(mask.shape)}; like input_ids it should be "
                    f"{tuple(right_mask.shape)}")
    if not torch.equal(mask, right_mask):
        if torch.equal(mask, 1 - right_mask):
            raise Wrong("your attention mask is inverted: it must be 1 on real tokens and 0 on pads")
        if bool((mask == 1).all()):
            raise Wrong("your attention mask is 1 on the pad positions too: the encoder would attend to the "
                        "pads, and a tweet's vector would change with the width of its batch")
        raise Wrong("your attention mask is not 1 on tokens and 0 on pads: row 0 should be "
                    f"{right_mask[0].tolist()}, it is {mask[0].tolist()}")
    if not torch.equal(answer["labels"].flatten(), expected["labels"]):
        raise Wrong(f"the labels should be {expected['labels'].tolist()} (the examples' labels, in order), "
                    f"not {answer['labels'].flatten().tolist()}")


@exercise("Lesson 1, exercise 3: the majority-class baseline")
def check_majority_baseline(majority_baseline_of, data_dir: str | None = None) -> str:
    """`majority_baseline_of(train_labels, test_labels, num_labels) -> {"accuracy": ..., "macro_f1": ...}`:
    the test scores of always answering the commonest TRAINING label."""
    found = []
    for name in ("emotion", "sentiment"):
        current = task(name, data_dir)
        train, test = current.splits["train"]["label"].tolist(), current.splits["test"]["label"].tolist()
        expected = majority_baseline(name, train, test, current.num_labels)
        answer = call(majority_baseline_of, train, test, current.num_labels)
        if not isinstance(answer, dict) or not {"accuracy", "macro_f1"} <= set(answer):
            raise Wrong("return a dict with two numbers, {'accuracy': ..., 'macro_f1': ...}")
        accuracy, macro_f1 = (as_number(answer[key], f"your {key!r}") for key in ("accuracy", "macro_f1"))
        if accuracy > 1 or macro_f1 > 1:
            raise Wrong(f"your {name} scores are {accuracy:.4g} and {macro_f1:.4g}: give fractions between 0 "
                        "and 1, not percents")
        counts = Counter(train).most_common()
        commonest, rarest, test_commonest = counts[0][0], counts[-1][0], Counter(test).most_common(1)[0][0]
        if not same_number(accuracy, expected["accuracy"]):
            mistake = name_the_mistake(accuracy, [
                (accuracy_score(test, [0] * len(test)),
                 f"you predicted label 0 ({current.label_names[0]}), not the commonest training label"),
                (accuracy_score(test, [rarest] * len(test)), "you predicted the RAREST training label"),
                (accuracy_score(test, [test_commonest] * len(test)),
                 ("you took the commonest label of the TEST set: a baseline may only learn from the training "
                  "set")),
            ], same_number)
            raise Wrong(f"{name}: your accuracy is {accuracy:.4f}, it should be {expected['accuracy']:.4f}"
                        + mistake)
        if not same_number(macro_f1, expected["macro_f1"]):
            predictions, labels = [commonest] * len(test), list(range(current.num_labels))
            mistake = name_the_mistake(macro_f1, [
                (expected["accuracy"],
                 "that is the accuracy (= micro-F1): macro-F1 is the plain mean of each label's F1"),
                (f1_score(test, predictions, labels=labels, average="weighted", zero_division=0),
                 ("you weighted each label's F1 by its frequency (average='weighted'); macro weighs every "
                  "label the same")),
                (f1_score(test, predictions, labels=[commonest], average="macro"),
                 ("that is the F1 of the one label you predict; macro-F1 averages over ALL the labels, and a "
                  "label never predicted has F1 = 0 (pass labels=list(range(num_labels)))")),
            ], same_number)
            raise Wrong(f"{name}: your macro-F1 is {macro_f1:.4f}, it should be {expected['macro_f1']:.4f}"
                        + mistake)
        found.append(f"{name}: always {current.label_names[commonest]!r} gets accuracy {accuracy:.3f} but "
                     f"macro-F1 only {macro_f1:.3f}")
    return "; ".join(found) + ". Accuracy flatters a model that ignores the rare labels; macro-F1 does not."


# ---------------------------------------------------------------------------------------------
# Lesson 2: the model
# ---------------------------------------------------------------------------------------------


def encoder_outputs(data_dir: str | None = None, count: int = 8):
    """MiniLM's outputs for the first `count` emotion training tweets (of several lengths), and the batch."""
    batch = real_batch("emotion", 0, count, data_dir)
    with torch.no_grad():
        outputs = pretrained_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return outputs, batch


@exercise("Lesson 2, exercise 1: one vector per tweet, the mean of its tokens")
def check_mean_pooling(mean_pool, data_dir: str | None = None) -> str:
    """`mean_pool(last_hidden_state, attention_mask) -> (tweets, hidden)`: each tweet's mean REAL token."""
    outputs, batch = encoder_outputs(data_dir)
    hidden, mask = outputs.last_hidden_state, batch["attention_mask"]
    expected = sequence_representation(outputs, mask, "mean")
    answer = as_tensor(call(mean_pool, hidden.clone(), mask.clone()), "what your function returned")
    size, width, features = hidden.shape
    shapes = {
        (size, width): ": you averaged over the hidden dimension (dim=-1); average over the tokens (dim=1)",
        (features,): ": you averaged over the whole batch too; keep one vector per tweet",
        (size, width, features): ": you did not average, there is still one vector per token",
    }
    if tuple(answer.shape) != (size, features):
        raise Wrong(f"your vectors have shape {tuple(answer.shape)}, expected ({size}, {features})"
                    + shapes.get(tuple(answer.shape), ""))
    if not close(answer, expected, atol=1e-4):
        as_float = mask.unsqueeze(-1).float()
        mistake = name_the_mistake(answer, [
            (hidden.mean(1),
             ("your mean counts the pad tokens: multiply by the mask before summing, and divide by each "
              "tweet's number of real tokens")),
            ((hidden * as_float).sum(1) / width,
             "you divided by the batch's width, not by each tweet's own number of tokens"),
            ((hidden * as_float).sum(1), "you summed the token vectors but did not divide by their number"),
            (hidden[:, 0], "that is the first token's vector ('cls' pooling), not the mean"),
        ], lambda a, b: close(a, b, atol=1e-4))
        raise Wrong("your vectors differ from the mean of the real tokens (largest difference "
                    f"{(answer - expected).abs().max():.3g})" + mistake)
    real = mask.sum(1)
    return (f"{size} tweets of {int(real.min())} to {int(real.max())} tokens in a batch {width} wide gave "
            f"{size} vectors of {features}, each the mean of its tweet's own tokens: a tweet's vector does "
            "not depend on how much padding its batch has.")


@exercise("Lesson 2, exercise 2: the classification head")
def check_head(head_class, data_dir: str | None = None) -> str:
    """`head_class(hidden_size, num_labels, dropout=0.1)`: an nn.Module, dense -> tanh -> dropout -> linear,
    its weights drawn from N(0, 0.02) and its biases zero, like the package's `ClassificationHead`."""
    outputs, batch = encoder_outputs(data_dir, count=16)
    features = sequence_representation(outputs, batch["attention_mask"], "mean")
    hidden, labels = features.shape[1], len(task("emotion", data_dir).label_names)
    head = call(head_class, hidden, labels, 0.1)
    if not isinstance(head, nn.Module):
        raise Wrong(f"your class made a {type(head).__name__}: subclass torch.nn.Module (and call "
                    "super().__init__() first)")
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    if len(linears) != 2:
        raise Wrong(f"your head has {len(linears)} linear layer{'s' * (len(linears) != 1)}; it needs two: "
                    f"dense ({hidden} -> {hidden}), then the output layer ({hidden} -> {labels} labels)")
    dense = next((layer for layer in linears if layer.out_features == hidden), linears[0])
    out = next(layer for layer in linears if layer is not dense)
    if (dense.in_features, dense.out_features, out.in_features) != (hidden, hidden, hidden):
        raise Wrong(f"your layers map {[(layer.in_features, layer.out_features) for layer in linears]}; "
                    f"expected dense {hidden} -> {hidden} and output {hidden} -> {labels}")
    if out.out_features != labels:
        raise Wrong(f"your output layer gives {out.out_features} scores, but emotion has {labels} labels: "
                    "use num_labels")
    initialisation = initialisation_problems({"dense": dense, "output": out})

    reference = ClassificationHead(hidden, labels, 0.1)
    with torch.no_grad():
        for mine, theirs in ((dense, reference.dense), (out, reference.out)):  # both heads: the same weights
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                mine.bias.copy_(theirs.bias)
        answer = as_tensor(call(head.eval(), features), "your head's output")
        expected = reference.eval()(features)
        if not close(answer, expected):
            plain = reference.out(reference.dense(features))
            mistake = name_the_mistake(answer, [
                (plain, "you left out the tanh between the dense and the output layer"),
                (reference.out(torch.relu(reference.dense(features))), "you used ReLU where BERT's head has "
                                                                       "tanh"),
                (expected.softmax(-1),
                 "your head returns probabilities (softmax); return logits, the loss applies the softmax "
                 "itself"),
                (torch.tanh(plain), "you put the tanh after the output layer; it goes between dense and "
                                    "output"),
            ], close)
            raise Wrong("in eval mode your head's output differs from dense -> tanh -> linear with the same "
                        "weights" + (mistake or " (largest difference "
                                                f"{(answer - expected).abs().max():.3g})"))
        torch.manual_seed(1)
        in_training = as_tensor(call(head.train(), features), "your head's output")
        torch.manual_seed(1)
        expected_in_training = reference.train()(features)
        if not close(in_training, expected_in_training):
            if close(in_training, answer):
                raise Wrong("your head has no dropout: in training mode it gives exactly what it gives in "
                            "eval mode. Apply nn.Dropout(dropout) between the tanh and the output layer")
            torch.manual_seed(1)
            on_input = reference.out(torch.tanh(reference.dense(F.dropout(features, 0.1))))
            raise Wrong("you apply dropout to the head's input; apply it to the tanh's output, just before "
                        "the output layer" if close(in_training, on_input) else
                        "in training mode your head differs from the package's: apply dropout once, with "
                        "probability `dropout`, between the tanh and the output layer")
    if initialisation:
        raise Wrong("the computation is right, but " + "; ".join(initialisation))
    return (f"dense {hidden} -> {hidden}, tanh, dropout (in training mode only), output {hidden} -> "
            f"{labels}; weights from N(0, 0.02) and zero biases: on 16 real tweets, the same logits as "
            "ClassificationHead.")


def initialisation_problems(layers: dict[str, nn.Linear]) -> list[str]:
    """What differs from BERT's initialisation of a classification head: N(0, 0.02) weights, zero biases."""
    problems = []
    for name, layer in layers.items():
        weight = layer.weight.detach()
        if not 0.018 < float(weight.std()) < 0.022 or abs(float(weight.mean())) > 0.002:
            problems.append(f"your {name} layer's weights have standard deviation {weight.std():.3f}: BERT's "
                            "heads start from N(0, 0.02), nn.init.normal_(weight, mean=0.0, std=0.02)")
        if layer.bias is None or bool(layer.bias.detach().abs().max() > 0):
            problems.append(f"your {name} layer's biases are not zero: nn.init.zeros_(bias)")
    return problems


@exercise("Lesson 2, exercise 3: MultiTaskModel.forward, routing by task")
def check_forward(forward, data_dir: str | None = None) -> str:
    """`forward(self, input_ids, attention_mask, task)`: the shared encoder, one vector per tweet, then the
    head of `task` (self.heads[task]). Checked on a MultiTaskModel with the pre-trained MiniLM, two heads."""
    tasks = {name: task(name, data_dir).label_names for name in ("emotion", "sentiment")}
    model = MultiTaskModel(pretrained_encoder(), tasks, pooling="mean").eval()
    outputs, batch = encoder_outputs(data_dir)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    shapes = []
    with torch.no_grad():
        for name in tasks:
            expected = model(ids, mask, name)
            answer = as_tensor(call(forward, model, ids, mask, name), f"your forward's answer for {name!r}")
            if answer.shape != expected.shape:
                other = [o for o in tasks if (len(ids), len(tasks[o])) == tuple(answer.shape)]
                hint = f"did you use the {other[0]} head?" if other else f"expect {tuple(expected.shape)}"
                raise Wrong(f"you returned logits of shape {tuple(answer.shape)} but {name} has "
                            f"{len(tasks[name])} labels: {hint}")
            if not close(answer, expected, atol=1e-4):
                head = model.heads[name]
                without_mask = model.encoder(input_ids=ids)
                use = "use sequence_representation(outputs, attention_mask, self.pooling)"
                mistake = name_the_mistake(answer, [
                    (expected.softmax(-1),
                     "you returned probabilities (softmax); return the logits, the loss applies the softmax"),
                    (head(outputs.last_hidden_state[:, 0]),
                     f"you took the first token's vector, but this model's pooling is 'mean': {use}"),
                    (head(outputs.last_hidden_state.mean(1)),
                     f"your mean includes the pad tokens: {use}, which leaves them out"),
                    (head(sequence_representation(without_mask, mask, "mean")),
                     "you did not pass the attention mask to the encoder, so the real tokens attend to the "
                     "pads"),
                    (head(outputs.pooler_output),
                     f"you used the encoder's pooler_output, but this model's pooling is 'mean': {use}"),
                ], lambda a, b: close(a, b, atol=1e-4))
                raise Wrong(f"for {name!r} your logits differ from MultiTaskModel.forward's"
                            + (mistake or f" (largest difference {(answer - expected).abs().max():.3g})"))
            shapes.append(f"{name} -> {tuple(answer.shape)}")
        try:
            forward(model, ids, mask, "irony")
        except Exception as error:  # the right behaviour: a task without a head is refused
            refused = error.__class__.__name__
        else:
            raise Wrong("this model has no head for 'irony', yet your forward returned an answer for it: "
                        "index self.heads with the task's name, so that an unknown task raises an error")
    return (f"{', '.join(shapes)}: the same logits as MultiTaskModel.forward on real tweets (the encoder's "
            f"mean vector through the task's own head), and a task without a head refused ({refused}).")


# ---------------------------------------------------------------------------------------------
# Lesson 3: task sampling
# ---------------------------------------------------------------------------------------------


def training_sizes(names, data_dir: str | None = None) -> dict[str, int]:
    return {name: len(task(name, data_dir).splits["train"]) for name in names}


def as_task_dict(answer, tasks: list[str]) -> dict[str, float]:
    """A student's {task: number} answer, checked for its shape."""
    if isinstance(answer, (list, tuple, np.ndarray, torch.Tensor)):
        raise Wrong(f"your answer is a {type(answer).__name__}; return a dict keyed by task name, "
                    f"{{'{tasks[0]}': ..., ...}}")
    if not isinstance(answer, dict):
        raise Wrong(f"your answer is a {type(answer).__name__}, not a dict {{task: number}}")
    if set(answer) != set(tasks):
        raise Wrong(f"your answer has the keys {sorted(map(str, answer))}; expected one per task: "
                    f"{sorted(tasks)}")
    return {name: as_number(answer[name], f"your answer for {name!r}") for name in tasks}


def same_numbers(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(math.isclose(a[name], b[name], rel_tol=1e-6, abs_tol=1e-9) for name in b)


def listed(numbers: dict[str, float], digits: int = 4) -> str:
    return ", ".join(f"{name} {value:.{digits}f}" for name, value in numbers.items())


@exercise("Lesson 3, exercise 1: temperature sampling, p_i ∝ n_i^(1/T)")
def check_temperature(temperature_probabilities, data_dir: str | None = None) -> str:
    """`temperature_probabilities(sizes, temperature) -> {task: probability}` from the training-set sizes."""
    shares = []
    for names in (["emotion", "sentiment"], ["emotion", "sentiment", "irony"]):
        sizes = training_sizes(names, data_dir)
        for temperature in (1.0, 2.0, 5.0):
            expected = task_probabilities(sizes, "temperature", temperature)
            answer = as_task_dict(call(temperature_probabilities, dict(sizes), temperature), names)
            total = sum(answer.values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise Wrong(f"for T = {temperature:g} your probabilities sum to {total:.6g}, not 1: divide "
                            "each n_i^(1/T) by their total")
            if not same_numbers(answer, expected):
                mistake = name_the_mistake(answer, [
                    (task_probabilities(sizes, "temperature", 1 / temperature),
                     (f"you raised the sizes to the power T = {temperature:g}; the exponent is 1/T, so that "
                      "a higher temperature flattens the mix")),
                    (task_probabilities(sizes, "proportional"),
                     "your probabilities do not change with T: they are proportional to the sizes"),
                    (task_probabilities(sizes, "uniform"),
                     "your probabilities are uniform: they must still grow with the size n_i"),
                ], same_numbers)
                raise Wrong(f"with sizes {sizes} and T = {temperature:g} the probabilities are "
                            f"{listed(expected)}; you gave {listed(answer)}" + mistake)
            if len(names) == 2:
                shares.append(f"{answer['emotion']:.3f} at T = {temperature:g}")
    return (f"emotion's share of the steps grows with the temperature: {', '.join(shares)} (its 3,257 tweets "
            "against sentiment's 45,615), and it works for three tasks too.")


@exercise("Lesson 3, exercise 2: how many steps each task gets per epoch")
def check_draws_per_epoch(draws_per_epoch, data_dir: str | None = None) -> str:
    """`draws_per_epoch(sizes, batch_size, probabilities) -> {task: expected steps in one epoch}`. An epoch
    has as many steps as ALL tasks have batches together; a task drawn with probability p gets p of them."""
    names, batch_size = ["emotion", "sentiment"], 32
    sizes = training_sizes(names, data_dir)
    batches = {name: batches_per_pass(size, batch_size) for name, size in sizes.items()}
    found = []
    for sampler in ("proportional", "temperature", "uniform"):
        probabilities = task_probabilities(sizes, sampler)
        passes = passes_per_epoch(sizes, batch_size, samplers=(sampler,)).loc[sampler]  # the lesson's table
        expected = {name: passes[name] * batches[name] for name in names}
        answer = as_task_dict(call(draws_per_epoch, dict(sizes), batch_size, dict(probabilities)), names)
        if not same_numbers(answer, expected):
            rounded_down = sum(size // batch_size for size in sizes.values())
            mistake = name_the_mistake(answer, [
                ({name: p * rounded_down for name, p in probabilities.items()},
                 (f"you rounded the number of batches down; {sizes['emotion']:,} tweets make "
                  f"{batches['emotion']} batches of {batch_size}, the last one shorter (round up: -(-n // "
                  "b))")),
                ({name: p * batches[name] for name, p in probabilities.items()},
                 ("you gave each task p times ITS OWN number of batches; an epoch has as many steps as ALL "
                  "the tasks have batches together")),
                ({name: p * sum(sizes.values()) for name, p in probabilities.items()},
                 "you counted tweets, but a step takes a whole batch"),
                (probabilities, "these are the probabilities; multiply them by the number of steps in an "
                                "epoch"),
                (batches, "that is each task's number of batches, whatever the sampler"),
            ], same_numbers)
            raise Wrong(f"{sampler} sampling: expect {listed(expected, 1)} steps; you gave "
                        f"{listed(answer, 1)}" + mistake)
        steps_and_passes = [f"{name} {answer[name]:.0f} steps = {answer[name] / batches[name]:.2f} passes"
                            for name in names]
        found.append(f"{sampler}: " + ", ".join(steps_and_passes))
    return ("; ".join(found) + ". Proportional sampling goes through every task once per epoch ON AVERAGE: "
                               "the draw is random, so an epoch may give a task a few steps more or less.")


def global_random_states() -> dict[str, str]:
    """A fingerprint of the global generators of torch, NumPy and Python's random: every draw changes it."""
    numpy_state = np.random.get_state()
    return {"torch": str(hash(torch.random.get_rng_state().numpy().tobytes())),
            "numpy": str(hash(numpy_state[1].tobytes())) + str(numpy_state[2]),
            "random": str(hash(random.getstate()))}


@exercise("Lesson 3, exercise 3: draw the schedule of an epoch, reproducibly")
def check_schedule(draw_schedule, data_dir: str | None = None) -> str:
    """`draw_schedule(probabilities, steps, seed) -> list of task names`: random draws with the given
    probabilities, the same list for the same seed (every process of a run and a resumed run must agree),
    without touching the global random generators."""
    probabilities = task_probabilities(training_sizes(["emotion", "sentiment"], data_dir), "temperature", 2.0)
    steps = 2000
    before = global_random_states()
    first = call(draw_schedule, dict(probabilities), steps, 77)
    touched = [name for name, state in global_random_states().items() if state != before[name]]
    if not isinstance(first, (list, tuple)):
        raise Wrong(f"your schedule is a {type(first).__name__}; return a list of task names, one per step")
    first = list(first)
    if len(first) != steps:
        raise Wrong(f"asked for {steps} steps, your schedule has {len(first)}")
    unknown = sorted({str(step) for step in first if step not in probabilities})
    if unknown:
        raise Wrong(f"your schedule holds {unknown[:3]}, which are not task names ({list(probabilities)})")
    counts = Counter(first)
    for name, p in probabilities.items():
        spread = math.sqrt(steps * p * (1 - p))
        if abs(counts[name] - steps * p) > 5 * spread:
            in_turn = all(a != b for a, b in itertools.pairwise(first))
            mistake = ("you take the tasks in turn (round robin), which ignores the probabilities" if in_turn
                       else "draw each step with the given probabilities, e.g. torch.multinomial(weights, "
                            "steps, replacement=True)")
            raise Wrong(f"{name} was drawn {counts[name]} times in {steps} steps, but with p = {p:.3f} "
                        f"expect about {steps * p:.0f} ± {spread:.0f}: {mistake}")
    if list(call(draw_schedule, dict(probabilities), steps, 77)) != first:
        raise Wrong("two calls with seed 77 gave different schedules: your draw is not seeded (the original "
                    "tutorial drew tasks from NumPy's global, unseeded generator). Then the processes of a "
                    "multi-GPU run would train different tasks at the same step, and a resumed run would "
                    "change its schedule. Draw from a generator made from the seed: "
                    "torch.Generator().manual_seed(seed)")
    if list(call(draw_schedule, dict(probabilities), steps, 78)) == first:
        raise Wrong("seeds 77 and 78 gave the same schedule: your draw ignores the seed, so every epoch "
                    "would train the tasks in the same order")
    if touched:
        raise Wrong(f"your function reseeds, or draws from, the global {touched[0]} generator: the schedule "
                    "is reproducible, but everything drawn after it (dropout masks, data order) now depends "
                    "on it. Use a generator of its own: torch.Generator().manual_seed(seed)")
    return (f"{steps} steps with emotion drawn {counts['emotion']} times (expected about "
            f"{steps * probabilities['emotion']:.0f}), the same schedule for the same seed and another for "
            "another seed, and the global random generators untouched.")


# ---------------------------------------------------------------------------------------------
# Lesson 4: training
# ---------------------------------------------------------------------------------------------


class PlainTorch:
    """What `train.train_step` asks of Accelerate, done by plain torch on one device without mixed
    precision; it keeps the gradient norm it found before each clipping."""

    def __init__(self):
        self.norms_before_clipping: list[float] = []

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm: float) -> torch.Tensor:
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        self.norms_before_clipping.append(float(norm))
        return norm


def gradient_norm(model: nn.Module) -> float | None:
    """The norm of all gradients together, or None when no parameter has one."""
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else None


@dataclass
class StepRecord:
    """What happened during a training step: the order of the calls and the gradient each update used."""

    events: list[str]
    norm_at_update: list[float | None]


def watched_training(model: nn.Module, steps: int):
    """A fresh optimiser and linear schedule for `model`, both watched: (optimizer, scheduler, record).
    Each optimizer.step() records the gradient norm it is about to use, each scheduler.step() that it ran."""
    optimizer = make_optimizer(model, TrainConfig(learning_rate=1e-3))
    record = StepRecord([], [])
    update = optimizer.step

    def watched_update(self, *args, **kwargs):
        record.events.append("optimizer.step")
        record.norm_at_update.append(gradient_norm(model))
        return update(*args, **kwargs)

    # a method of the optimiser, set before the schedule is made: the schedule wraps optimizer.step in turn
    optimizer.step = types.MethodType(watched_update, optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    schedule = scheduler.step

    def watched_schedule(*args, **kwargs):
        record.events.append("scheduler.step")
        return schedule(*args, **kwargs)

    scheduler.step = watched_schedule
    return optimizer, scheduler, record


@contextlib.contextmanager
def watched_clipping(record: StepRecord):
    """Within this block, torch.nn.utils.clip_grad_norm_ records in `record` that it ran."""
    clip = torch.nn.utils.clip_grad_norm_

    def watched(*args, **kwargs):
        record.events.append("clip")
        return clip(*args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = watched
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = clip


def largest_difference(model: nn.Module, other: nn.Module) -> float:
    return max(float((a - b).detach().abs().max()) for a, b in zip(model.parameters(), other.parameters()))


@exercise("Lesson 4, exercise 1: one multi-task training step")
def check_train_step(step, data_dir: str | None = None) -> str:
    """`step(model, batch, task, optimizer, scheduler, max_grad_norm) -> loss`: forward through the task's
    head, cross-entropy, backward, clip the gradient, optimiser step, schedule step, clear the gradients. Run
    twice (a sentiment batch, then an emotion batch) on a tiny model, against the package's `train_step`."""
    names = ("sentiment", "emotion")
    initial = tiny_model({name: task(name, data_dir).label_names for name in names})
    batches = [(name, real_batch(name, 0, 16, data_dir)) for name in names]
    max_grad_norm = 0.05  # small, so that clipping changes every step

    reference, one_device = copy.deepcopy(initial), PlainTorch()
    optimizer, scheduler, _ = watched_training(reference, len(batches))
    expected_losses, expected_models = [], []
    for name, batch in batches:
        expected_losses.append(float(train_step(reference, batch, name, optimizer, scheduler, one_device,
                                                max_grad_norm)))
        expected_models.append(copy.deepcopy(reference))
    assert min(one_device.norms_before_clipping) > 2 * max_grad_norm, "clipping must change these steps"

    model = copy.deepcopy(initial)
    optimizer, scheduler, record = watched_training(model, len(batches))
    left_over = []
    for number, (name, batch) in enumerate(batches):
        before, seen = copy.deepcopy(model), len(record.events)
        try:
            with watched_clipping(record), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns when the schedule steps first; we explain it
                loss = as_number(call(step, model, batch, name, optimizer, scheduler, max_grad_norm),
                                 "your step")
        except Wrong as wrong:
            raise Wrong(f"step {number + 1} ({name} batch): {wrong}") from None
        explain_step(record, seen, f"step {number + 1} ({name} batch)", name, batch, loss,
                     expected_losses[number], before, largest_difference(model, expected_models[number]),
                     left_over, max_grad_norm)
        left_over.append(gradient_norm(model) or 0.0)
    note = (" You clear the gradients at the start of the step rather than at its end: that works too, but "
            "they are then kept in memory between steps." if left_over[0] else "")
    return (f"loss {expected_losses[0]:.4f} on a sentiment batch, then {expected_losses[1]:.4f} on an "
            f"emotion batch; the gradient clipped from norm {one_device.norms_before_clipping[0]:.2f} to "
            f"{max_grad_norm} BEFORE optimizer.step(), the schedule stepped after it, and after two steps "
            "every weight equals what the package's train_step gives." + note)


def explain_step(record: StepRecord, seen: int, which: str, name: str, batch: dict, loss: float,
                 expected_loss: float, before: nn.Module, difference: float, left_over: list[float],
                 max_grad_norm: float) -> None:
    """Raise `Wrong` with the first mistake that one call of a student's training step shows."""
    events = record.events[seen:]
    updates = [i for i, event in enumerate(events) if event == "optimizer.step"]
    if not updates:
        raise Wrong(f"{which}: optimizer.step() was never called, so the weights did not change")
    norm = record.norm_at_update[len(record.norm_at_update) - len(updates)]  # the first update of this step
    if norm is None:
        raise Wrong(f"{which}: when optimizer.step() ran there was no gradient: call loss.backward() first")
    if norm == 0.0:
        raise Wrong(f"{which}: when optimizer.step() ran the gradient was all zeros: zero_grad() ran between "
                    "loss.backward() and optimizer.step(); clear the gradients after the step instead")
    if not math.isclose(loss, expected_loss, rel_tol=1e-5):
        with torch.no_grad():
            other_heads = [
                (float(F.cross_entropy(before(batch["input_ids"], batch["attention_mask"], other),
                                       batch["labels"])),
                 (f"your loss is that of the {other} head on a {name} batch: pass `task` to the model, so "
                  "that every batch goes through its own task's head"))
                for other in before.tasks
                if other != name and len(before.task_labels[other]) > int(batch["labels"].max())]
        mistake = name_the_mistake(loss, [
            *other_heads,
            (expected_loss * len(batch["labels"]),
             ("you summed the loss over the batch (reduction='sum'); the mean keeps the step size "
              "independent of the batch size")),
        ], lambda a, b: math.isclose(a, b, rel_tol=1e-5))
        raise Wrong(f"{which}: your loss is {loss:.4f}, the package's is {expected_loss:.4f}" + (
            mistake or ": compute F.cross_entropy(model(input_ids, attention_mask, task), labels)"))
    if norm > max_grad_norm * 1.001:
        if "clip" in events[updates[0]:]:
            raise Wrong(f"{which}: your clipping runs after optimizer.step(), so the step used the unclipped "
                        f"gradient (norm {norm:.3f}, above max_grad_norm = {max_grad_norm}). Clip between "
                        "loss.backward() and optimizer.step()")
        raise Wrong(f"{which}: optimizer.step() used an unclipped gradient (norm {norm:.3f}, above "
                    f"max_grad_norm = {max_grad_norm}). Clip it with "
                    "torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between "
                    "loss.backward() and optimizer.step()")
    schedules = [i for i, event in enumerate(events) if event == "scheduler.step"]
    if not schedules:
        raise Wrong(f"{which}: the learning rate never moved: call scheduler.step() after optimizer.step()")
    if schedules[0] < updates[0]:
        raise Wrong(f"{which}: you stepped the schedule before the optimizer, so this update used the next "
                    "step's learning rate: call scheduler.step() after optimizer.step()")
    if difference > 1e-6:
        if left_over and left_over[0] > 0:
            raise Wrong(f"{which}: after step 1 your gradients were still there (norm {left_over[0]:.3f}), "
                        "and loss.backward() ADDS to them, so step 2 used the sum of the sentiment and the "
                        "emotion gradients. Call optimizer.zero_grad() after optimizer.step()")
        raise Wrong(f"{which}: your weights after the step differ from the package's train_step (largest "
                    f"difference {difference:.2g}): forward, loss, backward, clip, optimizer.step(), "
                    "scheduler.step(), zero_grad(), in that order and once each")


def best_epochs_by_fit(history: pd.DataFrame) -> dict[str, int]:
    """Each task's best epoch as `fit` chose it while training: the last epoch whose row says best_so_far."""
    flagged = history[history["best_so_far"].astype(bool)]
    return {name: int(rows["epoch"].max()) for name, rows in flagged.groupby("task", sort=False)}


def recorded_history() -> pd.DataFrame:
    """The history of a real 5-epoch run of the packaged MiniLM on emotion + sentiment (recorded/README)."""
    return pd.read_csv(RECORDED_HISTORY)


def as_epoch(value) -> int | None:
    """An epoch number from a student's answer (int, NumPy integer, or a whole float), else None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


@exercise("Lesson 4, exercise 2: each task's best epoch")
def check_best_epochs(best_epochs, history: pd.DataFrame | None = None) -> str:
    """`best_epochs(history) -> {task: epoch}`: for every task, the epoch of its highest official dev score
    (`dev_official`; the first of equal ones). Tried on a recorded 5-epoch run, and on `history` if given."""
    histories = {"the recorded 5-epoch run": recorded_history()}
    if history is not None:
        histories["your run"] = history
    found = []
    for which, table in histories.items():
        expected = best_epochs_by_fit(table)
        answer = call(best_epochs, table.copy())
        if not isinstance(answer, dict):
            raise Wrong(f"your function returned a {type(answer).__name__}; return a dict {{task: epoch}}")
        if set(answer) != set(expected):
            raise Wrong(f"on {which} your keys are {sorted(map(str, answer))}; expected one per task: "
                        f"{sorted(expected)}")
        given = {name: as_epoch(epoch) for name, epoch in answer.items()}
        if given != expected:
            rows = {name: table[table["task"] == name] for name in expected}
            mean_best = int(table.groupby("epoch")["dev_official"].mean().idxmax())
            mistake = name_the_mistake(given, [
                ({name: int(own["epoch"].max()) for name, own in rows.items()},
                 ("you took the last epoch (the original tutorial's mistake): the best is where the dev "
                  "score peaks")),
                ({name: int(own.loc[own["dev_loss"].idxmin(), "epoch"]) for name, own in rows.items()},
                 ("you took the epoch of the lowest dev LOSS; the best epoch is judged by the task's "
                  "official dev score, dev_official")),
                ({name: mean_best for name in rows},
                 ("you picked one epoch for all the tasks (the best mean score); the tasks need not peak "
                  "together, so each gets its own")),
                ({name: int(own["dev_official"].idxmax()) for name, own in rows.items()},
                 ("you returned row numbers of the table, not epochs: read the 'epoch' column of the best "
                  "row")),
            ], lambda a, b: a == b)
            name = next(name for name in expected if given[name] != expected[name])
            own = rows[name]
            scores = ", ".join(f"{e}: {score:.3f}" for e, score in zip(own["epoch"], own["dev_official"]))
            raise Wrong(f"on {which}, {name}'s best epoch is {expected[name]}, you said {answer[name]!r}"
                        + mistake + f". Its dev scores by epoch: {scores}")
        found.append(f"{which}: " + ", ".join(f"{name} {epoch}" for name, epoch in expected.items()))
    return ("; ".join(found) + ". These are the epochs fit kept as best/<task>/: each task is tested with "
            "its own best checkpoint.")


def hand_loop_vs_fit(steps: list[dict], history: pd.DataFrame, epoch: int = 1,
                     tolerance: float = 1e-4) -> pd.DataFrame:
    """Per task, the mean training loss of a hand-written loop's steps beside `fit`'s for the same epoch.

    `steps` holds one dict per step: {"task": name, "loss": float, "size": tweets in the batch}. When both
    loops start from the same seed they see the same batches, so the losses agree to within `tolerance`.
    """
    log = pd.DataFrame(steps, columns=None if steps else ["task", "loss", "size"])
    missing = sorted({"task", "loss", "size"} - set(log.columns))
    if missing:
        raise ValueError(f"each step needs 'task', 'loss' and 'size'; missing {missing}")
    in_fit = history[history["epoch"] == epoch].set_index("task")
    unknown = [name for name in dict.fromkeys(log["task"]) if name not in in_fit.index]
    if unknown:
        raise ValueError(f"fit's history has no row for task {unknown[0]!r} in epoch {epoch}")
    rows = []
    for name in [name for name in in_fit.index if name in set(log["task"])]:  # in fit's order of tasks
        own, fitted = log[log["task"] == name], in_fit.loc[[name]]
        by_hand = float((own["loss"] * own["size"]).sum() / own["size"].sum())
        rows.append({"task": name, "steps": len(own), "tweets": int(own["size"].sum()),
                     "fit's tweets": int(fitted["train_examples"].iloc[0]), "hand-written loop": by_hand,
                     "fit": float(fitted["train_loss"].iloc[0])})
    table = pd.DataFrame(rows).set_index("task")
    table["difference"] = table["hand-written loop"] - table["fit"]
    table["same"] = (table["difference"].abs() <= tolerance) & (table["tweets"] == table["fit's tweets"])
    return table


# ---------------------------------------------------------------------------------------------
# Lesson 5: evaluation
# ---------------------------------------------------------------------------------------------


def labelled_predictions(name: str, data_dir: str | None, predictions: pd.DataFrame | None):
    """The test predictions a score is checked on: a word model's, the majority class's, the lesson's."""
    sets = {"a tf-idf word model": word_model_predictions(name, data_dir),
            "always the commonest label": majority_predictions(name, data_dir)}
    if predictions is not None:  # a `predictions_on_test` table: categorical true/predicted columns
        sets["your model"] = (predictions["true"].cat.codes.tolist(),
                              predictions["predicted"].cat.codes.tolist())
    return {which: (list(truth), list(guess)) for which, (truth, guess) in sets.items()}


def check_score(score, name: str, predictions, data_dir, mistakes_of) -> str:
    """Run a student's `score(y_true, y_pred)` on every prediction set of task `name` against
    `official_score`; `mistakes_of(truth, guess)` gives typical wrong scores as (value, explanation) pairs."""
    labels = task(name, data_dir).label_names
    found = []
    for which, (truth, guess) in labelled_predictions(name, data_dir, predictions).items():
        expected = official_score(name, truth, guess, len(labels))
        answer = as_number(call(score, list(truth), list(guess)), "your score")
        if not math.isclose(answer, expected, abs_tol=1e-6):
            mistake = name_the_mistake(answer, [
                (100 * expected, "you returned a percentage; give a fraction between 0 and 1"),
                (accuracy_score(truth, guess), "that is the accuracy"),
                *mistakes_of(truth, guess),
            ], lambda a, b: math.isclose(a, b, abs_tol=1e-6))
            raise Wrong(f"on {name}'s test tweets labelled by {which}, the official score is {expected:.4f}; "
                        f"yours is {answer:.4f}" + mistake)
        found.append(f"{which} {expected:.3f}")
    return ", ".join(found)


@exercise("Lesson 5, exercise 1: sentiment's official score, macro-recall")
def check_sentiment_score(sentiment_score, data_dir: str | None = None,
                          predictions: pd.DataFrame | None = None) -> str:
    """`sentiment_score(y_true, y_pred) -> float`: the recall of each label (negative, neutral, positive),
    averaged with equal weight (SemEval-2017 Task 4A). `predictions`: a `predictions_on_test` table to add."""

    def mistakes(truth, guess):
        return [
            (f1_score(truth, guess, labels=[0, 1, 2], average="macro", zero_division=0),
             "that is macro-F1; TweetEval scores sentiment by macro-RECALL"),
            (precision_score(truth, guess, labels=[0, 1, 2], average="macro", zero_division=0),
             ("that is macro-precision (the share of each PREDICTED label that is right); recall is the "
              "share of each TRUE label that is found")),
            (f1_score(truth, guess, labels=[0, 2], average="macro", zero_division=0),
             "that is the mean F1 of positive and negative (SemEval's secondary measure)"),
            (recall_score(truth, guess, labels=sorted(set(guess)), average="macro", zero_division=0),
             "you averaged the recall over the labels the model predicts; average over all three labels"),
        ]

    scores = check_score(sentiment_score, "sentiment", predictions, data_dir, mistakes)
    return (f"macro-recall on sentiment's test tweets: {scores}. Always answering 'neutral' gets exactly "
            "1/3, however common neutral tweets are: that is why SemEval chose it.")


@exercise("Lesson 5, exercise 2: stance's official score, mean F1 of against and favor")
def check_stance_score(stance_score, data_dir: str | None = None) -> str:
    """`stance_score(y_true, y_pred) -> float`: labels 0 none, 1 against, 2 favor; the mean of the F1 of
    'against' and of 'favor' (SemEval-2016 Task 6): 'none' counts only through the mistakes it causes."""

    def mistakes(truth, guess):
        return [
            (f1_score(truth, guess, labels=[0, 1, 2], average="macro", zero_division=0),
             "you averaged the F1 of all three labels; the official score leaves out 'none' (label 0)"),
            (f1_score(truth, guess, labels=[0, 1], average="macro", zero_division=0),
             "you used labels 0 and 1 (none and against): against is 1 and favor is 2"),
            (f1_score(truth, guess, labels=[1, 2], average="micro", zero_division=0),
             "you pooled against and favor into one F1 (micro); the official score is the MEAN of their F1s"),
            (recall_score(truth, guess, labels=[1, 2], average="macro", zero_division=0),
             "that is the mean RECALL of against and favor; the official score averages their F1"),
            (f1_score(truth, guess, labels=[2], average="macro", zero_division=0),
             "that is the F1 of favor alone; average it with the F1 of against"),
        ]

    scores = [f"{name.removeprefix('stance_')}: {check_score(stance_score, name, None, data_dir, mistakes)}"
              for name in ("stance_abortion", "stance_climate")]
    return "the official stance score on two targets' test tweets, " + "; ".join(scores) + "."


@exercise("Lesson 5, exercise 3: a confusion matrix")
def check_confusion(confusion, data_dir: str | None = None) -> str:
    """`confusion(y_true, y_pred, num_labels) -> num_labels x num_labels counts`: row = true label, column =
    predicted label (a tensor, an array, a nested list or a DataFrame)."""
    labels = task("emotion", data_dir).label_names
    right = {}
    for which, (truth, guess) in labelled_predictions("emotion", data_dir, None).items():
        expected = confusion_table(truth, guess, labels).to_numpy()
        answer = call(confusion, list(truth), list(guess), len(labels))
        try:
            answer = np.asarray(answer.detach() if isinstance(answer, torch.Tensor) else answer, dtype=float)
        except (TypeError, ValueError):
            raise Wrong(f"your confusion is a {type(answer).__name__}; return a table of counts") from None
        predicted = len(set(guess))
        if answer.shape != expected.shape:
            missing = (f". With {which} only {predicted} label(s) are ever predicted, and a label never "
                       "predicted still needs its column: use num_labels, not the labels you find"
                       if predicted in answer.shape else "")
            raise Wrong(f"your matrix has shape {answer.shape}, but emotion has {len(labels)} labels: "
                        f"expected {expected.shape}" + missing)
        if not np.array_equal(answer, expected):
            mistake = name_the_mistake(answer, [
                (expected.T, ("your rows are the predictions and your columns the truth: rows must be the "
                              "TRUE labels (as in confusion_table and scikit-learn)")),
                (expected / expected.sum(1, keepdims=True), "you normalised the rows into shares; give "
                                                            "counts"),
            ], lambda a, b: np.allclose(a, b, atol=1e-9))
            raise Wrong(f"with {which}, the matrix should be {expected.tolist()}; you gave {answer.tolist()}"
                        + mistake)
        right[which] = np.trace(expected) / expected.sum()
    return ("rows are the true labels and columns the predictions, 4 x 4 even when the model only ever "
            "predicts one label. The share of right answers, on the diagonal: " + listed(right, 2) + ".")


# ---------------------------------------------------------------------------------------------
# Lesson 6: when tasks pull apart
# ---------------------------------------------------------------------------------------------


@functools.cache
def real_gradients(data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared encoder's gradients of the tiny model on 16 real emotion and 16 real sentiment tweets."""
    names = ("emotion", "sentiment")
    with torch.random.fork_rng(devices=[]):
        model = tiny_model({name: task(name, data_dir).label_names for name in names})
    return tuple(encoder_gradient(model, real_batch(name, 0, 16, data_dir), name).detach() for name in names)


def gradient_pairs(data_dir: str | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pairs of gradients a check tries: hand-made ones that agree and conflict, and real ones."""
    emotion, sentiment = real_gradients(data_dir)
    return {
        "two hand-made gradients that agree, (2, 1) and (1, 3)": (torch.tensor([2.0, 1.0]),
                                                                  torch.tensor([1.0, 3.0])),
        "two hand-made gradients that conflict, (3, 1) and (-2, 2)": (torch.tensor([3.0, 1.0]),
                                                                      torch.tensor([-2.0, 2.0])),
        "real emotion and sentiment gradients of a small model": (emotion, sentiment),
        "the real emotion gradient and the opposite of the sentiment one": (emotion, -sentiment),
    }


def near(answer: torch.Tensor, expected: torch.Tensor) -> bool:
    """The same vector up to rounding: the difference is tiny next to the vector's length."""
    return answer.shape == expected.shape and bool(
        (answer.double() - expected.double()).norm() <= 1e-4 * expected.double().norm() + 1e-9)


def on_a_pair(function, first: torch.Tensor, second: torch.Tensor):
    """Run a student's `function(g1, g2)` on copies, and refuse it if it changed them."""
    given = first.clone(), second.clone()
    answer = call(function, *given)
    if not (torch.equal(given[0], first) and torch.equal(given[1], second)):
        raise Wrong("your function changed the gradients it was given (an in-place operation such as `-=`): "
                    "compute new tensors and leave g1 and g2 as they are")
    return answer


def as_vector(value, like: torch.Tensor, what: str) -> torch.Tensor:
    vector = as_tensor(value, what)
    if vector.shape != like.shape:
        raise Wrong(f"{what} has shape {tuple(vector.shape)}; the gradients have shape {tuple(like.shape)}")
    if not torch.isfinite(vector).all():
        raise Wrong(f"{what} holds NaN or infinity: is there a division by zero?")
    return vector


def projected(gradient: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """`gradient` less its component along `onto`."""
    return gradient - (gradient @ onto) / (onto @ onto) * onto


@exercise("Lesson 6, exercise 1: PCGrad's projection for two gradients")
def check_pcgrad_projection(pcgrad_projections, data_dir: str | None = None) -> str:
    """`pcgrad_projections(g1, g2) -> (g1 projected, g2 projected)`: when g1 · g2 < 0, each gradient loses
    its component along the OTHER one; when they agree both stay as they are. PCGrad's step is their sum."""
    found = []
    for which, (first, second) in gradient_pairs(data_dir).items():
        dot = first @ second
        conflict = bool(dot < 0)
        expected = (projected(first, second), projected(second, first)) if conflict else (first, second)
        answer = on_a_pair(pcgrad_projections, first, second)
        if isinstance(answer, torch.Tensor) and answer.shape == first.shape:
            raise Wrong("you returned one vector" + (": PCGrad's step, the sum" if near(answer, pcgrad_pair(
                first, second)) else "") + ". Return the two projected gradients as a pair, (g1_new, g2_new)")
        if not isinstance(answer, (tuple, list, torch.Tensor)) or len(answer) != 2:
            raise Wrong(f"your function returned a {type(answer).__name__}; return a pair (g1_new, g2_new)")
        answer = tuple(as_vector(v, first, f"your {name}") for v, name in zip(answer, ("g1_new", "g2_new")))
        if all(near(a, b) for a, b in zip(answer, expected)):
            found.append(f"{which}: cosine {F.cosine_similarity(first, second, dim=0):+.3f}, "
                         + ("both projected" if conflict else "left alone"))
            continue
        squared = first @ first, second @ second
        mistake = name_the_mistake(answer, [
            ((first, second), f"you left them alone, but they conflict (g1 · g2 = {dot:.3g} < 0)"),
            ((projected(first, second), projected(second, first)),
             f"you projected although they agree (g1 · g2 = {dot:.3g} >= 0): PCGrad only changes gradients "
             "that conflict"),
            ((projected(first, second), second), "you projected only g1; PCGrad projects both, each onto the "
                                                 "normal plane of the other"),
            ((first, projected(second, first)), "you projected only g2; PCGrad projects both, each onto the "
                                                "normal plane of the other"),
            ((first - dot / squared[0] * first, second - dot / squared[1] * second),
             "you removed from each gradient its component along ITSELF; remove its component along the "
             "OTHER gradient: g1 - (g1 · g2 / |g2|²) g2"),
            ((first - dot / squared[0] * second, second - dot / squared[1] * first),
             "you divided by the squared length of the wrong gradient: g1 loses (g1 · g2 / |g2|²) g2, the "
             "length of the gradient you project ONTO"),
            ((first - dot * second, second - dot * first),
             "you forgot to divide by the squared length of the gradient you project onto: "
             "(g1 · g2 / |g2|²) g2"),
            ((first - dot / squared[1].sqrt() * second, second - dot / squared[0].sqrt() * first),
             "you divided by the length |g2|, not by the squared length |g2|² = g2 · g2"),
            ((first + dot / squared[1] * second, second + dot / squared[0] * first),
             "you ADDED the component along the other gradient: subtract it, so that the conflict goes"),
            ((projected(second, first), projected(first, second)), "you returned them in the other order: "
                                                                   "(g1_new, g2_new)"),
        ], lambda a, b: all(near(x, y) for x, y in zip(a, b)))
        largest = max(float((a - b).abs().max()) for a, b in zip(answer, expected))
        raise Wrong(f"on {which} your projected gradients are not PCGrad's"
                    + (mistake or f" (largest difference {largest:.3g})"))
    return ("; ".join(found) + ". After projection the two no longer conflict (their dot product is >= 0), "
            "and their sum is mtl.pcgrad_pair's step.")


@exercise("Lesson 6, exercise 2: MGDA for two tasks, the shortest point between two gradients")
def check_mgda_two_tasks(min_norm_point, data_dir: str | None = None) -> str:
    """`min_norm_point(g1, g2) -> a g1 + (1 - a) g2`: of all the points on the segment from g2 to g1
    (0 <= a <= 1), the one nearest the origin; a = (g2 - g1) · g2 / |g2 - g1|², kept within [0, 1]."""
    pairs = gradient_pairs(data_dir)
    pairs["two hand-made gradients, (1, 0.5) and (3, 1), whose shortest point is an end"] = (
        torch.tensor([1.0, 0.5]), torch.tensor([3.0, 1.0]))
    found = []
    for which, (first, second) in pairs.items():
        expected = mgda_pair(first, second)
        answer = on_a_pair(min_norm_point, first, second)
        if isinstance(answer, (int, float)) or (isinstance(answer, torch.Tensor) and answer.numel() == 1):
            raise Wrong("you returned one number (the weight a?); return the point a g1 + (1 - a) g2 itself")
        answer = as_vector(answer, first, "your point")
        if near(answer, expected):
            share = float(((expected - second) @ (first - second)) / ((first - second) @ (first - second)))
            found.append(f"{which}: a = {share:.2f}")
            continue
        difference = second - first
        share = (difference @ second) / (difference @ difference)
        mistake = name_the_mistake(answer, [
            (share * first + (1 - share) * second,
             f"you did not keep a within [0, 1]: here a = {share:.2f}, a point beyond the end of the "
             "segment; clamp it"),
            ((1 - share.clamp(0, 1)) * first + share.clamp(0, 1) * second,
             "you swapped the weights: the point is a g1 + (1 - a) g2"),
            ((first + second) / 2, "that is the mean of the two; MGDA picks the point of the segment nearest "
                                   "the origin"),
            (first + second, "that is the sum of the two; MGDA picks the point of the segment nearest the "
                             "origin"),
            (first if first.norm() <= second.norm() else second,
             "that is the shorter of the two gradients; a point between them can be shorter still"),
        ], near)
        raise Wrong(f"on {which} the shortest point of the segment is a g1 + (1 - a) g2 with a = "
                    f"{float(share.clamp(0, 1)):.3f}, of length {expected.norm():.4g}; yours has length "
                    f"{answer.norm():.4g}" + mistake)
    return ("; ".join(found) + ". The point is never longer than the shorter gradient, and when the two "
            "conflict it is shorter than both: MGDA steps carefully when the tasks disagree.")


@exercise("Lesson 6, exercise 3: uncertainty weighting's loss (Kendall et al. 2018)")
def check_uncertainty_loss(uncertainty_loss, data_dir: str | None = None) -> str:
    """`uncertainty_loss(losses, log_variances) -> loss`: sum over tasks of exp(-s_i) L_i + s_i,
    differentiable in both (the log-variances s_i are learned). Tried on the real losses of a small model."""
    names = ("emotion", "sentiment")
    with torch.random.fork_rng(devices=[]):
        model = tiny_model({name: task(name, data_dir).label_names for name in names}).eval()
    with torch.no_grad():
        real = torch.stack([F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], name),
                                            batch["labels"])
                            for name in names for batch in [real_batch(name, 0, 16, data_dir)]])
    found = []
    for log_variances in ([0.5, -0.3], [real[0].log().item(), 1.0], [0.0, 0.0]):
        losses = real.clone()
        mine = torch.tensor(log_variances, requires_grad=True)
        theirs = torch.tensor(log_variances, requires_grad=True)
        expected = uncertainty_weighted_loss(losses, mine)
        right = expected.item()
        answer = call(uncertainty_loss, losses.clone(), theirs)
        value = as_number(answer, "your loss")
        if not math.isclose(value, right, rel_tol=1e-5, abs_tol=1e-7):
            s, L = mine.detach(), losses
            mistake = name_the_mistake(value, [
                (float((torch.exp(-s) * L).sum()), "you left out the + s_i: without it every s_i grows "
                                                   "without end, and every weight exp(-s_i) falls to 0"),
                (float((torch.exp(s) * L + s).sum()), "you wrote exp(s_i) L_i: the weight is exp(-s_i), "
                                                      "small for a task with a large variance"),
                (float((torch.exp(-s) * L - s).sum()), "you subtracted s_i; the regulariser is + s_i"),
                (float((torch.exp(-s) * L + s).mean()),  # with two tasks, also ½ exp(-s_i) L_i + ½ s_i
                 "yours is half of it: you averaged over the tasks (add them up), or wrote Kendall et al.'s "
                 "regression form ½ exp(-s_i) L_i + ½ s_i; the package uses exp(-s_i) L_i + s_i"),
            ], lambda a, b: math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7))
            raise Wrong(f"with losses {listed(dict(zip(names, L.tolist())), 3)} and log-variances "
                        f"{log_variances}, the loss is {right:.4f}; yours is {value:.4f}" + mistake)
        if not isinstance(answer, torch.Tensor) or not answer.requires_grad:
            raise Wrong("your loss is right but has no gradient: the log-variances are learned, so compute "
                        "it with torch operations (torch.exp, not math.exp or .item())")
        expected.backward()
        answer.backward()
        if theirs.grad is None or not torch.allclose(theirs.grad, mine.grad, atol=1e-6):
            raise Wrong(f"your loss's gradient with respect to the log-variances is {theirs.grad}; it should "
                        f"be {mine.grad.tolist()} (1 - exp(-s_i) L_i)")
        found.append(f"s = ({', '.join(f'{v:.2f}' for v in log_variances)}): {right:.3f}")
    return (f"on the real losses {listed(dict(zip(names, real.tolist())), 3)}: " + ", ".join(found)
            + ". For a fixed loss L_i the sum is smallest at s_i = log L_i, where the weight exp(-s_i) is "
            "1/L_i: a task whose loss stays large gets a smaller weight.")

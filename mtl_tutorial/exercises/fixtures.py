"""The real data every check runs on: TweetEval tweets, the packaged MiniLM, and one tiny random encoder.

The tiny encoder is the one the test suite trains too (tests/conftest.py builds it with `tiny_encoder`).
"""

from __future__ import annotations

import functools

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer, BertConfig, BertModel

from ..batching import encode, pad_batch
from ..data import Task, load_task
from ..model import MultiTaskModel, load_encoder, packaged_encoder_path


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


def tiny_encoder(seed: int = 0, dropout: float = 0.0) -> BertModel:
    """A 2-layer, 32-wide random BERT with MiniLM's vocabulary, drawn from `seed`: small enough to train in a
    blink, the same every time. The checks use it without dropout; the test suite saves one (conftest.py)."""
    config = BertConfig(vocab_size=tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    return BertModel(config)


def tiny_model(task_labels: dict[str, list[str]]) -> MultiTaskModel:
    """The tiny encoder (seed 0, no dropout) with one head per task, mean pooling and no head dropout:
    always the same, so that a check trains it exactly reproducibly."""
    return MultiTaskModel(tiny_encoder(seed=0), task_labels, pooling="mean", dropout=0.0)

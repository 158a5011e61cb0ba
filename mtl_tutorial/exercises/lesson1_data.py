"""Lesson 1's checks (notebooks/01_data): tokenise once, pad a batch, the majority-class baseline."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score

from ..batching import encode, pad_batch
from ..metrics import majority_baseline
from .fixtures import task, token_ids, tokenizer
from .verdicts import Wrong, as_number, as_tensor, call, exercise, name_the_mistake, same_number


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
    if answer is None:
        raise Wrong("your function returned None: did you forget `return`?")
    try:
        answer = [list(ids) for ids in answer]
    except TypeError:  # a number, or one flat list of ids
        raise Wrong("your answer is not one list of ids per tweet: return the tokenizer's input_ids for the "
                    "whole list of texts, a list of lists") from None
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


WHY_INTEGERS = {  # why each tensor of a batch holds whole numbers
    "input_ids": "the embedding layer looks each token id up as a row number, and a float is no row number",
    "attention_mask": ("it says yes (1) or no (0) for each position, and the tokenizer and the package "
                       "give it as integers; keep that type, so that your batches are the same as theirs"),
    "labels": ("cross-entropy reads integer labels as class numbers (float labels would mean a probability "
               "for every class, one row per tweet)"),
}


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
            raise Wrong(f"{key!r} holds {answer[key].dtype}; it must hold integers (torch.long): "
                        + WHY_INTEGERS[key])
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


def baseline_cases(data_dir: str | None) -> list[tuple[str, str, list[int], list[int]]]:
    """(task, what, training labels, test labels) a baseline is tried on: emotion's and sentiment's splits,
    whose train and test share their commonest label, then sentiment's training labels against its first
    100 dev tweets, where positive is commonest: there a baseline taken from the test labels shows."""
    cases = []
    tried = [("emotion", "emotion", "test", None), ("sentiment", "sentiment", "test", None),
             ("sentiment", "sentiment scored on its first 100 dev tweets", "dev", 100)]
    for name, what, split, count in tried:
        splits = task(name, data_dir).splits
        cases.append((name, what, splits["train"]["label"].tolist(), splits[split]["label"][:count].tolist()))
    return cases


@exercise("Lesson 1, exercise 3: the majority-class baseline")
def check_majority_baseline(majority_baseline_of, data_dir: str | None = None) -> str:
    """`majority_baseline(train_labels, test_labels, num_labels) -> {"accuracy": ..., "macro_f1": ...}`:
    the test scores of always answering the commonest TRAINING label."""
    found = []
    for name, which, train, test in baseline_cases(data_dir):
        names = task(name, data_dir).label_names
        expected = majority_baseline(name, train, test, len(names))
        answer = call(majority_baseline_of, list(train), list(test), len(names))
        if not isinstance(answer, dict) or not {"accuracy", "macro_f1"} <= set(answer):
            raise Wrong("return a dict with two numbers, {'accuracy': ..., 'macro_f1': ...}")
        accuracy, macro_f1 = (as_number(answer[key], f"your {key!r}") for key in ("accuracy", "macro_f1"))
        if accuracy > 1 or macro_f1 > 1:
            raise Wrong(f"your {which} scores are {accuracy:.4g} and {macro_f1:.4g}: give fractions between "
                        "0 and 1, not percents")
        counts = Counter(train).most_common()
        commonest, rarest, test_commonest = counts[0][0], counts[-1][0], Counter(test).most_common(1)[0][0]
        if not same_number(accuracy, expected["accuracy"]):
            mistake = name_the_mistake(accuracy, [
                (accuracy_score(test, [0] * len(test)),
                 f"you predicted label 0 ({names[0]}), not the commonest training label"),
                (accuracy_score(test, [rarest] * len(test)), "you predicted the RAREST training label"),
                (accuracy_score(test, [test_commonest] * len(test)),
                 (f"you took the commonest label of the TEST set ({names[test_commonest]}): a baseline may "
                  f"only learn from the training set, whose commonest label is {names[commonest]}")),
            ], same_number)
            raise Wrong(f"{which}: your accuracy is {accuracy:.4f}, it should be {expected['accuracy']:.4f}"
                        + mistake)
        if not same_number(macro_f1, expected["macro_f1"]):
            predictions, labels = [commonest] * len(test), list(range(len(names)))
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
            raise Wrong(f"{which}: your macro-F1 is {macro_f1:.4f}, it should be {expected['macro_f1']:.4f}"
                        + mistake)
        found.append(f"{which}: always {names[commonest]!r} gets accuracy {accuracy:.3f} but macro-F1 only "
                     f"{macro_f1:.3f}")
    return "; ".join(found) + ". Accuracy flatters a model that ignores the rare labels; macro-F1 does not."

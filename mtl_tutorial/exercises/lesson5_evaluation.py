"""Lesson 5's checks (notebooks/05_evaluation): the official scores of sentiment and stance, a confusion
matrix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ..metrics import confusion_table, official_score
from .fixtures import majority_predictions, task, word_model_predictions
from .verdicts import Wrong, as_number, call, exercise, listed, name_the_mistake


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
    averaged with equal weight (SemEval-2017 Task 4A). Given `predictions` (a `predictions_on_test` table),
    the score is also checked on that model's test predictions."""

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

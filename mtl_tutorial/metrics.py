"""Lesson step 5, the scores: each TweetEval task is judged by its own official metric.

emotion, hate, offensive, emoji: macro-F1;  sentiment: macro-recall;  irony: F1 of the ironic class;
stance: the mean of the F1 of 'against' and of 'favor'. Other tasks default to macro-F1.
"""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, recall_score

from .data import STANCE_TARGETS

OFFICIAL_METRIC = {
    "emotion": "macro-F1",
    "hate": "macro-F1",
    "offensive": "macro-F1",
    "emoji": "macro-F1",
    "sentiment": "macro-recall",
    "irony": "F1 of irony",
    **{f"stance_{target}": "mean F1 of against and favor" for target in STANCE_TARGETS},
}


def official_metric_name(task: str) -> str:
    return OFFICIAL_METRIC.get(task, "macro-F1")


def official_score(task: str, y_true, y_pred, num_labels: int) -> float:
    """The task's official TweetEval score (macro-F1 for tasks TweetEval does not have)."""
    labels = list(range(num_labels))
    if task == "sentiment":
        return float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    if task == "irony":
        return float(f1_score(y_true, y_pred, labels=[1], average="macro", zero_division=0))
    if task.startswith("stance_"):
        return float(f1_score(y_true, y_pred, labels=[1, 2], average="macro", zero_division=0))
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def scores(task: str, y_true, y_pred, num_labels: int) -> dict[str, float]:
    """Accuracy, macro-F1, macro-recall and the official score of one task's predictions."""
    labels = list(range(num_labels))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "official": official_score(task, y_true, y_pred, num_labels),
    }


def majority_baseline(task: str, train_labels, eval_labels, num_labels: int) -> dict[str, float]:
    """The scores of always answering the most frequent training label: the floor to beat."""
    majority = pd.Series(list(train_labels)).mode()[0]
    return scores(task, eval_labels, [majority] * len(eval_labels), num_labels)


def per_class_report(y_true, y_pred, label_names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of every label, as a table."""
    report = classification_report(y_true, y_pred, labels=list(range(len(label_names))),
                                   target_names=label_names, output_dict=True, zero_division=0)
    return pd.DataFrame(report).T


def confusion_table(y_true, y_pred, label_names: list[str]) -> pd.DataFrame:
    """Counts of (true label, predicted label): rows are the truth, columns the prediction."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(label_names))))
    return pd.DataFrame(matrix, index=pd.Index(label_names, name="true"),
                        columns=pd.Index(label_names, name="predicted"))

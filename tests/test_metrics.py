import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mtl_tutorial.metrics import confusion_table, majority_baseline, official_score, per_class_report, scores

TRUE = [0, 0, 1, 1, 2, 2, 2, 1]
PRED = [0, 1, 1, 1, 2, 0, 2, 2]


def test_scores_agree_with_scikit_learn():
    result = scores("emotion", TRUE, PRED, 3)
    assert result["accuracy"] == pytest.approx(accuracy_score(TRUE, PRED))
    assert result["macro_f1"] == pytest.approx(f1_score(TRUE, PRED, average="macro"))
    assert result["macro_recall"] == pytest.approx(recall_score(TRUE, PRED, average="macro"))
    assert result["official"] == result["macro_f1"]


def test_official_scores_by_hand():
    # recalls: class 0 1/2, class 1 2/3, class 2 2/3 -> sentiment is their mean
    assert official_score("sentiment", TRUE, PRED, 3) == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    # irony: F1 of class 1 only; precision 2/3 (pred 1 at idx 1,2,3), recall 2/3 -> 2/3
    irony_true, irony_pred = [0, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]
    assert official_score("irony", irony_true, irony_pred, 2) == pytest.approx(2 / 3)
    # stance: mean F1 of against (1) and favor (2), 'none' (0) ignored.
    # against: tp 2, fp 1, fn 1 -> 2/3; favor: tp 2, fp 1, fn 1 -> 2/3
    assert official_score("stance_abortion", TRUE, PRED, 3) == pytest.approx(2 / 3)
    # a label never predicted nor present still counts in macro-F1 (as 0), like TweetEval's scorer
    assert official_score("emotion", [0, 1], [0, 1], 4) == pytest.approx(0.5)


def test_majority_baseline_and_tables():
    baseline = majority_baseline("sentiment", [1, 1, 2], [0, 1, 2, 1], 3)
    assert baseline["accuracy"] == 0.5 and baseline["official"] == pytest.approx(1 / 3)
    table = confusion_table(TRUE, PRED, ["a", "b", "c"])
    assert table.loc["c", "a"] == 1 and table.values.sum() == len(TRUE)
    report = per_class_report(TRUE, PRED, ["a", "b", "c"])
    assert report.loc["b", "recall"] == pytest.approx(2 / 3)

"""Classification metrics: hand-worked values, agreement with scikit-learn, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics import accuracy, classification_report, macro_f1, roc_auc

Y_TRUE = [0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 2, 2, 2, 1]


def test_hand_computed_accuracy_and_macro_f1() -> None:
    # correct at positions 0, 1, 3, 4 -> 4 / 6
    assert accuracy(np.array(Y_TRUE), np.array(Y_PRED)) == pytest.approx(4 / 6)
    # class 0: TP 1, FP 0, FN 0 -> F1 1; class 1: TP 1, FP 1, FN 1 -> F1 1/2;
    # class 2: TP 2, FP 1, FN 1 -> F1 2/3; macro = (1 + 1/2 + 2/3) / 3 = 13/18
    assert macro_f1(torch.tensor(Y_TRUE), torch.tensor(Y_PRED)) == pytest.approx(13 / 18)


def test_report_keys_and_values() -> None:
    scores = np.eye(3)[Y_PRED] * 0.8 + 0.1  # rows sum to 1.1; AUC does not need probabilities
    report = classification_report(np.array(Y_TRUE), np.array(Y_PRED), scores)
    assert set(report) == {
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "n_samples",
        "roc_auc",
    }
    # precision per class 1, 1/2, 2/3 and recall per class 1, 1/2, 2/3 (same confusion counts)
    assert report["macro_precision"] == pytest.approx(13 / 18)
    assert report["macro_recall"] == pytest.approx(13 / 18)
    assert report["n_samples"] == 6.0
    assert all(type(value) is float for value in report.values())
    assert "roc_auc" not in classification_report(Y_TRUE, Y_PRED)


def test_binary_auc_hand_computed_and_ties() -> None:
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered correctly
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    # a tied pair counts one half
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # (n, 2) probabilities use column 1
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert roc_auc(np.array([0, 0, 1, 1]), probs) == pytest.approx(0.75)


def test_agrees_with_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=300)
    pred = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 4, size=300))
    logits = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert accuracy(truth, pred) == pytest.approx(skm.accuracy_score(truth, pred))
    assert macro_f1(truth, pred) == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    expected = skm.roc_auc_score(truth, probs, multi_class="ovr", average="macro")
    assert roc_auc(torch.from_numpy(truth), torch.from_numpy(probs)) == pytest.approx(expected)
    binary = (truth > 1).astype(int)
    assert roc_auc(binary, logits[:, 2]) == pytest.approx(skm.roc_auc_score(binary, logits[:, 2]))


def test_multiclass_auc_on_logits_is_mean_of_per_class_auc() -> None:
    rng = np.random.default_rng(1)
    truth = np.arange(60) % 3
    logits = rng.normal(size=(60, 3)) + np.eye(3)[truth]
    per_class = [skm.roc_auc_score(truth == c, logits[:, c]) for c in range(3)]
    assert roc_auc(truth, logits) == pytest.approx(np.mean(per_class))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: accuracy([0, 1, 1], [0, 1]), r"y_pred: expected shape \(3,\)"),
        (lambda: accuracy(np.zeros((3, 2)), [0, 1, 1]), r"y_true: expected a 1-D array"),
        (lambda: macro_f1([], []), r"y_true: expected at least one value"),
        (lambda: roc_auc([0, 1, 1], np.zeros((3, 3, 1))), r"scores: expected shape \(3,\)"),
        (lambda: roc_auc([0, 1, 1], [0.1, 0.2]), r"scores: expected shape \(3,\)"),
        (lambda: roc_auc([1, 1, 1], [0.1, 0.2, 0.3]), r"only one class is present"),
        (lambda: roc_auc([0, 1, 3], np.zeros((3, 3))), r"y_true: labels must lie in 0..2"),
        (lambda: roc_auc([0, 1, 1, 1], np.eye(3)[[0, 1, 1, 1]]), r"class 2.*only one class"),
        (lambda: roc_auc([0, 0.5, 1], [0.1, 0.2, 0.3]), r"y_true: expected integer"),
        (lambda: roc_auc([0, 1, 1], [0.1, float("nan"), 0.3]), r"scores: contains NaN"),
    ],
)
def test_bad_input_gives_one_line_error(call: object, message: str) -> None:
    with pytest.raises(TowerkitError, match=message) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)

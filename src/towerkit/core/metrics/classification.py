"""Classification metrics: thin, validated wrappers around scikit-learn.

Inputs are numpy arrays or torch tensors; every function returns plain Python floats.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics._inputs import ArrayLike, as_1d, as_float, as_int_labels, to_numpy


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of predictions equal to the true label."""
    truth, pred = _labels_pair(y_true, y_pred)
    return float(skm.accuracy_score(truth, pred))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unweighted mean of per-class F1 over labels seen in y_true or y_pred (undefined F1 = 0)."""
    truth, pred = _labels_pair(y_true, y_pred)
    return float(skm.f1_score(truth, pred, average="macro", zero_division=0))


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC-AUC from scores or probabilities.

    Binary: ``y_true`` in {0, 1} and ``scores`` of shape (n,) (higher means class 1) or (n, 2).
    Multiclass: ``y_true`` in {0..C-1} and ``scores`` of shape (n, C); the result is the
    one-vs-rest macro average, i.e. the mean over classes of the binary AUC of column c against
    ``y_true == c``. Unlike scikit-learn's ``multi_class="ovr"`` the rows need not sum to 1, so
    raw logits work too (the value equals scikit-learn's whenever the rows are probabilities).
    Ties in scores count one half, as in scikit-learn.
    """
    truth = as_int_labels(y_true, "y_true")
    score_array = to_numpy(scores, "scores")
    n = truth.shape[0]
    if score_array.ndim == 1 or (score_array.ndim == 2 and score_array.shape[1] == 2):
        column = score_array if score_array.ndim == 1 else score_array[:, 1]
        return _binary_auc(truth, as_float(column, "scores", (n,)), "y_true")
    if score_array.ndim != 2:
        raise TowerkitError(
            f"scores: expected shape ({n},) for binary or ({n}, n_classes) for multiclass, "
            f"got {score_array.shape}"
        )
    n_classes = score_array.shape[1]
    score_array = as_float(score_array, "scores", (n, n_classes))
    if truth.min() < 0 or truth.max() >= n_classes:
        raise TowerkitError(
            f"y_true: labels must lie in 0..{n_classes - 1} to match scores with {n_classes} "
            f"columns, got values from {truth.min()} to {truth.max()}"
        )
    per_class = [
        _binary_auc((truth == c).astype(np.int64), score_array[:, c], f"y_true (class {c})")
        for c in range(n_classes)
    ]
    return float(np.mean(per_class))


def classification_report(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike | None = None
) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1, sample count and, given scores, ROC-AUC."""
    truth, pred = _labels_pair(y_true, y_pred)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        truth, pred, average="macro", zero_division=0
    )
    report = {
        "accuracy": float(skm.accuracy_score(truth, pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "n_samples": float(truth.shape[0]),
    }
    if scores is not None:
        report["roc_auc"] = roc_auc(y_true, scores)
    return report


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth = as_1d(y_true, "y_true")
    pred = as_1d(y_pred, "y_pred", truth.shape[0])
    return truth, pred


def _binary_auc(truth: np.ndarray, scores: np.ndarray, name: str) -> float:
    values = set(np.unique(truth).tolist())
    if not values <= {0, 1}:
        raise TowerkitError(
            f"{name}: binary ROC-AUC needs labels in {{0, 1}}, got {sorted(values)}"
        )
    if len(values) < 2:
        raise TowerkitError(
            f"{name}: ROC-AUC is undefined when only one class is present "
            f"(all labels are {values.pop()})"
        )
    return float(skm.roc_auc_score(truth, scores))

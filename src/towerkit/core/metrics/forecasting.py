"""Point and quantile forecast errors; inputs are numpy arrays or torch tensors.

MAE, RMSE and pinball loss come from scikit-learn. sMAPE and MASE are written here because
scikit-learn has neither (its MAPE is a different metric) and the libraries that do
(statsforecast / utilsforecast) work on long data frames, not arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn import metrics as skm

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics._inputs import ArrayLike, as_float


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error over all values (any shape, same for both)."""
    truth, pred = _pair(y_true, y_pred)
    return float(skm.mean_absolute_error(truth.reshape(-1), pred.reshape(-1)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error over all values."""
    truth, pred = _pair(y_true, y_pred)
    return float(skm.root_mean_squared_error(truth.reshape(-1), pred.reshape(-1)))


def smape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Symmetric MAPE on the 0..200 scale: mean of 200 |y - f| / (|y| + |f|).

    A point where both y and f are 0 is a perfect forecast and contributes 0 (not 0/0).
    """
    truth, pred = _pair(y_true, y_pred)
    return float(np.mean(_smape_terms(truth, pred)))


def mase(y_true: ArrayLike, y_pred: ArrayLike, y_train: ArrayLike, m: int = 1) -> float:
    """Mean absolute scaled error: MAE over the in-sample MAE of the seasonal naive forecast.

    The scale is mean |y_train[t] - y_train[t - m]| over the training series (period m >= 1).
    """
    truth, pred = _pair(y_true, y_pred)
    train = as_float(y_train, "y_train")
    if train.ndim != 1:
        raise TowerkitError(f"y_train: expected a 1-D series of shape (T,), got {train.shape}")
    scale = _naive_scale(train[None, :], np.array([train.shape[0]]), _check_period(m))[0]
    return float(np.mean(np.abs(truth - pred)) / scale)


def pinball_loss(
    y_true: ArrayLike, y_pred: ArrayLike, quantiles: Sequence[float]
) -> dict[str, float]:
    """Pinball (quantile) loss per quantile and their mean.

    ``y_pred`` has the shape of ``y_true`` plus a last axis with one column per quantile. Keys:
    ``"pinball@<q>"`` for each q and ``"pinball"`` for the mean over quantiles.
    """
    levels = _check_quantiles(quantiles)
    truth = as_float(y_true, "y_true")
    pred = as_float(y_pred, "y_pred", (*truth.shape, len(levels)))
    flat_truth, flat_pred = truth.reshape(-1), pred.reshape(-1, len(levels))
    losses = {
        f"pinball@{q:g}": float(skm.mean_pinball_loss(flat_truth, flat_pred[:, i], alpha=q))
        for i, q in enumerate(levels)
    }
    losses["pinball"] = float(np.mean(list(losses.values())))
    return losses


def forecast_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, y_train: ArrayLike | None = None, m: int = 1
) -> dict[str, float]:
    """MAE, RMSE, sMAPE and, when the training series is given, MASE for one series."""
    report = {
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "smape": smape(y_true, y_pred),
    }
    if y_train is not None:
        report["mase"] = mase(y_true, y_pred, y_train, m)
    return report


def batched_forecast_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_train: ArrayLike | Sequence[ArrayLike] | None = None,
    m: int = 1,
    quantile_pred: ArrayLike | None = None,
    quantiles: Sequence[float] | None = None,
) -> dict[str, float]:
    """Each metric per series over the horizon, then the mean over series (as in M4).

    ``y_true`` / ``y_pred`` have shape (n_series, horizon). ``y_train`` is an
    (n_series, T) array or a list of 1-D training series of any lengths; with it MASE is
    included. ``quantile_pred`` of shape (n_series, horizon, Q) with ``quantiles`` adds the
    pinball losses (mean over all points, which equals the mean over series at equal horizons).
    """
    truth = as_float(y_true, "y_true")
    if truth.ndim != 2:
        raise TowerkitError(f"y_true: expected shape (n_series, horizon), got {truth.shape}")
    pred = as_float(y_pred, "y_pred", truth.shape)
    errors = truth - pred
    report = {
        "mae": float(np.mean(np.abs(errors).mean(axis=1))),
        "rmse": float(np.mean(np.sqrt((errors**2).mean(axis=1)))),
        "smape": float(np.mean(_smape_terms(truth, pred).mean(axis=1))),
        "n_series": float(truth.shape[0]),
    }
    if y_train is not None:
        padded, lengths = _stack_series(y_train, truth.shape[0])
        scales = _naive_scale(padded, lengths, _check_period(m))
        report["mase"] = float(np.mean(np.abs(errors).mean(axis=1) / scales))
    if (quantile_pred is None) != (quantiles is None):
        raise TowerkitError("quantiles: give both quantile_pred and quantiles, or neither")
    if quantile_pred is not None and quantiles is not None:
        report.update(pinball_loss(truth, quantile_pred, quantiles))
    return report


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth = as_float(y_true, "y_true")
    return truth, as_float(y_pred, "y_pred", truth.shape)


def _smape_terms(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    denominator = np.abs(truth) + np.abs(pred)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, 200.0 * np.abs(truth - pred) / safe)


def _check_period(m: int) -> int:
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise TowerkitError(f"m: expected a seasonal period >= 1, got {m!r}")
    return int(m)


def _naive_scale(series: np.ndarray, lengths: np.ndarray, m: int) -> np.ndarray:
    """Per row: mean |y[t] - y[t - m]| over the first lengths[row] values of that row."""
    if np.any(lengths <= m):
        row = int(np.argmax(lengths <= m))
        raise TowerkitError(
            f"y_train: series {row} has {lengths[row]} values; MASE with m={m} needs more than {m}"
        )
    steps = np.abs(series[:, m:] - series[:, :-m])
    in_series = np.arange(steps.shape[1])[None, :] < (lengths - m)[:, None]
    scales = np.where(in_series, steps, 0.0).sum(axis=1) / (lengths - m)
    if np.any(scales == 0):
        row = int(np.argmax(scales == 0))
        raise TowerkitError(
            f"y_train: series {row} is constant at period m={m}, so the naive-forecast scale of "
            "MASE is zero; use MAE or sMAPE for it"
        )
    return scales


def _stack_series(
    y_train: ArrayLike | Sequence[ArrayLike], n_series: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training series as a zero-padded (n_series, max_T) array and their lengths."""
    if isinstance(y_train, np.ndarray | torch.Tensor):
        array = as_float(y_train, "y_train")
        if array.ndim != 2 or array.shape[0] != n_series:
            raise TowerkitError(
                f"y_train: expected shape ({n_series}, T) or a list of {n_series} 1-D series, "
                f"got {array.shape}"
            )
        return array, np.full(n_series, array.shape[1])
    series = [as_float(s, f"y_train[{i}]") for i, s in enumerate(y_train)]
    if len(series) != n_series or any(s.ndim != 1 for s in series):
        raise TowerkitError(
            f"y_train: expected {n_series} 1-D training series, one per row of y_true"
        )
    lengths = np.array([s.shape[0] for s in series])
    padded = np.zeros((n_series, int(lengths.max())))
    for row, values in enumerate(series):
        padded[row, : values.shape[0]] = values
    return padded, lengths


def _check_quantiles(quantiles: Sequence[float]) -> list[float]:
    levels = [float(q) for q in quantiles]
    if not levels or any(not 0.0 < q < 1.0 for q in levels):
        raise TowerkitError(
            f"quantiles: expected one or more levels strictly between 0 and 1, got {quantiles}"
        )
    return levels

"""Forecasting metrics: hand-worked values, scikit-learn, batched == per series, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics import (
    batched_forecast_metrics,
    forecast_metrics,
    mae,
    mase,
    pinball_loss,
    rmse,
    smape,
)

Y_TRUE = np.array([2.0, 0.0, 4.0, 0.0])
Y_PRED = np.array([1.0, 0.0, 6.0, 2.0])
Y_TRAIN = np.array([1.0, 3.0, 2.0, 6.0])


def test_hand_computed_point_errors() -> None:
    # errors 1, 0, -2, -2 -> MAE 5/4, RMSE sqrt((1 + 0 + 4 + 4) / 4) = 1.5
    assert mae(Y_TRUE, Y_PRED) == pytest.approx(1.25)
    assert rmse(torch.from_numpy(Y_TRUE), torch.from_numpy(Y_PRED)) == pytest.approx(1.5)
    # sMAPE terms: 200*1/3, 0 (0/0 -> perfect), 200*2/10, 200*2/2 -> (66.667 + 0 + 40 + 200) / 4
    assert smape(Y_TRUE, Y_PRED) == pytest.approx((200 / 3 + 40 + 200) / 4)
    assert smape(np.zeros(3), np.zeros(3)) == 0.0
    assert smape(np.array([1.0]), np.array([-1.0])) == pytest.approx(200.0)  # the top of the scale


def test_hand_computed_mase() -> None:
    # naive m=1 steps |3-1|, |2-3|, |6-2| = 2, 1, 4 -> scale 7/3; MAE 1.25 -> 1.25 / (7/3) = 15/28
    assert mase(Y_TRUE, Y_PRED, Y_TRAIN) == pytest.approx(15 / 28)
    # m=2 steps |2-1|, |6-3| = 1, 3 -> scale 2 -> 1.25 / 2
    assert mase(Y_TRUE, Y_PRED, Y_TRAIN, m=2) == pytest.approx(0.625)
    report = forecast_metrics(Y_TRUE, Y_PRED, Y_TRAIN)
    assert report == pytest.approx(
        {"mae": 1.25, "rmse": 1.5, "smape": (200 / 3 + 40 + 200) / 4, "mase": 15 / 28}
    )
    assert "mase" not in forecast_metrics(Y_TRUE, Y_PRED)


def test_hand_computed_pinball_and_sklearn() -> None:
    # y = 2, predictions 1 (q 0.1) and 3 (q 0.9): under by 1 -> 0.1 * 1; over by 1 -> 0.1 * 1
    losses = pinball_loss(np.array([2.0]), np.array([[1.0, 3.0]]), [0.1, 0.9])
    assert losses == pytest.approx({"pinball@0.1": 0.1, "pinball@0.9": 0.1, "pinball": 0.1})
    rng = np.random.default_rng(0)
    truth, quantile_pred = rng.normal(size=(6, 5)), rng.normal(size=(6, 5, 3))
    losses = pinball_loss(truth, quantile_pred, [0.1, 0.5, 0.9])
    for i, q in enumerate([0.1, 0.5, 0.9]):
        expected = skm.mean_pinball_loss(truth.ravel(), quantile_pred[..., i].ravel(), alpha=q)
        assert losses[f"pinball@{q:g}"] == pytest.approx(expected)
    # the 0.5 quantile loss is half the MAE of the median forecast
    assert losses["pinball@0.5"] == pytest.approx(mae(truth, quantile_pred[..., 1]) / 2)


def test_batched_equals_mean_of_per_series() -> None:
    rng = np.random.default_rng(1)
    truth, pred = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    ragged_train = [rng.normal(size=int(n)) for n in rng.integers(5, 30, size=7)]
    quantile_pred = rng.normal(size=(7, 4, 2))
    batched = batched_forecast_metrics(
        truth, pred, ragged_train, m=2, quantile_pred=quantile_pred, quantiles=[0.2, 0.8]
    )
    singles = [forecast_metrics(truth[i], pred[i], ragged_train[i], m=2) for i in range(7)]
    for name in ("mae", "rmse", "smape", "mase"):
        assert batched[name] == pytest.approx(np.mean([s[name] for s in singles]))
    assert batched["pinball@0.2"] == pytest.approx(
        pinball_loss(truth, quantile_pred, [0.2, 0.8])["pinball@0.2"]
    )
    assert batched["n_series"] == 7.0
    dense_train = rng.normal(size=(7, 12))
    from_tensor = batched_forecast_metrics(
        torch.from_numpy(truth), pred, torch.from_numpy(dense_train)
    )
    assert from_tensor["mase"] == pytest.approx(
        np.mean([mase(truth[i], pred[i], dense_train[i]) for i in range(7)])
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mae(np.zeros(3), np.zeros(4)), r"y_pred: expected shape \(3,\), got \(4,\)"),
        (lambda: rmse(np.array([1.0, np.nan]), np.zeros(2)), r"y_true: contains NaN"),
        (
            lambda: mase(np.zeros(2), np.zeros(2), np.full(5, 3.0)),
            r"y_train: series 0 is constant at period m=1",
        ),
        (
            lambda: mase(np.zeros(2), np.zeros(2), np.array([1.0, 2.0]), m=2),
            r"y_train: series 0 has 2 values; MASE with m=2",
        ),
        (
            lambda: mase(np.zeros(2), np.zeros(2), np.ones((2, 3))),
            r"y_train: expected a 1-D series",
        ),
        (
            lambda: mase(np.zeros(2), np.zeros(2), np.arange(5.0), m=0),
            r"m: expected a seasonal period >= 1",
        ),
        (
            lambda: pinball_loss(np.zeros(3), np.zeros((3, 1)), [0.1, 0.9]),
            r"y_pred: expected shape \(3, 2\)",
        ),
        (
            lambda: pinball_loss(np.zeros(3), np.zeros((3, 1)), [1.5]),
            r"quantiles: expected one or more levels",
        ),
        (
            lambda: batched_forecast_metrics(np.zeros(3), np.zeros(3)),
            r"y_true: expected shape \(n_series, horizon\)",
        ),
        (
            lambda: batched_forecast_metrics(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((3, 5))),
            r"y_train: expected shape \(2, T\)",
        ),
        (
            lambda: batched_forecast_metrics(
                np.zeros((2, 3)), np.zeros((2, 3)), [np.arange(5.0), np.ones(5)]
            ),
            r"y_train: series 1 is constant",
        ),
        (
            lambda: batched_forecast_metrics(np.zeros((2, 3)), np.zeros((2, 3)), quantiles=[0.5]),
            r"quantiles: give both",
        ),
    ],
)
def test_bad_input_gives_one_line_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(TowerkitError, match=message) as info:
        call()
    assert "\n" not in str(info.value)

"""Recency weighting of the training windows (``data.recency_halflife``): exact weights, a mean
of 1 over every window, and a pinball loss that becomes the weighted mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.forecast.data import (
    ForecastDataConfig,
    SplitWindows,
    split_windows,
    training_datasets,
)
from towerkit.forecast.dataset import Panel
from towerkit.forecast.model import pinball

CONFIG = ForecastDataConfig(lookback=6, min_history=6, scaling="mase")


def windows(panel: Panel, cutoffs: list[int]) -> SplitWindows:
    arrays = split_windows(panel, cutoffs, CONFIG, panel.target_indices())
    return SplitWindows(arrays, np.zeros((len(arrays.pairs), 0), dtype=np.float32))


def weights_of(dataset: object, split: SplitWindows) -> np.ndarray:
    mask = dataset.tensors["mask"].numpy()  # type: ignore[attr-defined]
    known = split.arrays.y_mask > 0
    per_window = np.where(known, mask / np.where(known, split.arrays.y_mask, 1), np.nan)
    return np.nanmax(per_window, axis=(1, 2))


def test_no_half_life_leaves_every_window_alike(panel: Panel) -> None:
    train = windows(panel, [10, 11, 12])
    (dataset,) = training_datasets([train], 0.0)
    np.testing.assert_array_equal(dataset.tensors["mask"].numpy(), train.arrays.y_mask)


def test_weights_halve_every_half_life_and_average_one(panel: Panel) -> None:
    train, val = windows(panel, [10, 16]), windows(panel, [22])
    datasets = training_datasets([train, val], 6.0)
    got = [weights_of(d, w) for d, w in zip(datasets, [train, val], strict=True)]
    cutoffs = np.concatenate([train.arrays.pairs[:, 1], val.arrays.pairs[:, 1]])
    raw = 0.5 ** ((22 - cutoffs) / 6.0)  # the latest cutoff of all the windows is 22
    np.testing.assert_allclose(np.concatenate(got), raw / raw.mean(), rtol=1e-6)
    assert np.concatenate(got).mean() == pytest.approx(1.0)
    assert got[0][train.arrays.pairs[:, 1] == 10][0] == pytest.approx(got[1][0] / 4, rel=1e-6)


def test_the_pinball_loss_becomes_the_weighted_mean(panel: Panel) -> None:
    train = windows(panel, [10, 16, 22])
    (plain,) = training_datasets([train], 0.0)
    (weighted,) = training_datasets([train], 3.0)
    y, mask = plain.tensors["y"], plain.tensors["mask"]
    pred = y.unsqueeze(-1) + torch.randn(*y.shape, 3, generator=torch.Generator().manual_seed(0))
    levels = [0.1, 0.5, 0.9]
    per_window = [
        pinball(pred[i : i + 1], y[i : i + 1], mask[i : i + 1], levels) for i in range(len(y))
    ]
    w = torch.from_numpy(weights_of(weighted, train)) * mask.sum(dim=(1, 2))
    expected = (torch.stack(per_window) * w).sum() / w.sum()
    found = pinball(pred, y, weighted.tensors["mask"], levels)
    assert float(found) == pytest.approx(float(expected), rel=1e-5)


def test_a_negative_half_life_is_refused() -> None:
    with pytest.raises(ConfigError, match="recency_halflife"):
        ForecastDataConfig(recency_halflife=-1.0)

"""Recalibration from recent outcomes: which cutoffs it reads (only unseen ones whose targets are
known by then), the exact correction, the model's own band where there is none, and no truth
from after a cutoff reaching that cutoff's forecast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from towerkit.forecast.recalibration import (
    apply_band,
    correction,
    pool_cutoffs,
    recalibrate,
    recent_cutoffs,
)


def test_recent_cutoffs_are_unseen_and_known_by_the_cutoff() -> None:
    assert recent_cutoffs(20, unseen=10, horizon=3, count=6) == (12, 13, 14, 15, 16, 17)
    assert recent_cutoffs(14, unseen=10, horizon=3, count=6) == (10, 11)  # training before 10
    assert recent_cutoffs(12, unseen=10, horizon=3, count=6) == ()  # 10's months end at 13
    assert pool_cutoffs([13, 14, 20], 10, 3, 2) == [10, 11, 16, 17]
    assert pool_cutoffs([20], None, 3, 2) == [] and pool_cutoffs([20], 10, 3, 0) == []


def test_the_correction_moves_the_median_by_the_median_residual_and_covers_around_it() -> None:
    rng = np.random.default_rng(0)
    n = 301
    median = rng.normal(0, 1, (n, 3, 2))
    truth = median - 0.7 + rng.normal(0, 0.5, (n, 3, 2))  # the median runs 0.7 too high
    quantiles = np.stack([median - 0.1, median, median + 0.1], axis=-1)  # a band too narrow
    known = np.ones_like(truth)
    known[:100, 0, 0] = 0
    fix = correction(quantiles, truth, known, [0.1, 0.5, 0.9], (4, 5))
    for h, t in np.ndindex(3, 2):
        cell = known[:, h, t] > 0
        assert fix.offset[h, t] == pytest.approx(np.median(truth[cell, h, t] - median[cell, h, t]))
        moved = apply_band(
            quantiles[cell, h, t][None], fix.offset[h, t][None], *[fix.shift[h, t][None]] * 2
        )[0]
        inside = (moved[:, 0] <= truth[cell, h, t]) & (truth[cell, h, t] <= moved[:, 2])
        assert inside.mean() >= 0.8
    assert np.all(np.abs(fix.offset + 0.7) < 0.15) and fix.cutoffs == (4, 5)


def test_apply_band_moves_as_the_model_does(small_model: Callable[..., Any]) -> None:
    import torch

    torch.manual_seed(0)
    x, static, base = torch.randn(5, 12, 9), torch.randn(5, 12), torch.randn(5, 3, 6)
    model = small_model(base="theta").eval()
    plain = model(x, static, None, base).detach().numpy().astype(np.float64)
    lower, upper = np.linspace(-0.1, 0.4, 18).reshape(3, 6), np.linspace(0.5, 0.0, 18).reshape(3, 6)
    model.config.interval_shift, model.config.interval_shift_upper = lower.tolist(), upper.tolist()
    moved = model(x, static, None, base).detach().numpy()
    found = apply_band(plain, np.zeros((5, 3, 6)), lower[None], upper[None])
    np.testing.assert_allclose(found, moved, atol=1e-6)


@pytest.fixture()
def trained(small_recipe: Callable[..., Any], tmp_path: Path) -> Any:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.recipe import train

    return train(
        small_recipe("calibrate=true", "data.n_test_cutoffs=8"),
        registry=ModelRegistry(tmp_path / "r.db"),
        runs_root=tmp_path / "runs",
    )


def test_the_recipe_records_its_last_training_month(
    trained: Any, small_recipe: Callable[..., Any], tmp_path: Path
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.recipe import train

    data = trained.data
    splits = data.splits
    assert trained.model.config.trained_through == data.panel.label(splits.val[-1] + 3)
    assert trained.model.config.trained_through == data.panel.label(splits.test[0])  # refit
    plain = train(
        small_recipe("refit=false"),
        registry=ModelRegistry(tmp_path / "r2.db"),
        runs_root=tmp_path / "runs2",
    )
    last = plain.data.splits.train[-1]
    assert plain.model.config.trained_through == data.panel.label(last + 3)


def test_each_cutoff_is_corrected_from_earlier_known_outcomes_only(trained: Any) -> None:
    from towerkit.forecast.data import SplitWindows, predict_scaled
    from towerkit.forecast.recalibration import band_as_trained

    model, data = trained.model, trained.data
    test = data.splits.test
    windows = data.test("real", progress=False)
    cutoffs = windows.arrays.pairs[:, 1]
    found, fixes = recalibrate(model, data, windows, count=2, min_windows=1)
    calibrated = predict_scaled(model, windows)
    # the first 3 test cutoffs have no unseen cutoff with known targets: the model's own band
    early = np.isin(cutoffs, test[:3])
    np.testing.assert_array_equal(found[early], calibrated[early])
    assert sorted(fixes) == test[3:]
    at = test[5]
    assert fixes[at].cutoffs == (test[1], test[2])
    with band_as_trained(model):
        plain = predict_scaled(model, windows)
    pool = np.isin(cutoffs, [test[1], test[2]])
    a = windows.arrays
    expected = correction(plain[pool], a.y[pool], a.y_mask[pool], model.config.quantiles)
    np.testing.assert_allclose(fixes[at].offset, expected.offset)
    here = cutoffs == at
    moved = apply_band(
        plain[here], expected.offset[None], expected.shift[None], expected.shift[None]
    )
    np.testing.assert_allclose(found[here], moved)
    # the truths of later windows (targets not known at ``at``) change nothing at ``at``
    later = cutoffs > at - 3
    a.y[later] += 5.0
    again, _ = recalibrate(model, data, SplitWindows(a, windows.text), count=2, min_windows=1)
    np.testing.assert_array_equal(again[here], found[here])
    assert not np.allclose(again[cutoffs == test[-1]], found[cutoffs == test[-1]])
    # too few windows (a handful of repositories) say little about a period: no correction
    few, _ = recalibrate(model, data, windows, count=2, min_windows=int(pool.sum()) + 1)
    np.testing.assert_array_equal(few[here], calibrated[here])
    # a model that does not record its training months keeps its own band everywhere
    model.config.trained_through = None
    same, none = recalibrate(model, data, windows, count=2, min_windows=1)
    np.testing.assert_array_equal(same, calibrated)
    assert none == {}

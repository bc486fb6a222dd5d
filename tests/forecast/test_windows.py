"""Time-only splits (the leakage rule), windows and exact inverse scaling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.forecast.dataset import TARGETS, Panel
from towerkit.forecast.windows import (
    Scaling,
    Splits,
    apply_scale,
    build_windows,
    fit_scale,
    inverse_scale,
    make_splits,
    panel_context,
    window_index,
)

HORIZON = 3


def test_no_target_month_crosses_the_next_cutoff(panel: Panel) -> None:
    splits = make_splits(panel.n_months, HORIZON, n_val=3, n_test=4, lookback_min=6)
    assert splits.test[-1] + HORIZON == panel.end  # the last cutoff whose targets all exist
    assert len(splits.test) == 4 and len(splits.val) == 3
    for split, next_cutoff in ((splits.train, splits.val[0]), (splits.val, splits.test[0])):
        pairs = window_index(panel, split, min_history=6, horizon=HORIZON)
        assert len(pairs) > 0
        # every (repo, cutoff) with 6 months of history by the cutoff and all its targets
        expected = [
            (r, c)
            for c in split
            for r in range(len(panel.repos))
            if c - int(panel.first[r]) + 1 >= 6 and c + HORIZON <= panel.end
        ]
        assert pairs.tolist() == [list(pair) for pair in expected]
        target_months = pairs[:, 1:2] + np.arange(1, HORIZON + 1)[None, :]
        assert target_months.max() <= next_cutoff  # would fail if a target crossed the cutoff
    every = [c for s in (splits.train, splits.val, splits.test) for c in s]
    assert every == sorted(every) and len(set(every)) == len(every)


def test_check_rejects_leaking_splits() -> None:
    with pytest.raises(TowerkitError, match="training target month"):
        Splits(train=[0, 1, 2, 3], val=[5, 6], test=[9], horizon=3).check()
    with pytest.raises(TowerkitError, match="validation target month"):
        Splits(train=[0], val=[3, 4], test=[6], horizon=3).check()
    Splits(train=[0, 1, 2], val=[5, 6], test=[9], horizon=3).check()


def test_too_short_for_the_cutoffs() -> None:
    with pytest.raises(TowerkitError, match="no training cutoff"):
        make_splits(20, HORIZON, n_val=6, n_test=12, lookback_min=6)


@pytest.mark.parametrize("scaling", ["log", "naive", "mase"])
def test_scaling_round_trip_is_exact(scaling: Scaling) -> None:
    rng = np.random.default_rng(0)
    x = rng.gamma(0.5, 200.0, size=(5, 24, 4))
    x[0, :, 1] = 7.0  # flat: the std floor keeps it finite
    x[1, :10] = np.nan  # months before a repository existed
    x[2, 3, 2] = -3.0
    x[3] = np.nan  # a metric file that is missing altogether
    mean, std = fit_scale(x, scaling)
    z = apply_scale(x, mean, std, scaling)
    back = inverse_scale(z, mean, std, scaling)
    np.testing.assert_allclose(back, x, rtol=1e-12, atol=1e-9)
    assert np.isnan(back[1, :10]).all() and np.isnan(back[3]).all()
    assert np.isfinite(mean).all() and (std > 0).all()
    present = z[~np.isnan(z)]
    assert np.isfinite(present).all()


@pytest.mark.parametrize("scaling", ["log", "naive", "mase"])
def test_window_targets_invert_to_the_true_values(panel: Panel, scaling: Scaling) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [20, 25], min_history=6, horizon=HORIZON)
    windows = build_windows(panel, pairs, 12, HORIZON, targets, scaling)
    assert windows.x.shape == (len(pairs), 12, len(panel.features) + 3)
    assert windows.y.shape == windows.y_mask.shape == (len(pairs), HORIZON, len(targets))
    raw = inverse_scale(
        windows.y.astype(np.float64), windows.mean[:, targets], windows.std[:, targets], scaling
    )
    for i, (r, c) in enumerate(pairs):
        truth = panel.values[r, c + 1 : c + 1 + HORIZON][:, targets]
        known = windows.y_mask[i] == 1
        np.testing.assert_allclose(raw[i][known], truth[known], rtol=1e-4)
        assert np.array_equal(known, ~np.isnan(truth))  # missing files are masked


@pytest.mark.parametrize("scaling", ["log", "naive", "mase"])
def test_test_windows_are_scaled_like_training_windows(
    corpus: Path, tmp_path: Path, scaling: Scaling, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the backtest once built test windows with the default (log) scaling whatever the recipe
    # said, so a naive-scaled model was fed log-scaled inputs: regression guard
    from towerkit.forecast.data import ForecastDataConfig, load_data

    monkeypatch.setenv("TOWERKIT_HOME", str(tmp_path / "home"))
    config = ForecastDataConfig(
        corpus=str(corpus),
        table=str(tmp_path / "t.parquet"),
        min_history=6,
        n_val_cutoffs=3,
        n_test_cutoffs=4,
        scaling=scaling,
    )
    data = load_data(config, "unused-encoder", progress=False, windows=False)
    test = data.windows(data.splits.test)
    assert test.scaling == scaling
    pairs = window_index(data.panel, data.splits.test, config.min_history, HORIZON)
    expected = build_windows(data.panel, pairs, config.lookback, HORIZON, data.target_idx, scaling)
    np.testing.assert_array_equal(test.x, expected.x)
    np.testing.assert_array_equal(test.std, expected.std)


def test_mase_scale_is_the_metric_denominator(panel: Panel) -> None:
    from towerkit.forecast.backtest import build_rows

    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [20, 27], min_history=6, horizon=HORIZON)
    windows = build_windows(panel, pairs, 12, HORIZON, targets, "mase")
    rows = build_rows(panel, pairs, targets, HORIZON)
    expected = np.array([np.abs(np.diff(h)).mean() for h in rows.histories])
    got = windows.std[rows.window, np.asarray(targets)[rows.target]]
    np.testing.assert_allclose(got, expected)


def test_panel_context_is_the_months_median_change(panel: Panel) -> None:
    targets = panel.target_indices(TARGETS)
    table = panel_context(panel, targets)
    assert table.shape == (panel.n_months, len(targets))
    assert np.all(table[0] == 0.0)
    month, t = 20, 1
    logged = np.sign(panel.values) * np.log1p(np.abs(panel.values))
    change = logged[:, month, targets[t]] - logged[:, month - 1, targets[t]]
    assert table[month, t] == pytest.approx(np.nanmedian(change))


def test_panel_context_ends_at_the_cutoff(
    panel: Panel, changed: Callable[[Panel, slice], Panel]
) -> None:
    targets = panel.target_indices(TARGETS)
    cutoff = panel.end - HORIZON
    pairs = window_index(panel, [cutoff], min_history=6, horizon=HORIZON)
    plain = build_windows(panel, pairs, 12, HORIZON, targets, "mase")
    with_context = build_windows(panel, pairs, 12, HORIZON, targets, "mase", context=True)
    assert with_context.x.shape[2] == plain.x.shape[2] + len(targets)
    np.testing.assert_array_equal(with_context.x[..., : plain.x.shape[2]], plain.x)
    later = build_windows(
        changed(panel, slice(cutoff + 1, None)), pairs, 12, HORIZON, targets, "mase", context=True
    )
    np.testing.assert_array_equal(later.x, with_context.x)  # months after the cutoff: unread
    moved = build_windows(
        changed(panel, slice(cutoff, cutoff + 1)), pairs, 12, HORIZON, targets, "mase", True
    )
    assert not np.array_equal(
        moved.x[:, -1, -len(targets) :], with_context.x[:, -1, -len(targets) :]
    )

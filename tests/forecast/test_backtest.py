"""Backtest rows and scores: shared rows, exact metric values, coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from towerkit.forecast.backtest import MethodForecast, baseline_forecasts, build_rows, score
from towerkit.forecast.client import read_repo_list
from towerkit.forecast.dataset import TARGETS, build_table, read_panel, write_table
from towerkit.forecast.windows import window_index


def test_perfect_and_naive_forecasts(corpus: Path, tmp_path: Path) -> None:
    table, report = build_table(corpus, read_repo_list(corpus), progress=False)
    panel = read_panel(write_table(table, report, tmp_path / "t.parquet"))
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [24, 28], min_history=13, horizon=3)
    rows = build_rows(panel, pairs, targets, 3)
    # the missing issues_new of zeta/tool and the malformed change_requests of acme/widget
    assert len(rows) == len(pairs) * len(TARGETS) - 2 * 2
    exact = np.stack([rows.truth * 0.9, rows.truth, rows.truth * 1.1], axis=-1)
    perfect = score(rows, MethodForecast("perfect", exact), list(TARGETS))
    assert perfect["overall"]["mase"] == 0.0 and perfect["overall"]["coverage"] == 1.0
    last = np.array([h[-1] for h in rows.histories])
    flat = np.repeat(last[:, None, None], 3, axis=1).repeat(3, axis=2)
    naive = score(rows, MethodForecast("naive", flat), list(TARGETS))["overall"]
    scales = np.array([np.abs(np.diff(h)).mean() for h in rows.histories])
    expected = np.mean(np.abs(rows.truth - last[:, None]).mean(axis=1) / scales)
    assert naive["mase"] == pytest.approx(expected)
    assert naive["n_series"] == len(rows)


def test_baseline_forecasts_cover_the_subset_with_or_without_a_bar(
    corpus: Path, tmp_path: Path
) -> None:
    table, report = build_table(corpus, read_repo_list(corpus), progress=False)
    panel = read_panel(write_table(table, report, tmp_path / "t.parquet"))
    pairs = window_index(panel, [24, 28], min_history=13, horizon=3)
    rows = build_rows(panel, pairs, panel.target_indices(TARGETS), 3)
    subset = np.arange(0, len(rows), 2)
    quiet, _ = baseline_forecasts(panel, rows, ["Naive"], 3, subset)
    shown, _ = baseline_forecasts(panel, rows, ["Naive"], 3, subset, progress=True)
    np.testing.assert_array_equal(quiet["Naive"].quantiles, shown["Naive"].quantiles)
    # Naive's point forecast is the last value; rows outside the subset stay NaN
    last = np.array([h[-1] for h in rows.histories])
    np.testing.assert_allclose(shown["Naive"].point[subset], np.repeat(last[subset, None], 3, 1))
    assert np.isnan(shown["Naive"].quantiles[1::2]).all()

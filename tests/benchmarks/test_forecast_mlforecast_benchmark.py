"""benchmarks/forecast_mlforecast.py: the anchor's scaling inverts exactly, its series end at the
cutoff, and no month after a cutoff reaches that cutoff's forecast."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from towerkit.forecast.backtest import build_rows
from towerkit.forecast.dataset import Panel

pytest.importorskip("mlforecast")
NAMES = ["activity", "stars"]  # conftest.ANCHOR_TARGETS


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("forecast_mlforecast.py")


def test_mase_scaler_inverts_exactly_and_scales_by_the_mean_absolute_change(
    bench: ModuleType,
) -> None:
    df = pd.DataFrame(
        {
            "unique_id": ["a"] * 4 + ["b"] * 3 + ["flat"] * 3,
            "ds": list(pd.date_range("2020-01-01", periods=4, freq="MS"))
            + list(pd.date_range("2020-01-01", periods=3, freq="MS")) * 2,
            "y": [1.0, 3.0, 2.0, 6.0, 10.0, 10.0, 40.0, 5.0, 5.0, 5.0],
        }
    )
    scaler = bench.MaseScaler()
    scaler.set_column_names("unique_id", "ds", "y")
    scaled = scaler.fit_transform(df)
    # a: mean 3, mean |change| (2 + 1 + 4) / 3; flat: no change, so scale 1
    np.testing.assert_allclose(scaled["y"][:4], (df["y"][:4] - 3.0) / (7 / 3))
    np.testing.assert_allclose(scaled["y"][7:], 0.0)
    back = scaler.inverse_transform(scaled.rename(columns={"y": "p50"}))
    np.testing.assert_allclose(back["p50"], df["y"])


def test_long_frame_ends_at_the_cutoff_and_leaves_out_missing_series(
    bench: ModuleType, anchor_panel: Panel
) -> None:
    panel = anchor_panel
    df = bench.long_frame(panel, [0, 1], NAMES, end=25)
    assert df["ds"].max() == pd.Timestamp("2021-02-01")  # grid position 25 of 2019-01..
    assert "2:1" not in set(df["unique_id"])  # repository 2 has no stars
    late = df[df["unique_id"] == "1:0"]
    assert late["ds"].min() == pd.Timestamp("2019-11-01") and len(late) == 16
    np.testing.assert_array_equal(late["y"], panel.values[1, 10:26, 0])


def test_no_month_after_a_cutoff_reaches_its_forecast(
    bench: ModuleType, anchor_panel: Panel
) -> None:
    panel = anchor_panel
    anchor = bench.Anchor("changes (differences), mase", bench.DEFAULT, 1, 0, 3)
    model = anchor.fit(panel, [0, 1], NAMES, end=28)
    pairs = np.array([(r, c) for c in (30, 33) for r in range(len(panel.repos))])
    rows = build_rows(panel, pairs, [0, 1], 3)
    before = bench.forecast_rows(lambda _: model, panel, rows, [0, 1], NAMES, 3, "anchor").quantiles
    assert before.shape == (len(rows), 3, 3) and np.isfinite(before).all()
    assert (np.diff(before, axis=-1) >= 0).all()  # p10 <= p50 <= p90
    values = panel.values.copy()
    values[:, 31:] = values[:, 31:] * 7.0 + 1000.0
    later_panel = dataclasses.replace(panel, values=values)
    later = bench.forecast_rows(
        lambda _: model, later_panel, rows, [0, 1], NAMES, 3, "anchor"
    ).quantiles
    at_30 = rows.cutoffs() == 30
    np.testing.assert_array_equal(later[at_30], before[at_30])
    assert not np.allclose(later[~at_30], before[~at_30])
    # nor does it reach the fit: the same anchor fitted on the changed panel up to month 28
    refitted = anchor.fit(later_panel, [0, 1], NAMES, end=28)
    again = bench.forecast_rows(
        lambda _: refitted, panel, rows, [0, 1], NAMES, 3, "anchor"
    ).quantiles
    np.testing.assert_array_equal(again, before)

"""Backtest rows and scores: shared rows, exact metric values, coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from towerkit.core.errors import ConfigError
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    baseline_forecasts,
    build_rows,
    by_scale,
    mase_by_cutoff,
    mase_by_repository,
    mase_ratio,
    naive_scales,
    per_horizon,
    score,
)
from towerkit.forecast.baselines import BASELINES, THETA_VARIANTS, forecast_cutoff, make_models
from towerkit.forecast.client import read_repo_list
from towerkit.forecast.dataset import TARGETS, build_table, read_panel, write_table
from towerkit.forecast.recipe import load_recipe
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


def test_the_theta_family_forecasts_with_the_season_and_an_ordered_band() -> None:
    models = make_models([*BASELINES, *THETA_VARIANTS], season=12)
    assert [type(m).__name__ for m in models] == [*BASELINES, *THETA_VARIANTS]
    assert all(m.season_length == 12 for m in models if type(m).__name__ != "Naive")
    months = np.arange(48)
    seasonal = [50 + 0.5 * months + 10 * np.sin(2 * np.pi * (months + k) / 12) for k in range(3)]
    found, _ = forecast_cutoff(seasonal, list(THETA_VARIANTS), 3, pd.Timestamp("2021-12-01"))
    for name in THETA_VARIANTS:
        assert found[name].shape == (3, 3, 3)
        assert np.isfinite(found[name]).all()
        assert (np.diff(found[name], axis=-1) >= 0).all()  # p10 <= point <= p90
    # the variants are different models, not one under three names
    points = [found[name][:, :, 1] for name in THETA_VARIANTS]
    assert not np.allclose(points[0], points[2])


@pytest.mark.parametrize(
    ("override", "key", "name"),
    [
        ("eval.baselines=[Naive,Thetta]", "eval.baselines", "Thetta"),
        ("eval.sample_baselines=[DOTM]", "eval.sample_baselines", "DOTM"),
    ],
)
def test_a_misspelt_baseline_is_refused_when_the_recipe_loads(
    override: str, key: str, name: str
) -> None:
    with pytest.raises(ConfigError, match=f"{key}: unknown model '{name}'; expected some of"):
        load_recipe(None, [override])
    assert load_recipe(None, ["eval.baselines=[Theta,DynamicOptimizedTheta]"]).eval.baselines == [
        "Theta",
        "DynamicOptimizedTheta",
    ]


def _synthetic_rows(repos: int, per_repo: int, seed: int = 0) -> EvalRows:
    rng = np.random.default_rng(seed)
    pairs = np.array([[r, 20] for r in range(repos)])
    window = np.repeat(np.arange(repos), per_repo)
    histories = [np.cumsum(rng.normal(1.0, 2.0, 24)) + 50 for _ in window]
    truth = np.array([h[-1] + rng.normal(0.0, 3.0, 3) for h in histories])
    return EvalRows(pairs, window, np.zeros(len(window), dtype=int), truth, histories)


def _point(values: np.ndarray) -> MethodForecast:
    return MethodForecast("m", np.repeat(values[..., None], 3, axis=2))


def test_mase_ratio_is_the_ratio_of_overall_mases_with_an_interval_around_it() -> None:
    rows = _synthetic_rows(40, 3)
    rng = np.random.default_rng(1)
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    ours, theirs = _point(rows.truth + rng.normal(0, 2, rows.truth.shape)), _point(last)
    found = mase_ratio(rows, ours, theirs)
    overall = [score(rows, f, ["t"])["overall"]["mase"] for f in (ours, theirs)]
    assert found.ratio == pytest.approx(overall[0] / overall[1])
    assert found.low < found.ratio < found.high and found.repositories == 40
    assert found == mase_ratio(rows, ours, theirs)  # seeded
    half = np.arange(0, len(rows), 2)
    part = mase_ratio(rows, ours, theirs, subset=half)
    ours_half = score(rows, ours, ["t"], half)["overall"]["mase"]
    assert part.ratio == pytest.approx(
        ours_half / score(rows, theirs, ["t"], half)["overall"]["mase"]
    )


def test_mase_ratio_resamples_repositories_not_rows() -> None:
    rows = _synthetic_rows(30, 2)
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    ours, theirs = _point(0.5 * rows.truth + 0.5 * last), _point(last)
    once = mase_ratio(rows, ours, theirs)
    # every repository's rows twice: the same repositories, so the same ratio and interval
    twice = np.concatenate([np.arange(len(rows)), np.arange(len(rows))])
    doubled = EvalRows(
        rows.pairs, rows.window[twice], rows.target[twice], rows.truth[twice],
        [rows.histories[i] for i in twice],
    )  # fmt: skip
    again = mase_ratio(doubled, _point(ours.point[twice]), _point(theirs.point[twice]))
    assert again.ratio == pytest.approx(once.ratio)
    assert again.low == pytest.approx(once.low) and again.high == pytest.approx(once.high)


def test_one_repository_has_a_ratio_but_no_interval() -> None:
    rows = _synthetic_rows(1, 6)
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    found = mase_ratio(rows, _point(rows.truth + 1.0), _point(last))
    overall = [
        score(rows, f, ["t"])["overall"]["mase"] for f in (_point(rows.truth + 1.0), _point(last))
    ]
    assert found.ratio == pytest.approx(overall[0] / overall[1])
    assert np.isnan(found.low) and np.isnan(found.high) and "no interval" in str(found)


def test_per_horizon_months_average_to_the_overall_scores() -> None:
    rows = _synthetic_rows(10, 4)
    last = np.array([h[-1] for h in rows.histories])
    # the band is right in month 1 only, and the point misses by 1, 2, 3 units in months 1..3
    point = last[:, None] + np.array([1.0, 2.0, 3.0])
    band = np.stack([point - 50, point, point + 50], axis=-1)
    band[:, 1:, 0], band[:, 1:, 2] = 1e9, 2e9
    forecast = MethodForecast("m", band)
    found = per_horizon(rows, forecast)
    overall = score(rows, forecast, ["t"])["overall"]
    assert np.mean(found["mase"]) == pytest.approx(overall["mase"])
    assert np.mean(found["coverage"]) == pytest.approx(overall["coverage"])
    scales = np.array([np.abs(np.diff(h)).mean() for h in rows.histories])
    for h in range(3):
        expected = np.mean(np.abs(rows.truth[:, h] - point[:, h]) / scales)
        assert found["mase"][h] == pytest.approx(expected)
    assert found["coverage"][1:] == [0.0, 0.0] and found["coverage"][0] == 1.0


def test_the_band_misses_are_counted_on_each_side() -> None:
    rows = _synthetic_rows(10, 4)  # 40 rows x 3 months
    band = np.stack([rows.truth - 1.0, rows.truth, rows.truth + 1.0], axis=-1)
    band[:10, :, 0] = rows.truth[:10] + 0.5  # 30 months whose truth is below p10
    band[10:15, 0, 2] = rows.truth[10:15, 0] - 0.5  # 5 months whose truth is above p90
    forecast = MethodForecast("m", band)
    overall = score(rows, forecast, ["t"])["overall"]
    assert overall["below_p10"] == pytest.approx(30 / 120)
    assert overall["above_p90"] == pytest.approx(5 / 120)
    assert overall["coverage"] == pytest.approx(1 - 35 / 120)
    found = per_horizon(rows, forecast)
    assert found["below_p10"] == pytest.approx([10 / 40] * 3)
    assert found["above_p90"] == pytest.approx([5 / 40, 0.0, 0.0])
    assert found["coverage"] == pytest.approx([25 / 40, 30 / 40, 30 / 40])


def test_mase_by_cutoff_over_every_target_weighs_up_to_the_overall_mase() -> None:
    rows = _synthetic_rows(6, 3)
    rows.pairs[:, 1] = [20, 20, 21, 21, 22, 22]  # three cutoffs, two repositories each
    rows.target[:] = np.tile([0, 1, 2], 6)
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    forecast = _point(last)
    found = mase_by_cutoff(rows, forecast)
    assert sorted(found) == [20, 21, 22]
    per_row = np.abs(rows.truth - last).mean(axis=1) / naive_scales(rows)
    cutoffs = rows.cutoffs()
    for cutoff, value in found.items():
        assert value == pytest.approx(per_row[cutoffs == cutoff].mean())
    overall = score(rows, forecast, ["a", "b", "c"])["overall"]["mase"]
    assert np.mean(list(found.values())) == pytest.approx(overall)  # equal rows per cutoff
    one = mase_by_cutoff(rows, forecast, target=1)
    assert one[21] == pytest.approx(per_row[(cutoffs == 21) & (rows.target == 1)].mean())


def test_mase_by_repository_weighs_up_to_the_overall_mase() -> None:
    rows = _synthetic_rows(4, 3)
    rows.pairs[:, 0] = [7, 3, 7, 5]  # repository 7 has two windows: six rows
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    forecast = _point(last)
    found = mase_by_repository(rows, forecast)
    assert sorted(found) == [3, 5, 7]
    assert [found[r][0] for r in (3, 5, 7)] == [3, 3, 6]
    per_row = np.abs(rows.truth - last).mean(axis=1) / naive_scales(rows)
    repos = rows.pairs[rows.window, 0]
    for repo, (_, value) in found.items():
        assert value == pytest.approx(per_row[repos == repo].mean())
    overall = score(rows, forecast, ["a"])["overall"]["mase"]
    weighted = sum(n * m for n, m in found.values()) / len(rows)
    assert weighted == pytest.approx(overall)


def test_by_scale_splits_rows_into_equal_groups_from_the_smallest_series_up() -> None:
    rows = _synthetic_rows(7, 3)  # 21 rows: three groups of 7
    rows.histories = [h * (1 + i) for i, h in enumerate(rows.histories)]  # scales grow with i
    rows.truth = rows.truth * np.arange(1, 22)[:, None]
    last = np.array([h[-1] for h in rows.histories])[:, None].repeat(3, axis=1)
    found = by_scale(rows, _point(last))
    scales = naive_scales(rows)
    assert found["rows"] == [7.0, 7.0, 7.0]
    assert found["scale_low"][0] == scales.min() and found["scale_high"][2] == scales.max()
    assert found["scale_high"][0] <= found["scale_low"][1]  # ordered, not overlapping
    per_row_mae = np.abs(rows.truth - last).mean(axis=1)
    order = np.argsort(scales)
    assert found["mae"][2] == pytest.approx(per_row_mae[order[14:]].mean())
    overall = score(rows, _point(last), ["a"])["overall"]["mase"]
    assert np.dot(found["mase"], found["rows"]) / len(rows) == pytest.approx(overall)
    two = by_scale(
        EvalRows(rows.pairs, rows.window[:2], rows.target[:2], rows.truth[:2], rows.histories[:2]),
        _point(last[:2]),
    )
    assert two["rows"] == [1.0, 1.0]  # fewer rows than groups: a group per row

"""benchmarks/forecast_neuralforecast.py: no month after a cutoff reaches that cutoff's forecast
or the fit, seeds average as documented, and bad arguments are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from towerkit.forecast.backtest import build_rows
from towerkit.forecast.dataset import Panel

pytest.importorskip("neuralforecast")
NAMES = ["activity", "stars"]  # conftest.ANCHOR_TARGETS


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    module = load_benchmark("forecast_neuralforecast.py")
    import neuralforecast

    assert module.load_neuralforecast("test") == neuralforecast.__version__
    return module


def tiny_anchor(bench: ModuleType, seeds: list[int]) -> object:
    candidate = bench.Candidate("NHITS", 12, 5, "robust")  # 5 steps: seconds, not minutes
    return bench.Anchor(candidate, seeds, 3, 1)


def test_no_month_after_a_cutoff_reaches_its_forecast_or_the_fit(
    bench: ModuleType, anchor_panel: Panel
) -> None:
    panel = anchor_panel
    anchor = tiny_anchor(bench, [0]).fit(panel, [0, 1], NAMES, end=28)
    pairs = np.array([(r, c) for c in (30, 33) for r in range(len(panel.repos))])
    rows = build_rows(panel, pairs, [0, 1], 3)
    before = bench.forecast_rows(
        lambda _: anchor, panel, rows, [0, 1], NAMES, 3, "anchor"
    ).quantiles
    assert before.shape == (len(rows), 3, 3) and np.isfinite(before).all()
    assert (np.diff(before, axis=-1) >= 0).all() and (before >= 0).all()
    values = panel.values.copy()
    values[:, 31:] = values[:, 31:] * 7.0 + 1000.0
    later_panel = dataclasses.replace(panel, values=values)
    later = bench.forecast_rows(
        lambda _: anchor, later_panel, rows, [0, 1], NAMES, 3, "anchor"
    ).quantiles
    at_30 = rows.cutoffs() == 30
    np.testing.assert_allclose(later[at_30], before[at_30], rtol=1e-6)
    assert not np.allclose(later[~at_30], before[~at_30])
    refitted = tiny_anchor(bench, [0]).fit(later_panel, [0, 1], NAMES, end=28)
    again = bench.forecast_rows(
        lambda _: refitted, panel, rows, [0, 1], NAMES, 3, "anchor"
    ).quantiles
    np.testing.assert_allclose(again, before, rtol=1e-6)


def test_the_anchor_averages_its_seeds_quantiles(bench: ModuleType, anchor_panel: Panel) -> None:
    panel = anchor_panel
    history = bench.long_frame(panel, [0, 1], NAMES, end=30)
    alone = [
        tiny_anchor(bench, [seed]).fit(panel, [0, 1], NAMES, end=28).predict(3, history)
        for seed in (0, 1)
    ]
    both = tiny_anchor(bench, [0, 1]).fit(panel, [0, 1], NAMES, end=28).predict(3, history)
    assert len(both) == 3 * history["unique_id"].nunique()
    assert not np.allclose(alone[0]["p50"], alone[1]["p50"])  # the seeds differ
    for level in ("p10", "p50", "p90"):
        mean = (alone[0][level].to_numpy() + alone[1][level].to_numpy()) / 2
        np.testing.assert_allclose(both[level].to_numpy(), mean, rtol=1e-6)


def test_bad_arguments_are_refused(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.parse_args([]).seeds == 3
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds, --threads: expected >= 1, got 0, 2" in capsys.readouterr().err

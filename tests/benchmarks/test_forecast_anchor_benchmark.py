"""benchmarks/forecast_anchor.py: the test comparison the forecast anchors share."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from towerkit.forecast.backtest import MethodForecast, build_rows, score
from towerkit.forecast.dataset import Panel

NAMES = ["activity", "stars"]  # conftest.ANCHOR_TARGETS


@pytest.fixture(scope="module")
def anchor(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("forecast_anchor.py")


def test_compare_scores_every_method_and_divides_its_mase_by_thetas(
    anchor: ModuleType, anchor_panel: Panel, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = np.array([(r, c) for c in (30, 33) for r in range(len(anchor_panel.repos))])
    rows = build_rows(anchor_panel, pairs, [0, 1], 3)
    error = np.random.default_rng(1).normal(0.0, 4.0, size=rows.truth.shape)
    theta = MethodForecast("Theta", np.repeat((rows.truth + error)[..., None], 3, axis=-1))
    # twice Theta's error on every row, so twice its MASE however the rows are resampled
    twice = MethodForecast("twice", np.repeat((rows.truth + 2 * error)[..., None], 3, axis=-1))
    result = anchor.compare(rows, {"twice": twice, "Theta": theta}, NAMES)
    assert result["rows"] == len(rows) == 8 * 2 * 2 - 2  # repository 2 has no stars
    assert set(result["ratio_to_theta"]) == {"twice"}
    assert result["ratio_to_theta"]["twice"].startswith("2.000 (95% CI 2.000..2.000")
    expected = score(rows, theta, NAMES)
    assert result["test"]["Theta"] == expected["overall"]
    assert result["per_target"]["Theta"] == {t: expected[t]["mase"] for t in NAMES}
    assert result["per_target"]["twice"]["stars"] == pytest.approx(2 * expected["stars"]["mase"])
    groups = result["by_scale"]
    assert groups["Theta"]["rows"] == groups["twice"]["rows"] and sum(
        groups["Theta"]["rows"]
    ) == len(rows)
    np.testing.assert_allclose(groups["twice"]["mase"], 2 * np.array(groups["Theta"]["mase"]))
    np.testing.assert_allclose(groups["twice"]["mae"], 2 * np.array(groups["Theta"]["mae"]))
    anchor.print_test(result, NAMES)
    printed = capsys.readouterr().out
    assert "| twice |" in printed and "| stars | " in printed
    top = groups["Theta"]
    assert (
        f"| {top['scale_low'][2]:.3g}..{top['scale_high'][2]:.3g} ({int(top['rows'][2])}) |"
        in printed
    )

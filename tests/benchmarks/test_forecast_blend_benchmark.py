"""benchmarks/forecast_blend.py: the blend of two forecasters and its weights by series scale."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from towerkit.forecast.backtest import EvalRows, MethodForecast, build_rows, naive_scales
from towerkit.forecast.dataset import Panel

NAMES = ["activity", "stars"]  # conftest.ANCHOR_TARGETS


@pytest.fixture(scope="module")
def blend(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("forecast_blend.py")


@pytest.fixture
def rows(anchor_panel: Panel) -> EvalRows:
    pairs = np.array([(r, c) for c in (28, 31, 34) for r in range(len(anchor_panel.repos))])
    return build_rows(anchor_panel, pairs, [0, 1], 3)


def _constant(name: str, values: np.ndarray) -> MethodForecast:
    return MethodForecast(name, np.repeat(values[..., None], 3, axis=-1))


def test_blend_mixes_every_quantile_by_a_weight_or_one_weight_per_row(blend: ModuleType) -> None:
    a = MethodForecast("a", np.array([[[1.0, 2.0, 3.0]], [[0.0, 0.0, 0.0]]]))
    b = MethodForecast("b", np.array([[[3.0, 4.0, 9.0]], [[10.0, 20.0, 30.0]]]))
    np.testing.assert_array_equal(blend.blend(a, b, 0.0), a.quantiles)
    np.testing.assert_array_equal(blend.blend(a, b, 1.0), b.quantiles)
    np.testing.assert_array_equal(blend.blend(a, b, 0.5)[0, 0], [2.0, 3.0, 6.0])
    per_row = blend.blend(a, b, np.array([0.0, 0.25]))
    np.testing.assert_array_equal(per_row[0], a.quantiles[0])
    np.testing.assert_array_equal(per_row[1, 0], [2.5, 5.0, 7.5])
    crossing = MethodForecast("c", np.array([[[5.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]))
    assert np.all(np.diff(blend.blend(crossing, a, 0.1), axis=-1) >= 0)  # sorted again


def test_one_weight_is_the_grid_value_that_cancels_opposite_errors(
    blend: ModuleType, rows: EvalRows
) -> None:
    error = np.random.default_rng(2).normal(0.0, 5.0, size=rows.truth.shape)
    # a errs by +3e and b by -e: 0.75 a + 0.25 b is the truth on every row
    a, b = _constant("a", rows.truth + 3 * error), _constant("b", rows.truth - error)
    assert blend.choose_weights(rows, a, b, np.array([]), NAMES) == [0.75]


def test_weights_by_scale_follow_which_forecaster_is_right_in_each_third(
    blend: ModuleType, rows: EvalRows
) -> None:
    edges = blend.scale_edges(rows)
    group = blend.scale_group(rows, edges)
    scales = naive_scales(rows)  # group 0 the smallest series, group 2 the largest
    assert scales[group == 0].max() <= scales[group == 1].min()
    assert scales[group == 1].max() <= scales[group == 2].min()
    assert edges.shape == (2,) and set(np.bincount(group)) <= {len(rows) // 3, len(rows) // 3 + 1}
    noise = np.random.default_rng(3).normal(0.0, 5.0, size=rows.truth.shape) + 1.0
    small = (group == 0)[:, None]
    a = _constant("a", np.where(small, rows.truth, rows.truth + noise))  # right on the smallest
    b = _constant("b", np.where(small, rows.truth + noise, rows.truth))  # right elsewhere
    weights = blend.choose_weights(rows, a, b, edges, NAMES)
    assert weights == [0.0, 1.0, 1.0]
    per_row = blend.row_weights(rows, edges, weights)
    np.testing.assert_array_equal(per_row, np.where(group == 0, 0.0, 1.0))
    np.testing.assert_allclose(blend.blend(a, b, per_row)[..., 1], rows.truth)


def test_bad_arguments_are_refused(blend: ModuleType) -> None:
    with pytest.raises(SystemExit):
        blend.parse_args(["--seeds", "0"])
    assert blend.parse_args(["--seeds", "2"]).seeds == 2

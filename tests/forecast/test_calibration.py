"""Split-conformal calibration of the p10..p90 band: the shift's exact coverage on the windows it
comes from, the model applying it once (also in an ensemble and per target) and keeping it
through a save, and the recipe's ``calibrate`` setting it from the validation windows; the same
with each end calibrated on its own side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel
from towerkit.forecast.calibration import conformal_shift, side_shifts
from towerkit.forecast.model import DualTowerForecaster


def test_the_shift_gives_the_coverage_asked_for_on_its_windows() -> None:
    rng = np.random.default_rng(0)
    n, horizon, targets = 400, 3, 2
    truth = rng.normal(0, 1, (n, horizon, targets)) * np.array([1.0, 3.0])  # target 1 wider
    band = np.stack([-np.ones_like(truth), np.zeros_like(truth), np.ones_like(truth)], -1)
    known = np.ones_like(truth)
    known[:50, 0, 0] = 0  # unknown truths are left out
    shift = conformal_shift(band, truth, known, 0.8)
    assert shift.shape == (horizon, targets)
    assert (shift[:, 0] < 0.5).all() and (shift[:, 1] > 2.0).all()  # ~N(0,1) vs ~N(0,3) tails
    for h, t in np.ndindex(horizon, targets):
        cell = known[:, h, t] > 0
        inside = np.abs(truth[cell, h, t]) <= 1 + shift[h, t]
        # at least 80 %, and at most one window more than the rank asks
        assert 0.8 <= inside.mean() <= (np.ceil((cell.sum() + 1) * 0.8) + 1) / cell.sum()
    # a band already too wide moves in
    wide = band * 10
    assert (conformal_shift(wide, truth, known, 0.8) < 0).all()
    assert conformal_shift(band, truth, np.zeros_like(truth), 0.8).tolist() == [[0, 0]] * 3


def test_each_side_misses_at_most_its_own_share_on_its_windows() -> None:
    rng = np.random.default_rng(1)
    n = 500
    truth = rng.exponential(1.0, (n, 3, 2)) - 0.5  # skewed: misses mostly above a centred band
    band = np.stack([-np.ones_like(truth), np.zeros_like(truth), np.ones_like(truth)], -1)
    known = np.ones_like(truth)
    below, above = side_shifts(band, truth, known, 0.1, 0.9)
    assert below.shape == above.shape == (3, 2)
    for h, t in np.ndindex(3, 2):
        under = (truth[:, h, t] < -1 - below[h, t]).mean()
        over = (truth[:, h, t] > 1 + above[h, t]).mean()
        assert under <= 0.1 and over <= 0.1
        # and no more room than the ranks ask (one window either side of each)
        assert under >= 0.1 - 2 / n and over >= 0.1 - 2 / n
    # the exponential's long right tail: the upper end moves out, the lower end moves in
    assert (above > 0.5).all() and (below < -0.3).all()
    symmetric = conformal_shift(band, truth, known, 0.8)
    assert (symmetric > below).all() and (symmetric < above).all()


@pytest.mark.parametrize("layout", [{}, {"members": 2}, {"per_target": True}])
def test_the_model_moves_the_band_once_and_keeps_it_through_a_save(
    layout: dict[str, Any], tmp_path: Path, small_model: Callable[..., DualTowerForecaster]
) -> None:
    torch.manual_seed(0)
    x, static, base = torch.randn(5, 12, 9), torch.randn(5, 12), torch.randn(5, 3, 6)
    plain = small_model(base="theta", **layout).eval()
    out = plain(x, static, None, base)
    shift = np.linspace(-0.05, 0.5, 18).reshape(3, 6)
    plain.config.interval_shift = shift.tolist()
    moved = plain(x, static, None, base)
    s = torch.tensor(shift, dtype=out.dtype)
    torch.testing.assert_close(moved[..., 1], out[..., 1])  # the median stays
    torch.testing.assert_close(moved[..., 0], torch.minimum(out[..., 0] - s, out[..., 1]))
    torch.testing.assert_close(moved[..., 2], torch.maximum(out[..., 2] + s, out[..., 1]))
    loaded = BaseModel.from_pretrained(plain.save_pretrained(tmp_path / "m"))
    assert isinstance(loaded, DualTowerForecaster)
    assert loaded.config.interval_shift == shift.tolist()
    torch.testing.assert_close(loaded(x, static, None, base), moved)  # not applied twice
    with pytest.raises(ConfigError, match="interval_shift"):
        small_model(interval_shift=[[0.0] * 6] * 2)
    # each end its own shift: the lower end moves by interval_shift, the upper by the other
    upper = np.linspace(0.3, -0.02, 18).reshape(3, 6)
    plain.config.interval_shift_upper = upper.tolist()
    sided = plain(x, static, None, base)
    u = torch.tensor(upper, dtype=out.dtype)
    torch.testing.assert_close(sided[..., 0], moved[..., 0])
    torch.testing.assert_close(sided[..., 2], torch.maximum(out[..., 2] + u, out[..., 1]))
    loaded = BaseModel.from_pretrained(plain.save_pretrained(tmp_path / "sided"))
    torch.testing.assert_close(loaded(x, static, None, base), sided)
    with pytest.raises(ConfigError, match="interval_shift_upper"):
        small_model(interval_shift_upper=[[0.0] * 6] * 3)


def test_recipe_calibrates_the_kept_model_on_the_validation_windows(
    tmp_path: Path, small_recipe: Callable[..., Any]
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import predict_scaled
    from towerkit.forecast.recipe import load_forecaster, train

    registry = ModelRegistry(tmp_path / "r.db")
    runs = tmp_path / "runs"
    plain = train(small_recipe("refit=false"), registry=registry, runs_root=runs)
    calibrated = train(
        small_recipe("refit=false", "calibrate=true"), registry=registry, runs_root=runs
    )
    val = calibrated.data.val
    shift = np.array(calibrated.model.config.interval_shift)
    assert shift.shape == (3, 6) and plain.model.config.interval_shift is None
    assert calibrated.metrics["interval_shift_mean"] == pytest.approx(shift.mean())
    before = predict_scaled(plain.model, val)  # the same seed: the same network
    after = predict_scaled(calibrated.model, val)
    np.testing.assert_allclose(after[..., 1], before[..., 1], rtol=1e-6)
    a = val.arrays
    for h, t in np.ndindex(3, 6):
        known = a.y_mask[:, h, t] > 0
        if known.any():  # on the windows it came from, the band covers at least 80 %
            y = a.y[known, h, t]
            inside = (after[known, h, t, 0] <= y) & (y <= after[known, h, t, 2])
            assert inside.mean() >= 0.8 - 1e-9
    loaded = load_forecaster(str(calibrated.run_dir), registry)
    assert loaded.model.config.interval_shift == shift.tolist()
    np.testing.assert_array_equal(predict_scaled(loaded.model.eval(), val), after)


def test_recipe_calibrates_each_side_of_the_band_on_the_validation_windows(
    tmp_path: Path, small_recipe: Callable[..., Any]
) -> None:
    from towerkit.core.errors import ConfigError as RecipeError
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import predict_scaled
    from towerkit.forecast.recipe import load_forecaster, train

    registry = ModelRegistry(tmp_path / "r.db")
    sided = train(
        small_recipe("refit=false", "calibrate=true", "calibrate_each_side=true"),
        registry=registry,
        runs_root=tmp_path / "runs",
    )
    config = sided.model.config
    assert np.shape(config.interval_shift) == np.shape(config.interval_shift_upper) == (3, 6)
    assert sided.metrics["interval_shift_upper_mean"] == pytest.approx(
        np.mean(config.interval_shift_upper)
    )
    val = sided.data.val
    after = predict_scaled(sided.model, val)
    a = val.arrays
    for h, t in np.ndindex(3, 6):
        known = a.y_mask[:, h, t] > 0
        if known.any():  # on the windows it came from, at most 10 % on each side
            y = a.y[known, h, t]
            # holding an end at the median only widens the band
            assert (y < after[known, h, t, 0]).mean() <= 0.1 + 1e-9
            assert (y > after[known, h, t, 2]).mean() <= 0.1 + 1e-9
    loaded = load_forecaster(str(sided.run_dir), registry)
    assert loaded.model.config.interval_shift_upper == config.interval_shift_upper
    np.testing.assert_array_equal(predict_scaled(loaded.model.eval(), val), after)
    with pytest.raises(RecipeError, match="calibrate_each_side: needs calibrate"):
        small_recipe("calibrate_each_side=true")

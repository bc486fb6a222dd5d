"""The comb base (``model.base: comb``): leakage (and Theta's), the members and their median, the per-window
cache (round trip, only new windows computed, keyed by the data), scaling and the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import create_model
from towerkit.forecast import comb as comb_module
from towerkit.forecast.baselines import forecast_cutoff
from towerkit.forecast.comb import comb_channels, member_forecasts
from towerkit.forecast.dataset import TARGETS, Panel
from towerkit.forecast.model import COMB_MEMBERS, DualTowerForecaster
from towerkit.forecast.theta import compute_method, compute_theta
from towerkit.forecast.windows import attach_base, build_windows, unscale_targets, window_index

HORIZON = 3


def _theta_channel(panel: Panel, pairs: np.ndarray, targets: list[int], horizon: int) -> Any:
    return compute_theta(panel, pairs, targets, horizon)[..., None]


@pytest.mark.parametrize("base", [_theta_channel, comb_channels], ids=["theta", "comb"])
def test_every_channel_of_a_window_uses_only_months_up_to_its_cutoff(
    panel: Panel, changed: Callable[[Panel, slice], Panel], base: Callable[..., Any]
) -> None:
    """The leakage rule for both bases: later months change nothing, the cutoff month moves
    every channel (the check has teeth)."""
    targets = panel.target_indices(TARGETS)
    cutoff = 20
    pairs = window_index(panel, [cutoff], min_history=6, horizon=HORIZON)
    before = base(panel, pairs, targets, HORIZON)
    after = base(changed(panel, slice(cutoff + 1, None)), pairs, targets, HORIZON)
    np.testing.assert_array_equal(before, after)
    moved = base(changed(panel, slice(cutoff, None)), pairs, targets, HORIZON)
    for k in range(before.shape[-1]):  # the cutoff month itself moves every channel
        assert not np.allclose(np.nan_to_num(moved[..., k]), np.nan_to_num(before[..., k]))


def test_channels_are_the_median_then_the_members(panel: Panel) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [18, 24], min_history=6, horizon=HORIZON)
    channels = comb_channels(panel, pairs, targets, HORIZON)
    assert channels.shape == (len(pairs), HORIZON, len(targets), 1 + len(COMB_MEMBERS))
    assert COMB_MEMBERS == ("Theta", "AutoETS", "Naive")
    known = ~np.isnan(channels[..., 0])
    np.testing.assert_array_equal(np.isnan(channels).any(-1), ~known)  # unknown together
    np.testing.assert_allclose(channels[..., 0], np.median(channels[..., 1:], axis=-1))
    # Naive: the last known value at the cutoff, every month of the horizon
    r, c = pairs[0]
    last = panel.values[r, c, targets]
    for h in range(HORIZON):
        np.testing.assert_allclose(channels[0, h, :, 3][known[0, h]], last[known[0, h]])
    # AutoETS and Theta: the backtest baselines' numbers for the same history
    at = int(np.flatnonzero(pairs[:, 1] == 24)[0])
    r, t = int(pairs[at, 0]), 0
    history = panel.values[r, panel.first[r] : 25, targets[t]]
    found, _ = forecast_cutoff(
        [history], ["Theta", "AutoETS"], HORIZON, pd.Timestamp(panel.label(24) + "-01")
    )
    np.testing.assert_allclose(channels[at, :, t, 1], found["Theta"][0, :, 1], rtol=1e-9)
    np.testing.assert_allclose(channels[at, :, t, 2], found["AutoETS"][0, :, 1], rtol=1e-9)


def test_member_cache_round_trip_and_only_new_windows_computed(
    panel: Panel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    changed: Callable[[Panel, slice], Panel],
) -> None:
    targets = panel.target_indices(TARGETS)
    first = window_index(panel, [20], min_history=6, horizon=HORIZON)
    both = window_index(panel, [20, 22], min_history=6, horizon=HORIZON)
    asked: list[np.ndarray] = []

    def counting(p: Panel, pairs: np.ndarray, *args: object) -> np.ndarray:
        asked.append(pairs.copy())
        return compute_method(p, pairs, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(comb_module, "compute_method", counting)
    direct = member_forecasts(panel, first, targets, HORIZON, "AutoETS")
    cached = member_forecasts(panel, first, targets, HORIZON, "AutoETS", tmp_path / "c")
    np.testing.assert_array_equal(cached, direct)
    assert len(list((tmp_path / "c").glob("autoets-*.npz"))) == 1
    asked.clear()
    again = member_forecasts(panel, first[::-1], targets, HORIZON, "AutoETS", tmp_path / "c")
    np.testing.assert_array_equal(again, direct[::-1])  # read back, in the order asked
    assert asked == []
    grown = member_forecasts(panel, both, targets, HORIZON, "AutoETS", tmp_path / "c")
    assert len(asked) == 1 and set(asked[0][:, 1]) == {22}  # only the new cutoff's windows
    np.testing.assert_array_equal(grown[both[:, 1] == 20], direct)
    asked.clear()
    other = changed(panel, slice(0, 3))  # other data, other key: computed afresh
    member_forecasts(other, first, targets, HORIZON, "AutoETS", tmp_path / "c")
    assert len(asked) == 1 and len(list((tmp_path / "c").glob("autoets-*.npz"))) == 2


def test_scaled_channels_round_trip(panel: Panel) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [18, 24], min_history=6, horizon=HORIZON)
    windows = build_windows(panel, pairs, 12, HORIZON, targets, "mase")
    channels = comb_channels(panel, pairs, targets, HORIZON)
    attach_base(windows, channels, targets)
    assert windows.base is not None and windows.base.shape == (*windows.y.shape, 4)
    known = ~np.isnan(channels)
    assert (windows.base[~known] == 0).all()
    for k in range(4):
        back = unscale_targets(windows.base[..., k].astype(np.float64), windows, targets)
        np.testing.assert_allclose(back[known[..., k]], channels[..., k][known[..., k]], 1e-5, 1e-4)


def test_comb_model_anchors_on_the_comb_and_reads_the_members(
    small_model: Callable[..., DualTowerForecaster],
) -> None:
    torch.manual_seed(0)
    model = small_model(base="comb").eval()
    x, static, base = torch.randn(4, 12, 9), torch.randn(4, 12), torch.randn(4, 3, 6, 4)
    assert model.fusion[0].in_features == 16 + 12 + 2 * 3 * 6 * 4
    moved = base.clone()
    moved[..., 2] += 1.0  # one member moves, the comb does not: the offset follows
    changed = model(x, static, None, moved)[..., 1] - model(x, static, None, base)[..., 1]
    assert changed.abs().max() > 0
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    out = model(x, static, None, base)
    torch.testing.assert_close(out[..., 1], base[..., 0])
    with pytest.raises(ValueError, match="expected 4 channels"):
        model(x, static, None, base[..., 0])
    with pytest.raises(ConfigError, match="needs target_inputs"):
        create_model("forecast-dualtower-lstm", base="comb")


def test_train_with_comb_base(tmp_path: Path, small_recipe: Callable[..., Any]) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.recipe import train

    config = small_recipe("model.base=comb", "refit=false")
    result = train(config, registry=ModelRegistry(tmp_path / "r.db"), runs_root=tmp_path)
    base = result.data.train.arrays.base
    assert base is not None and base.shape == (*result.data.train.arrays.y.shape, 4)
    assert list((tmp_path / "theta").glob("autoets-*.npz"))  # the cache beside the table
    test = result.data.windows(result.data.splits.test)
    assert test.base is not None and test.base.shape[-1] == 4
    assert np.isfinite(result.metrics["val_mase"])

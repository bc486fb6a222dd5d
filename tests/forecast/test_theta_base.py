"""Theta as the dual tower's base (``model.base: theta``): shapes, the exact scaling
round trip, the cache, the model's anchor and config validation."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import create_model
from towerkit.forecast import theta as theta_module
from towerkit.forecast.baselines import forecast_cutoff
from towerkit.forecast.dataset import TARGETS, Panel
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.theta import compute_theta, theta_forecasts
from towerkit.forecast.windows import (
    Scaling,
    attach_base,
    build_windows,
    scale_targets,
    unscale_targets,
    window_index,
)

HORIZON = 3


def test_worker_processes_do_not_change_the_forecasts(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from towerkit.forecast import baselines

    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [18, 24], min_history=6, horizon=HORIZON)
    monkeypatch.setenv(baselines.JOBS_VARIABLE, "1")
    alone = theta_module.compute_method(panel, pairs, targets, HORIZON, "AutoETS")
    monkeypatch.setenv(baselines.JOBS_VARIABLE, "2")
    monkeypatch.setattr(baselines, "MIN_SERIES_PER_JOB", 1)  # the synthetic panel is small
    assert baselines.forecast_jobs(len(pairs) * len(targets)) == 2
    np.testing.assert_array_equal(
        theta_module.compute_method(panel, pairs, targets, HORIZON, "AutoETS"), alone
    )


def test_worker_processes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from towerkit.core.errors import TowerkitError
    from towerkit.forecast.baselines import JOBS_VARIABLE, MIN_SERIES_PER_JOB, forecast_jobs

    monkeypatch.delenv(JOBS_VARIABLE, raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert forecast_jobs(10**6) == cpus  # by default every CPU this process may use
    assert forecast_jobs(MIN_SERIES_PER_JOB - 1) == 1  # a small batch stays in process
    monkeypatch.setenv(JOBS_VARIABLE, "3")
    assert forecast_jobs(10**6) == 3 and forecast_jobs(2 * MIN_SERIES_PER_JOB) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(JOBS_VARIABLE, bad)
        with pytest.raises(TowerkitError, match=f"{JOBS_VARIABLE}: expected a whole number"):
            forecast_jobs(10**6)


def test_shapes_missing_metric_and_the_baselines_forecast(panel: Panel) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [18, 24], min_history=6, horizon=HORIZON)
    theta = compute_theta(panel, pairs, targets, HORIZON)
    assert theta.shape == (len(pairs), HORIZON, len(targets))
    missing = np.isnan(theta).all(axis=1)
    absent = np.isnan(panel.values[pairs[:, 0]][:, :, targets]).all(axis=1)  # file absent
    assert np.array_equal(missing, absent)
    zeta, widget = panel.repos.index("zeta/tool"), panel.repos.index("acme/widget")
    assert missing[pairs[:, 0] == zeta, list(TARGETS).index("issues_new")].all()
    assert missing[pairs[:, 0] == widget, list(TARGETS).index("change_requests")].all()
    assert not np.isnan(theta[~missing.any(axis=1)]).any()
    # the same numbers as the backtest's Theta baseline (before its clip at 0)
    at = np.flatnonzero(pairs[:, 1] == 24)
    r, t = int(pairs[at[0], 0]), 0
    history = panel.values[r, panel.first[r] : 25, targets[t]]
    stamp = pd.Timestamp(panel.label(24) + "-01")
    found, _ = forecast_cutoff([history], ["Theta"], HORIZON, stamp)
    np.testing.assert_allclose(theta[at[0], :, t], found["Theta"][0, :, 1], rtol=1e-9)


@pytest.mark.parametrize("scaling", ["log", "naive", "mase"])
def test_scaled_base_round_trip(panel: Panel, scaling: Scaling) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [18, 24], min_history=6, horizon=HORIZON)
    windows = build_windows(panel, pairs, 12, HORIZON, targets, scaling)
    theta = compute_theta(panel, pairs, targets, HORIZON)
    scaled = scale_targets(theta, windows, targets)
    np.testing.assert_allclose(unscale_targets(scaled, windows, targets), theta, rtol=1e-12)
    attach_base(windows, theta, targets)
    assert windows.base is not None and windows.base.dtype == np.float32
    assert windows.base.shape == windows.y.shape
    known = ~np.isnan(theta)
    assert (windows.base[~known] == 0).all()  # unknown, like unknown inputs and targets
    back = unscale_targets(windows.base.astype(np.float64), windows, targets)
    np.testing.assert_allclose(back[known], theta[known], rtol=1e-5, atol=1e-4)


def test_cache_is_read_back_and_keyed_by_the_data(
    panel: Panel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    changed: Callable[[Panel, slice], Panel],
) -> None:
    targets = panel.target_indices(TARGETS)
    pairs = window_index(panel, [20], min_history=6, horizon=HORIZON)
    first = theta_forecasts(panel, pairs, targets, HORIZON, tmp_path / "theta")
    assert len(list((tmp_path / "theta").glob("theta-*.npz"))) == 1

    def refuse(*args: object) -> np.ndarray:
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(theta_module, "compute_theta", refuse)
    np.testing.assert_array_equal(
        theta_forecasts(panel, pairs, targets, HORIZON, tmp_path / "theta"), first
    )
    with pytest.raises(AssertionError, match="computed again"):  # other data, other key
        theta_forecasts(changed(panel, slice(0, 3)), pairs, targets, HORIZON, tmp_path / "theta")


@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_median_is_the_base_when_the_offset_is_zero(
    weight: float, small_model: Callable[..., DualTowerForecaster]
) -> None:
    torch.manual_seed(0)
    model = small_model(base="theta", base_weight=weight).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    x, static, base = torch.randn(4, 12, 9), torch.randn(4, 12), torch.randn(4, 3, 6)
    out = model(x, static, None, base)
    assert out.shape == (4, 3, 6, 3)
    last = x[:, -1, :6][:, None, :]
    torch.testing.assert_close(out[..., 1], weight * base + (1 - weight) * last)
    assert torch.all(out[..., 0] <= out[..., 1]) and torch.all(out[..., 1] <= out[..., 2])
    with pytest.raises(ValueError, match="pass the base"):
        model(x, static)


def test_the_base_is_an_input_of_the_fusion(
    small_model: Callable[..., DualTowerForecaster],
) -> None:
    torch.manual_seed(0)
    model = small_model(base="theta").eval()
    x, static, base = torch.randn(2, 12, 9), torch.randn(2, 12), torch.randn(2, 3, 6)
    offset = model(x, static, None, base)[..., 1] - base
    other = model(x, static, None, base + 1.0)[..., 1] - (base + 1.0)
    assert not torch.allclose(offset, other)


def test_unknown_base_is_a_one_line_error(tmp_path: Path) -> None:
    from towerkit.forecast.recipe import load_recipe

    with pytest.raises(ConfigError) as caught:
        load_recipe(None, ["model.base=arima"])
    message = str(caught.value)
    assert "model.base" in message and "'theta'" in message and "\n" not in message
    with pytest.raises(ConfigError, match="base: expected 'last', 'theta' or 'comb'"):
        create_model("forecast-dualtower-lstm", target_inputs=[0], base="arima")
    with pytest.raises(ConfigError, match="base_weight"):
        create_model("forecast-dualtower-lstm", target_inputs=[0], base="theta", base_weight=2.0)


def test_train_with_theta_base_and_refit(
    tmp_path: Path, small_recipe: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.recipe import train
    from towerkit.forecast.text import EmbeddingCache

    def no_embedding(*_: object, **__: object) -> None:
        raise AssertionError("a model without the text tower embedded texts")

    config = small_recipe("trainer.stages=[{name: train, epochs: 3, lr: 0.002}]")
    with monkeypatch.context() as patch:  # the recipe's model.use_text is false
        patch.setattr(EmbeddingCache, "embed", no_embedding)
        result = train(config, registry=ModelRegistry(tmp_path / "r.db"), runs_root=tmp_path)
    data = result.data
    assert data.train.text.shape == (len(data.train.arrays.pairs), 0)
    assert data.train.arrays.base is not None and data.val.arrays.base is not None
    assert (tmp_path / "t.parquet").parent.joinpath("theta").is_dir()  # the cache
    steps = result.metrics["best_step"]
    assert 1 <= result.metrics["refit_epochs"] <= 3 and steps > 0
    # building the windows and their Theta base is timed apart from the network's training
    assert 0 < result.metrics["prepare_seconds"] < result.seconds
    # the refit windows' targets all end by the first test cutoff
    assert data.val.arrays.pairs[:, 1].max() + config.data.horizon <= data.splits.test[0]
    assert (result.run_dir / "refit").is_dir()
    # the refit trains for the epochs the best step stood at, on train + validation windows
    batch = config.trainer.batch_size
    epochs = max(1, round(steps / math.ceil(len(data.train.arrays.pairs) / batch)))
    assert result.metrics["refit_epochs"] == epochs
    joined = len(data.train.arrays.pairs) + len(data.val.arrays.pairs)
    index = json.loads((result.run_dir / "refit" / "checkpoints" / "index.json").read_text())
    assert index["latest"] == f"step-{epochs * math.ceil(joined / batch):08d}"
    test = data.windows(data.splits.test)
    assert test.base is not None and test.base.shape == test.y.shape
    from towerkit.forecast.predict import forecast_repo

    forecast = forecast_repo(result.model, data, "acme/rocket", tmp_path / "p.png")
    assert len(forecast.months) == 3 and forecast.raw.shape == (3, len(TARGETS), 3)
    assert np.isfinite(forecast.raw).all() and forecast.png.is_file()

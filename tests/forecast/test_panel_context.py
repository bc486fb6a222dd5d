"""``data.panel_context``: the whole panel's trend as extra look-back channels, trained, saved
and read back by a loaded model (the context itself: tests/forecast/test_windows.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from towerkit.forecast.dataset import TARGETS


def test_recipe_trains_and_reloads_with_panel_context(
    tmp_path: Path, small_recipe: Callable[..., Any]
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import SplitWindows, load_data, predict_scaled
    from towerkit.forecast.recipe import load_forecaster, train

    registry = ModelRegistry(tmp_path / "r.db")
    config = small_recipe("data.panel_context=true", "refit=false")
    result = train(config, registry=registry, runs_root=tmp_path)
    plain = small_recipe("refit=false")
    channels = result.data.train.arrays.x.shape[2]
    assert result.model.config.n_inputs == channels
    assert np.isfinite(result.metrics["val_mase"])
    loaded = load_forecaster(str(result.run_dir), registry)
    assert loaded.config.data.panel_context and not plain.data.panel_context
    data = load_data(loaded.config.data, loaded.config.encoder, False, base="theta", text=False)
    test = data.windows(data.splits.test)
    assert test.x.shape[2] == channels
    empty = np.zeros((len(test.pairs), 0), dtype=np.float32)
    expected = result.data.windows(result.data.splits.test)
    np.testing.assert_array_equal(
        predict_scaled(loaded.model.eval(), SplitWindows(test, empty)),
        predict_scaled(result.model, SplitWindows(expected, empty)),
    )
    no_context = load_data(plain.data, plain.encoder, False, base="theta", text=False)
    assert no_context.train.arrays.x.shape[2] == channels - len(TARGETS)

"""``model.per_target``: one network per target, side by side, saved and loaded whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel
from towerkit.forecast.model import DualTowerForecaster


def test_each_target_is_its_own_network_and_survives_a_round_trip(
    tmp_path: Path, small_model: Callable[..., DualTowerForecaster]
) -> None:
    torch.manual_seed(0)
    model = small_model(base="theta", per_target=True).eval()
    x, static, base = torch.randn(5, 12, 9), torch.randn(5, 12), torch.randn(5, 3, 6)
    out = model(x, static, None, base)
    assert out.shape == (5, 3, 6, 3) and len(model.targets) == 6
    for k, net in enumerate(model.targets):
        assert net.config.n_targets == 1 and net.config.target_inputs == [k]
        torch.testing.assert_close(
            out[:, :, k : k + 1], net(x, static, None, base[:, :, k : k + 1])
        )
    # a target's forecast reads its own base only
    moved = base.clone()
    moved[:, :, 1] += 5.0
    changed = model(x, static, None, moved)
    torch.testing.assert_close(changed[:, :, [0, 2, 3, 4, 5]], out[:, :, [0, 2, 3, 4, 5]])
    assert not torch.allclose(changed[:, :, 1], out[:, :, 1])
    assert torch.all(out[..., 0] <= out[..., 1]) and torch.all(out[..., 1] <= out[..., 2])
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert isinstance(loaded, DualTowerForecaster) and loaded.config.per_target
    torch.testing.assert_close(loaded(x, static, None, base), out)
    with pytest.raises(ConfigError, match="per_target"):
        small_model(per_target=True, target_inputs=[0, 1])


def test_recipe_trains_and_reloads_a_per_target_model(
    tmp_path: Path, small_recipe: Callable[..., Any]
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import predict_scaled
    from towerkit.forecast.recipe import load_forecaster, train

    registry = ModelRegistry(tmp_path / "r.db")
    result = train(small_recipe("model.per_target=true"), registry=registry, runs_root=tmp_path)
    model = result.model
    assert model.config.per_target and len(model.targets) == len(result.data.target_idx)
    assert np.isfinite(result.metrics["val_mase"])
    val = result.data.val
    loaded = load_forecaster(str(result.run_dir), registry)
    np.testing.assert_array_equal(
        predict_scaled(loaded.model.eval(), val), predict_scaled(model, val)
    )

"""The seed ensemble (recipe ``ensemble: K``, model ``members: K``): the mean of the members'
quantiles, saved and loaded whole, and trained as K separate single-model runs would be."""

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


def test_ensemble_is_the_mean_of_its_members_and_survives_a_round_trip(
    tmp_path: Path, small_model: Callable[..., DualTowerForecaster]
) -> None:
    torch.manual_seed(0)
    model = small_model(base="theta", members=3).eval()
    x, static, base = torch.randn(5, 12, 9), torch.randn(5, 12), torch.randn(5, 3, 6)
    out = model(x, static, None, base)
    parts = torch.stack([m(x, static, None, base) for m in model.members])
    assert out.shape == (5, 3, 6, 3) and len(model.members) == 3
    torch.testing.assert_close(out, parts.mean(0))
    assert not torch.allclose(parts[0], parts[1])  # members differ
    assert torch.all(out[..., 0] <= out[..., 1]) and torch.all(out[..., 1] <= out[..., 2])
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert isinstance(loaded, DualTowerForecaster) and loaded.config.members == 3
    torch.testing.assert_close(loaded(x, static, None, base), out)
    with pytest.raises(ConfigError, match="members"):
        small_model(base="theta", members=0)


def test_recipe_ensemble_equals_the_single_runs_of_its_seeds(
    tmp_path: Path, small_recipe: Callable[..., Any]
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import predict_scaled
    from towerkit.forecast.recipe import train

    registry = ModelRegistry(tmp_path / "r.db")
    joined = train(
        small_recipe("ensemble=2", "trainer.seed=3"),  # type: ignore[arg-type]
        registry=registry,
        runs_root=tmp_path / "runs",
    )
    assert joined.model.config.members == 2 and joined.metrics["members"] == 2
    assert (joined.run_dir / "member-1" / "refit").is_dir()
    singles = [
        train(
            small_recipe(f"trainer.seed={seed}"),  # type: ignore[arg-type]
            registry=registry,
            runs_root=tmp_path / "runs",
        )
        for seed in (3, 4)
    ]
    val = joined.data.val
    each = [torch.from_numpy(predict_scaled(s.model, val)) for s in singles]
    torch.testing.assert_close(
        torch.from_numpy(predict_scaled(joined.model, val)), (each[0] + each[1]) / 2
    )
    assert not torch.allclose(each[0], each[1])
    # ``selected`` is the ensemble before the refit, the one the validation numbers are of
    assert joined.selected is not None and joined.selected is not joined.model
    from towerkit.forecast.recipe import _val_metrics

    assert _val_metrics(joined.selected, joined.data)["mase"] == joined.metrics["val_mase"]
    refitted = predict_scaled(joined.model, val)
    assert not np.allclose(predict_scaled(joined.selected, val), refitted)
    assert joined.version is not None
    from towerkit.forecast.recipe import load_forecaster

    loaded = load_forecaster(str(joined.run_dir), registry)
    assert loaded.model.config.members == 2
    np.testing.assert_array_equal(
        predict_scaled(loaded.model.eval(), val), predict_scaled(joined.model, val)
    )
    # the registered version is this run, with its model and its numbers
    registered = registry.resolve(joined.version.uri)
    assert registered.run_dir == str(joined.run_dir)
    assert Path(registered.model_dir) == joined.run_dir / "model"
    assert registered.metrics["members"] == 2
    with pytest.raises(ConfigError, match="ensemble"):
        train(small_recipe("ensemble=0"), registry=registry)  # type: ignore[arg-type]

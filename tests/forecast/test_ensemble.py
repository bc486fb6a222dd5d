"""The seed ensemble (recipe ``ensemble: K``, model ``members: K``): the mean of the members'
quantiles, saved and loaded whole, and trained as K separate single-model runs would be."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, create_model
from towerkit.forecast.model import DualTowerForecaster


def _model(members: int) -> DualTowerForecaster:
    model = create_model(
        "forecast-dualtower-lstm",
        n_inputs=9,
        n_static=12,
        lookback=12,
        hidden=16,
        use_text=False,
        target_inputs=[0, 1, 2, 3, 4, 5],
        base="theta",
        members=members,
    )
    assert isinstance(model, DualTowerForecaster)
    return model


def test_ensemble_is_the_mean_of_its_members_and_survives_a_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _model(3).eval()
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
        _model(0)


def _config(corpus: Path, tmp_path: Path, *extra: str) -> object:
    from towerkit.forecast.recipe import load_recipe

    return load_recipe(
        None,
        [
            f"data.corpus={corpus}",
            f"data.table={tmp_path / 't.parquet'}",
            "data.lookback=12",
            "data.min_history=6",
            "data.n_val_cutoffs=3",
            "data.n_test_cutoffs=4",
            "data.scaling=mase",
            "model.base=theta",
            "model.use_text=false",
            "model.hidden=8",
            "model.fusion_hidden=16",
            "trainer.batch_size=8",
            "trainer.progress=false",
            "trainer.stages=[{name: train, epochs: 2, lr: 0.002}]",
            "refit=true",
            *extra,
        ],
    )


def test_recipe_ensemble_equals_the_single_runs_of_its_seeds(corpus: Path, tmp_path: Path) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.data import predict_scaled
    from towerkit.forecast.recipe import train

    registry = ModelRegistry(tmp_path / "r.db")
    joined = train(
        _config(corpus, tmp_path, "ensemble=2", "trainer.seed=3"),  # type: ignore[arg-type]
        registry=registry,
        runs_root=tmp_path / "runs",
    )
    assert joined.model.config.members == 2 and joined.metrics["members"] == 2
    assert (joined.run_dir / "member-1" / "refit").is_dir()
    singles = [
        train(
            _config(corpus, tmp_path, f"trainer.seed={seed}"),  # type: ignore[arg-type]
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
    assert joined.version is not None
    from towerkit.forecast.recipe import load_forecaster

    loaded = load_forecaster(str(joined.run_dir), registry)
    assert loaded.model.config.members == 2
    with pytest.raises(ConfigError, match="ensemble"):
        train(_config(corpus, tmp_path, "ensemble=0"), registry=registry)  # type: ignore[arg-type]

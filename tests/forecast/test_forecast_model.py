"""The dual tower's shapes, non-crossing quantiles, ablation and save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_pinball_loss

from towerkit.core.model import BaseModel, create_model
from towerkit.forecast.model import DualTowerForecaster, pinball


@pytest.mark.parametrize("arch", ["forecast-dualtower-lstm", "forecast-dualtower-transformer"])
@pytest.mark.parametrize("use_text", [True, False])
def test_shapes_and_order(arch: str, use_text: bool, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(
        arch,
        n_inputs=9,
        n_static=12,
        lookback=12,
        hidden=32,
        use_text=use_text,
        text_dim=16,
        target_inputs=[0, 1, 2, 3, 4, 5],
    )
    assert isinstance(model, DualTowerForecaster)
    x, static, text = torch.randn(5, 12, 9), torch.randn(5, 12), torch.randn(5, 16)
    out = model.eval()(x, static, text if use_text else None)
    assert out.shape == (5, 3, 6, 3)
    assert torch.all(out[..., 0] <= out[..., 1]) and torch.all(out[..., 1] <= out[..., 2])
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    torch.testing.assert_close(loaded(x, static, text if use_text else None), out)
    assert use_text == any(n.startswith("text_tower") for n, _ in model.named_parameters())


def test_text_model_needs_text() -> None:
    model = create_model("forecast-dualtower-lstm", n_inputs=4, n_static=2, text_dim=8, hidden=8)
    with pytest.raises(ValueError, match="text embeddings"):
        model(torch.randn(2, 24, 4), torch.randn(2, 2))


def test_pinball_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(7, 3, 2, 3))
    target = rng.normal(size=(7, 3, 2))
    levels = [0.1, 0.5, 0.9]
    ours = pinball(torch.tensor(pred), torch.tensor(target), torch.ones(7, 3, 2), levels)
    expected = np.mean(
        [
            mean_pinball_loss(target.ravel(), pred[..., i].ravel(), alpha=q)
            for i, q in enumerate(levels)
        ]
    )
    assert float(ours) == pytest.approx(expected, rel=1e-9)
    mask = torch.zeros(7, 3, 2)
    mask[0] = 1
    only_first = pinball(torch.tensor(pred), torch.tensor(target), mask, levels)
    first = np.mean(
        [
            mean_pinball_loss(target[0].ravel(), pred[0, ..., i].ravel(), alpha=q)
            for i, q in enumerate(levels)
        ]
    )
    assert float(only_first) == pytest.approx(first, rel=1e-9)

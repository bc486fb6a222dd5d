from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from towerkit.core.errors import ConfigError, ModelLoadError
from towerkit.core.model import BaseModel, create_model, eval_mode, list_models, register_model


@dataclass
class TinyConfig:
    in_dim: int = 4
    hidden: int = 8
    out_dim: int = 3


class TinyNet(BaseModel):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.body = nn.Sequential(nn.Linear(config.in_dim, config.hidden), nn.ReLU())
        self.head = nn.Linear(config.hidden, config.out_dim)
        self.norm = nn.BatchNorm1d(config.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.body(x)))


@dataclass
class OtherConfig:
    size: int = 2


class OtherNet(BaseModel):
    config_class = OtherConfig

    def __init__(self, config: OtherConfig) -> None:
        super().__init__(config)
        self.w = nn.Parameter(torch.zeros(config.size))


@register_model("test-tiny")
def tiny(**overrides: int) -> TinyNet:
    return TinyNet(TinyConfig(**overrides))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyNet(TinyConfig(hidden=16))
    model.train()
    model(torch.randn(32, 4))  # moves batch-norm running stats, which must be saved too
    model.eval()
    x = torch.randn(5, 4)
    expected = model(x)
    out = model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["class"].endswith("TinyNet") and meta["config"]["hidden"] == 16
    loaded = BaseModel.from_pretrained(out)
    assert isinstance(loaded, TinyNet) and loaded.config == model.config
    assert not loaded.training
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_saving_twice_replaces_whole_folder(tmp_path: Path) -> None:
    TinyNet(TinyConfig()).save_pretrained(tmp_path / "m")
    TinyNet(TinyConfig(hidden=4)).save_pretrained(tmp_path / "m")
    assert TinyNet.from_pretrained(tmp_path / "m").config.hidden == 4
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_class_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    TinyNet(TinyConfig()).save_pretrained(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="is not a OtherNet"):
        OtherNet.from_pretrained(tmp_path / "m")


def test_shape_mismatch_names_the_weight(tmp_path: Path) -> None:
    out = TinyNet(TinyConfig()).save_pretrained(tmp_path / "m")
    meta = json.loads((out / "config.json").read_text())
    meta["config"]["hidden"] = 9
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r"weight 'body.0.\w+' has shape \(8.*expects \(9"):
        BaseModel.from_pretrained(out)


def test_foreign_class_path_is_refused(tmp_path: Path) -> None:
    out = TinyNet(TinyConfig()).save_pretrained(tmp_path / "m")
    meta = json.loads((out / "config.json").read_text())
    meta["class"] = "os.system"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="is not a towerkit model"):
        BaseModel.from_pretrained(out)


def test_missing_files_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"expected config\.json and model\.safetensors"):
        BaseModel.from_pretrained(tmp_path)
    out = TinyNet(TinyConfig()).save_pretrained(tmp_path / "m")
    (out / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        BaseModel.from_pretrained(out)


def test_wrong_config_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a TinyConfig config"):
        TinyNet(OtherConfig())  # type: ignore[arg-type]


def test_builder_registry() -> None:
    assert "test-tiny" in list_models("test-")
    model = create_model("test-tiny", hidden=5)
    assert isinstance(model, TinyNet) and model.config.hidden == 5
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        create_model("nope")


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_callers_mode_even_on_error(training: bool) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with eval_mode(model):
        assert not model.training and not model[1].training
    assert model.training is training and model[1].training is training
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training is training

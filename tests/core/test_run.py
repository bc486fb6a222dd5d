"""core.run: the run directory's life (start, finish) and what --resume accepts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from towerkit.core.errors import TowerkitError
from towerkit.core.model import BaseModel
from towerkit.core.registry import ModelRegistry
from towerkit.core.run import finish_run, resume_config, start_run


@dataclass
class Recipe:
    recipe: str = "quick"
    epochs: int = 2


def test_start_run_writes_the_resolved_config_into_a_fresh_folder(tmp_path: Path) -> None:
    first = start_run("zoo", "quick", Recipe(epochs=3), root=tmp_path)
    second = start_run("zoo", "quick", Recipe(), root=tmp_path)
    assert first != second and first.parent == second.parent == tmp_path / "zoo" / "quick"
    assert yaml.safe_load((first / "config.yaml").read_text()) == {"recipe": "quick", "epochs": 3}


def test_resume_takes_an_unfinished_run_and_refuses_the_rest(tmp_path: Path) -> None:
    run = start_run("zoo", "quick", Recipe(), root=tmp_path)
    assert resume_config(run) == run / "config.yaml"
    with pytest.raises(TowerkitError, match=r"not a run directory \(no config.yaml\)$"):
        resume_config(tmp_path)
    (run / "metrics.json").write_text("{}")  # finish_run writes it last
    with pytest.raises(TowerkitError) as error:
        resume_config(run)
    assert (
        str(error.value) == f"{run}: the run finished (metrics.json is written); nothing to resume"
    )


@dataclass
class RunNetConfig:
    size: int = 2


class RunNet(BaseModel):
    config_class = RunNetConfig

    def __init__(self, config: RunNetConfig) -> None:
        super().__init__(config)
        self.w = nn.Parameter(torch.ones(config.size))


def test_a_run_whose_registration_failed_can_be_resumed_and_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start_run("zoo", "quick", Recipe(), root=tmp_path)
    registry = ModelRegistry(tmp_path / "r.db")

    def down(*_: object, **__: object) -> None:
        raise TowerkitError("registry: database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(registry, "register", down)
        with pytest.raises(TowerkitError, match="locked"):
            finish_run(
                run,
                RunNet(RunNetConfig()),
                {"acc": 0.5},
                Recipe(),
                register_as="net",
                registry=registry,
            )
    assert not (run / "metrics.json").exists()  # not marked finished
    assert resume_config(run) == run / "config.yaml"
    version = finish_run(
        run, RunNet(RunNetConfig()), {"acc": 0.5}, Recipe(), register_as="net", registry=registry
    )
    assert version is not None and version.metrics == {"acc": 0.5} and version.version == 1
    assert (run / "metrics.json").read_text().strip().startswith("{")
    with pytest.raises(TowerkitError, match="nothing to resume"):
        resume_config(run)

"""benchmarks/seqrec.py: towerkit's batch size and lr default to RecBole's and reach the recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from towerkit.rec.sequential.recipe import load_recipe_config


@pytest.fixture(scope="module")
def seqrec(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("seqrec.py")


def test_towerkit_batch_and_lr_default_to_recboles(seqrec: ModuleType) -> None:
    args = seqrec._args(["--batch", "256", "--lr", "0.003"])
    assert (args.towerkit_batch, args.towerkit_lr) == (256, 0.003)
    assert (args.batch, args.lr) == (256, 0.003)


def test_towerkit_settings_reach_the_recipe_and_leave_recboles(
    seqrec: ModuleType, tmp_path: Path
) -> None:
    args = seqrec._args(["--epochs", "7", "--towerkit-batch", "32", "--towerkit-lr", "0.002"])
    assert (args.batch, args.lr) == (128, 0.001)  # RecBole's stay the defaults
    config = load_recipe_config(None, seqrec.towerkit_overrides(args, tmp_path / "data"))
    assert config.trainer.batch_size == 32
    assert [(s.epochs, s.lr) for s in config.trainer.stages] == [(7, 0.002)]
    assert config.trainer.early_stopping_metric is None
    assert config.data.prepared == str(tmp_path / "data")

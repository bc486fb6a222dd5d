"""Checkpoint storage: state without pickle, RNG round trips, atomic writes, retention."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from towerkit.core.checkpoint import (
    CheckpointManager,
    capture_rng_state,
    load_state,
    restore_rng_state,
    rng_fingerprint,
    save_state,
)
from towerkit.core.errors import TowerkitError
from towerkit.core.schedules import EpochSampler, SeededBatches


def trained_adamw() -> tuple[nn.Linear, torch.optim.AdamW]:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.01, betas=(0.8, 0.95))
    for _ in range(3):
        layer(torch.randn(5, 4)).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return layer, optimizer


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path: Path) -> None:
    layer, optimizer = trained_adamw()
    save_state(tmp_path, "optimizer", optimizer.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer.json", "optimizer.safetensors"]

    twin = nn.Linear(4, 3)
    twin.load_state_dict(layer.state_dict())
    twin_optimizer = torch.optim.AdamW(twin.parameters(), lr=0.5)
    twin_optimizer.load_state_dict(load_state(tmp_path, "optimizer"))
    assert twin_optimizer.param_groups[0]["lr"] == 0.01
    batch = torch.randn(5, 4)
    for model, opt in ((layer, optimizer), (twin, twin_optimizer)):
        model(batch).pow(2).mean().backward()
        opt.step()
    for a, b in zip(layer.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rng_state_restores_every_generator_and_its_fingerprint(tmp_path: Path) -> None:
    state = capture_rng_state()
    print_before = rng_fingerprint(state)
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    assert rng_fingerprint(capture_rng_state()) != print_before
    save_state(tmp_path, "rng", state)
    restore_rng_state(load_state(tmp_path, "rng"))
    assert rng_fingerprint(capture_rng_state()) == print_before
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[0] == again[0] and drawn[1] == again[1] and torch.equal(drawn[2], again[2])


def test_load_state_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match=r"missing optimizer\.json"):
        load_state(tmp_path, "optimizer")


def test_epoch_sampler_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    before = torch.get_rng_state()
    sampler = EpochSampler(50, seed=3)
    order = list(sampler)
    assert order == list(sampler) == list(EpochSampler(50, seed=3))
    assert sorted(order) == list(range(50)) and order != list(EpochSampler(50, seed=4))
    assert torch.equal(torch.get_rng_state(), before)


class Augmented(torch.utils.data.Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        return index + torch.rand(2) + float(np.random.rand()) + random.random()


def test_seeded_batches_depend_only_on_the_batch_and_keep_the_training_rng() -> None:
    data = SeededBatches(Augmented(), seed=11)
    before = capture_rng_state()
    first = data.__getitems__([3, 1, 4])
    assert rng_fingerprint(capture_rng_state()) == rng_fingerprint(before)
    torch.rand(5), np.random.rand(), random.random()  # whatever the training did meanwhile
    again = data.__getitems__([3, 1, 4])
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = SeededBatches(Augmented(), seed=12).__getitems__([3, 1, 4])
    assert not torch.equal(first[0], other[0])


def write_files(payload: str) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        (directory / "model.bin").write_text(payload)

    return write


def test_retention_keeps_the_last_n_plus_the_best(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2, metric_mode="max")
    metrics = [0.1, 0.9, None, 0.3, float("nan"), None]
    for step, metric in enumerate(metrics, start=1):
        manager.save(step, write_files(f"w{step}"), metric=metric)
    assert [c.step for c in manager.list_checkpoints()] == [2, 5, 6]
    best = manager.best()
    assert best is not None and best.step == 2
    index = json.loads((tmp_path / "index.json").read_text())
    assert (index["best"], index["latest"]) == ("step-00000002", "step-00000006")

    lower = CheckpointManager(tmp_path / "min", keep_last=1, metric_mode="min")
    for step, metric in enumerate([0.5, 0.2, 0.2, 0.7], start=1):
        lower.save(step, write_files("w"), metric=metric)
    assert [c.step for c in lower.list_checkpoints()] == [2, 4]  # ties keep the earlier step


def test_an_interrupted_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=1)
    manager.save(1, write_files("first"))

    def crash(directory: Path) -> None:
        (directory / "model.bin").write_text("half of it")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        manager.save(2, crash)
    assert [c.step for c in manager.list_checkpoints()] == [1]
    assert (tmp_path / "step-00000001" / "model.bin").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "step-00000001"]


def test_a_killed_writers_staging_dir_is_ignored_then_removed(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save(5, write_files("ok"))
    staging = tmp_path / ".step-00000010.tmp"  # what SIGKILL mid-write leaves behind
    staging.mkdir()
    (staging / "model.bin").write_text("partial")
    latest = manager.latest()
    assert latest is not None and latest.step == 5
    assert manager.resolve(True) == tmp_path / "step-00000005"
    manager.remove_leftovers()
    assert not staging.exists()


def test_resolve_and_discard_after(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    assert manager.resolve(True) is None and manager.resolve(False) is None
    with pytest.raises(TowerkitError, match="is not a checkpoint directory"):
        manager.resolve(tmp_path / "nowhere")
    for step in (1, 2, 3):
        manager.save(step, write_files("w"))
    assert manager.resolve(tmp_path / "step-00000002") == tmp_path / "step-00000002"
    removed = manager.discard_after(2)
    assert [p.name for p in removed] == ["step-00000003"]
    assert [c.step for c in manager.list_checkpoints()] == [2]

"""Trainer behaviour: schedules, stages, alternation, accumulation, clipping and mixed
precision. Real data: scikit-learn's digits."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from trainer_helpers import Recorder, TwoPart, changed, quiet, snapshot, xent

from towerkit.core.errors import ConfigError
from towerkit.core.schedules import build_scheduler, lr_factor
from towerkit.core.trainer import StageConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


# --- schedules ------------------------------------------------------------------------------


def test_warmup_then_cosine_values() -> None:
    assert lr_factor(0, 110, 10, "cosine") == 0.0
    assert lr_factor(5, 110, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 110, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(60, 110, 10, "cosine") == pytest.approx(0.5)  # half way down the cosine
    assert lr_factor(35, 110, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(110, 110, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(60, 110, 10, "cosine", min_lr_ratio=0.1) == pytest.approx(0.55)
    assert lr_factor(110, 110, 10, "linear", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(60, 110, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(100, 110, 10, "constant") == 1.0


def test_scheduler_sets_the_optimizer_lr_per_step() -> None:
    param = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=0.2)
    stage = StageConfig(lr=0.2, warmup_steps=4, scheduler="cosine", min_lr_ratio=0.25)
    scheduler = build_scheduler(optimizer, stage, total_steps=20)
    seen = []
    for _ in range(21):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.2 * lr_factor(s, 20, 4, "cosine", 0.25) for s in range(21)])


def test_trainer_logs_the_scheduled_lr(tmp_path: Path, digits: TensorDataset) -> None:
    stage = StageConfig(epochs=2, lr=0.01, warmup_steps=3, scheduler="linear")
    recorder = Recorder()
    Trainer(TwoPart(), quiet(stages=[stage]), digits, xent, tmp_path, callbacks=[recorder]).fit()
    lrs = [s["logs"]["lr"] for s in recorder.steps]
    assert len(lrs) == 16  # 2 epochs of 256 / 32 batches
    assert lrs == pytest.approx([0.01 * lr_factor(k, 16, 3, "linear") for k in range(16)])


# --- stages and alternation -------------------------------------------------------------------


def test_stages_freeze_everything_outside_their_patterns(
    tmp_path: Path, digits: TensorDataset
) -> None:
    model, recorder = TwoPart(), Recorder()
    start = snapshot(model)
    stages = [
        StageConfig(name="head", epochs=1, trainable=["head.*"]),
        StageConfig(name="body", epochs=1, trainable=["body.*"]),
    ]
    Trainer(model, quiet(stages=stages), digits, xent, tmp_path, callbacks=[recorder]).fit()
    first = [s for s in recorder.steps if s["stage"] == 0]
    second = [s for s in recorder.steps if s["stage"] == 1]
    assert len(first) == len(second) == 8
    for step in first:
        assert step["grad"] == {n: n.startswith("head.") for n in start}
        assert not changed(start, step["params"]) & {"body.weight", "body.bias"}
    assert changed(start, first[-1]["params"]) == {"head.weight", "head.bias"}
    end_of_first = first[-1]["params"]
    for step in second:
        assert step["grad"] == {n: n.startswith("body.") for n in start}
        assert changed(end_of_first, step["params"]) == {"body.weight", "body.bias"}
    assert all(p.requires_grad for p in model.parameters())  # handed back as it came


def test_alternating_mode_switches_group_every_n_steps(
    tmp_path: Path, digits: TensorDataset
) -> None:
    model, recorder = TwoPart(), Recorder()
    stage = StageConfig(
        epochs=2, max_steps=12, alternate=[["body.*"], ["head.*"]], alternate_every=3
    )
    Trainer(model, quiet(stages=[stage]), digits, xent, tmp_path, callbacks=[recorder]).fit()
    params = [snapshot(TwoPart())] + [s["params"] for s in recorder.steps]
    updated = [changed(a, b) for a, b in itertools.pairwise(params)]
    body, head = {"body.weight", "body.bias"}, {"head.weight", "head.bias"}
    assert updated == [body] * 3 + [head] * 3 + [body] * 3 + [head] * 3


def test_pattern_matching_no_parameter_is_a_config_error(
    tmp_path: Path, digits: TensorDataset
) -> None:
    stage = StageConfig(trainable=["encoder.*"])
    with pytest.raises(ConfigError, match=r"pattern 'encoder\.\*' matches no parameter"):
        Trainer(TwoPart(), quiet(stages=[stage]), digits, xent, tmp_path)


# --- accumulation, clipping, precision ----------------------------------------------------------


def test_gradient_accumulation_equals_one_big_batch(tmp_path: Path, digits: TensorDataset) -> None:
    stage = StageConfig(epochs=2, lr=0.05, scheduler="constant", optimizer="sgd")
    small, big = TwoPart(), TwoPart()
    small_cfg = quiet(stages=[stage], batch_size=8, grad_accum_steps=4, max_grad_norm=None)
    big_cfg = quiet(stages=[stage], batch_size=32, grad_accum_steps=1, max_grad_norm=None)
    a = Trainer(small, small_cfg, digits, xent, tmp_path / "a").fit()
    b = Trainer(big, big_cfg, digits, xent, tmp_path / "b").fit()
    assert a.global_step == b.global_step == 16
    assert changed(snapshot(TwoPart()), snapshot(small))  # it did train
    for (name, p), q in zip(small.named_parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-6, msg=name)


def test_clipping_bounds_the_update(tmp_path: Path, digits: TensorDataset) -> None:
    def loud(model: nn.Module, batch: Any) -> torch.Tensor:
        return 1000.0 * xent(model, batch)  # gradients far above the bound

    stage = StageConfig(lr=1.0, optimizer="sgd", momentum=0.0, scheduler="constant")
    config = quiet(stages=[stage], max_grad_norm=0.5, log_every_steps=1)
    recorder, model = Recorder(), TwoPart()
    Trainer(model, config, digits, loud, tmp_path, callbacks=[recorder]).fit()
    params = [snapshot(TwoPart())] + [s["params"] for s in recorder.steps]
    for before, after, step in zip(params, params[1:], recorder.steps, strict=False):
        update = torch.sqrt(sum(((after[n] - before[n]) ** 2).sum() for n in before))
        assert step["logs"]["grad_norm"] > 10.0  # the raw norm, before clipping
        assert float(update) == pytest.approx(0.5, abs=1e-4)  # SGD, lr 1: update = clipped grad


def test_bf16_mixed_precision_on_cpu_trains_and_hands_back_the_plain_module(
    tmp_path: Path, digits: TensorDataset
) -> None:
    model = TwoPart()
    forward = model.forward
    config = quiet(
        stages=[StageConfig(epochs=5, lr=0.03)], mixed_precision="bf16", log_every_steps=4
    )
    result = Trainer(model, config, digits, xent, tmp_path).fit()
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert losses[-1] < 0.6 * losses[0]
    assert model.forward == forward and "_original_forward" not in model.__dict__
    assert model(torch.zeros(1, 64)).dtype == torch.float32


def test_mixed_precision_choices_on_cpu(tmp_path: Path, digits: TensorDataset) -> None:
    with pytest.raises(ConfigError, match="fp16' needs a CUDA device"):
        Trainer(TwoPart(), quiet(mixed_precision="fp16"), digits, xent, tmp_path)
    trainer = Trainer(TwoPart(), quiet(mixed_precision="auto"), digits, xent, tmp_path)
    assert trainer.accelerator.mixed_precision == "no"  # auto: bf16 only on GPUs that have it
    for requested in ("no", "bf16"):  # asked for by name: taken as it is (bf16 runs on a CPU)
        config = quiet(mixed_precision=requested)
        trainer = Trainer(TwoPart(), config, digits, xent, tmp_path / requested)
        assert trainer.accelerator.mixed_precision == requested

"""Exact resume: a stopped or SIGKILLed run, resumed, ends with the uninterrupted run's weights
bit for bit; a resume whose RNG or data position cannot match is refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits

from towerkit.core.errors import TowerkitError
from towerkit.core.trainer import Callback, StageConfig, Trainer, TrainerConfig

RECIPE = Path(__file__).with_name("digits_recipe.py")


def _load_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    train = recipe.NoisyDigits(x[:512], y[:512])

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        return {"accuracy": (model(x[1500:]).argmax(1) == y[1500:]).float().mean().item()}

    return train, eval_fn


def small_config() -> TrainerConfig:
    """The recipe's two stages, one epoch each: 32 micro-batches = 16 optimizer steps each."""
    config = recipe.config()
    stages = [dataclasses.replace(s, epochs=1) for s in config.stages]
    return dataclasses.replace(config, stages=stages, checkpoint_every_steps=None)


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.state.global_step == self.step:
            trainer.request_stop()


def run(data: tuple[Any, Any], run_dir: Path, resume: bool = False, **kwargs: Any) -> Any:
    train, eval_fn = data
    torch.manual_seed(0)
    model = recipe.Digits()
    config = kwargs.pop("config", small_config())
    trainer = Trainer(model, config, train, recipe.loss_fn, run_dir, eval_fn=eval_fn, **kwargs)
    return model, trainer.fit(resume=resume)


def comparable(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "examples_per_second"} for row in history]


@pytest.mark.parametrize("stop_step", [10, 16, 21], ids=["mid-stage-1", "boundary", "stage-2"])
def test_in_process_resume_across_a_stage_boundary(
    tmp_path: Path, data: tuple[Any, Any], stop_step: int
) -> None:
    reference, expected = run(data, tmp_path / "reference")
    _, stopped = run(data, tmp_path / "run", callbacks=[StopAt(stop_step)])
    assert stopped.global_step == stop_step < expected.global_step == 32
    resumed_model, resumed = run(data, tmp_path / "run", resume=True)

    resumed_state = resumed_model.state_dict()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed_state[name]), name
    assert comparable(resumed.history) == comparable(expected.history)
    assert (resumed.best_step, resumed.best_metric) == (expected.best_step, expected.best_metric)
    assert resumed.final_metrics == expected.final_metrics


def stopped_run(data: tuple[Any, Any], run_dir: Path, step: int = 10) -> Path:
    run(data, run_dir, callbacks=[StopAt(step)])
    return run_dir / "checkpoints" / f"step-{step:08d}"


def test_resume_refuses_a_different_data_position(tmp_path: Path, data: tuple[Any, Any]) -> None:
    stopped_run(data, tmp_path)
    other_seed = dataclasses.replace(small_config(), seed=8)
    with pytest.raises(TowerkitError, match="data position does not match"):
        run(data, tmp_path, resume=True, config=other_seed)


def test_resume_refuses_an_rng_state_that_did_not_take(
    tmp_path: Path, data: tuple[Any, Any]
) -> None:
    checkpoint = stopped_run(data, tmp_path)
    record_path = checkpoint / "process0.json"
    record = json.loads(record_path.read_text())
    record["rng_fingerprint"] = "0" * 32
    record_path.write_text(json.dumps(record))
    with pytest.raises(TowerkitError, match="restored RNG state differs"):
        run(data, tmp_path, resume=True)


def test_resume_refuses_another_process_count_or_model(
    tmp_path: Path, data: tuple[Any, Any]
) -> None:
    checkpoint = stopped_run(data, tmp_path)
    state_path = checkpoint / "trainer_state.json"
    original = state_path.read_text()
    state_path.write_text(original.replace('"world_size": 1', '"world_size": 2'))
    with pytest.raises(TowerkitError, match="written by 2 processes, this run has 1"):
        run(data, tmp_path, resume=True)
    state_path.write_text(original)

    train, _ = data
    wider = torch.nn.Sequential(torch.nn.Linear(64, 32))
    config = TrainerConfig(stages=[StageConfig()], progress=False, tensorboard=False)
    trainer = Trainer(wider, config, train, recipe.loss_fn, tmp_path)
    with pytest.raises(TowerkitError, match=r"model\.safetensors: does not fit the model"):
        trainer.fit(resume=checkpoint)


# --- SIGKILL in a subprocess ------------------------------------------------------------------


def recipe_command(run_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(RECIPE), str(run_dir), str(out), *extra]


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*"))


@pytest.mark.multiproc
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run_bit_for_bit(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    reference_log = open(tmp_path / "reference.log", "w")  # noqa: SIM115 (closed below)
    reference = subprocess.Popen(
        recipe_command(tmp_path / "ref", tmp_path / "ref-out"), env=env, stderr=reference_log
    )
    victim_dir = tmp_path / "victim"
    victim = subprocess.Popen(
        recipe_command(victim_dir, tmp_path / "out", "--step-sleep", "0.03"), env=env
    )
    deadline = time.monotonic() + 240
    while not [s for s in checkpoint_steps(victim_dir) if s >= 60]:  # inside stage 2, epoch 1
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert not (tmp_path / "out.process0.json").exists()

    latest = checkpoint_steps(victim_dir)[-1]
    state = json.loads(
        (victim_dir / "checkpoints" / f"step-{latest:08d}" / "trainer_state.json").read_text()
    )["state"]
    assert state["stage_index"] == 1 and state["batch_in_epoch"] > 0  # mid-epoch, stage 2

    resumed = subprocess.run(
        recipe_command(victim_dir, tmp_path / "out", "--resume"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference.wait(timeout=240)
    reference_log.close()
    assert reference.returncode == 0, (tmp_path / "reference.log").read_text()[-3000:]

    expected = load_file(str(tmp_path / "ref-out.process0.safetensors"))
    actual = load_file(str(tmp_path / "out.process0.safetensors"))
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    summary = json.loads((tmp_path / "out.process0.json").read_text())
    assert summary["global_step"] == 188
    assert f"resumed from {victim_dir / 'checkpoints'}" in (victim_dir / "train.log").read_text()
    ref_rows = (tmp_path / "ref" / "logs" / "metrics.csv").read_text().splitlines()
    rows = (victim_dir / "logs" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:4] for r in rows] == [r.split(",")[:4] for r in ref_rows]

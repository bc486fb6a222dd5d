"""Trainer behaviour: schedules, stages, alternation, accumulation, clipping, evaluation, early
stopping, callbacks and the files of a run directory. Real data: scikit-learn's digits."""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from towerkit.core.callbacks import ProgressBar
from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.schedules import build_scheduler, lr_factor
from towerkit.core.trainer import Callback, StageConfig, Trainer, TrainerConfig, TrainResult


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # bit-level comparisons need one reduction order; also far faster on a busy 2-core box
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> TensorDataset:
    data = load_digits()
    x = torch.tensor(data.data[:256], dtype=torch.float32) / 16.0
    return TensorDataset(x, torch.tensor(data.target[:256]))


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(64, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def xent(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def quiet(**overrides: Any) -> TrainerConfig:
    base: dict[str, Any] = {"progress": False, "tensorboard": False, "batch_size": 32}
    return TrainerConfig(**{**base, **overrides})


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class Recorder(Callback):
    """Records every hook call, and the parameters and requires_grad flags after each step."""

    def __init__(self, tag: str = "", log: list[tuple[str, str]] | None = None) -> None:
        self.tag, self.log = tag, log if log is not None else []
        self.steps: list[dict[str, Any]] = []
        self.evals: list[tuple[int, dict[str, float]]] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.log.append((self.tag, "begin"))

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.log.append((self.tag, "step"))
        flags = {n: p.requires_grad for n, p in trainer.model.named_parameters()}
        record = {"stage": trainer.state.stage_index, "logs": dict(logs), "grad": flags}
        self.steps.append({**record, "params": snapshot(trainer.model)})

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.log.append((self.tag, "evaluate"))
        self.evals.append((trainer.state.global_step, dict(metrics)))

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.log.append((self.tag, "epoch_end"))

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.log.append((self.tag, "end"))


def scripted_eval(values: list[float], seen: list[dict[str, torch.Tensor]] | None = None) -> Any:
    """An eval_fn returning the given accuracies in turn (and keeping the weights it saw)."""
    calls = iter(values)

    def eval_fn(model: nn.Module) -> dict[str, float]:
        if seen is not None:
            seen.append(snapshot(model))
        return {"accuracy": next(calls)}

    return eval_fn


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {n for n in before if not torch.equal(before[n], after[n])}


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


# --- evaluation, early stopping, callbacks --------------------------------------------------


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best(
    tmp_path: Path, digits: TensorDataset
) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    eval_fn = scripted_eval([0.2, 0.6, 0.5, 0.4, 0.9, 0.9], seen)
    config = quiet(
        stages=[StageConfig(epochs=10)],
        early_stopping_metric="accuracy",
        early_stopping_patience=2,
    )
    model = TwoPart()
    result = Trainer(model, config, digits, xent, tmp_path, eval_fn=eval_fn).fit()
    assert result.stopped_early and result.epochs_completed == 4 and len(seen) == 4
    assert (result.best_metric, result.best_step) == (0.6, 16)  # epoch 2 of 8 steps each
    assert result.final_metrics == {"accuracy": 0.6}
    for name, param in model.named_parameters():  # the weights evaluated at epoch 2
        assert torch.equal(param, seen[1][name])
    assert changed(seen[1], seen[3])
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert "step-00000016" in kept


def test_eval_every_steps_cadence(tmp_path: Path, digits: TensorDataset) -> None:
    recorder = Recorder()
    config = quiet(stages=[StageConfig(epochs=3)], eval_every_steps=5)  # 24 steps in all
    eval_fn = scripted_eval([0.1 * k for k in range(10)])
    Trainer(TwoPart(), config, digits, xent, tmp_path, eval_fn=eval_fn, callbacks=[recorder]).fit()
    # every 5 steps, plus once at the end so the final metrics belong to the final weights
    assert [step for step, _ in recorder.evals] == [5, 10, 15, 20, 24]

    recorder = Recorder()
    per_epoch = quiet(stages=[StageConfig(epochs=3)])
    eval_fn = scripted_eval([0.1 * k for k in range(10)])
    Trainer(
        TwoPart(), per_epoch, digits, xent, tmp_path / "b", eval_fn=eval_fn, callbacks=[recorder]
    ).fit()
    assert [step for step, _ in recorder.evals] == [8, 16, 24]


def test_early_stopping_metric_missing_from_eval_results(
    tmp_path: Path, digits: TensorDataset
) -> None:
    config = quiet(early_stopping_metric="f1")
    trainer = Trainer(TwoPart(), config, digits, xent, tmp_path, eval_fn=scripted_eval([0.5]))
    with pytest.raises(TowerkitError, match=r"early_stopping_metric 'f1'.*\['accuracy'\]"):
        trainer.fit()


def test_callbacks_are_called_in_order(tmp_path: Path, digits: TensorDataset) -> None:
    log: list[tuple[str, str]] = []
    first, second = Recorder("a", log), Recorder("b", log)
    config = quiet(stages=[StageConfig(epochs=2)], batch_size=128)  # 2 steps per epoch
    eval_fn = scripted_eval([0.1, 0.2])
    Trainer(
        TwoPart(), config, digits, xent, tmp_path, eval_fn=eval_fn, callbacks=[first, second]
    ).fit()
    epoch = ["step", "step", "evaluate", "epoch_end"]
    hooks = ["begin", *epoch, *epoch, "end"]
    assert log == [(tag, hook) for hook in hooks for tag in ("a", "b")]


# --- run directory ----------------------------------------------------------------------------


def test_csv_tensorboard_log_and_plot(tmp_path: Path, digits: TensorDataset) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = quiet(
        stages=[StageConfig(name="fit", epochs=2)],
        batch_size=64,  # 4 steps per epoch
        log_every_steps=2,
        tensorboard=True,
    )
    eval_fn = scripted_eval([0.25, 0.5])
    Trainer(TwoPart(), config, digits, xent, tmp_path, eval_fn=eval_fn).fit()

    with open(tmp_path / "logs" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["step"], bool(r["loss"]), r["eval_accuracy"]) for r in rows] == [
        ("2", True, ""),
        ("4", True, ""),
        ("4", False, "0.25"),
        ("6", True, ""),
        ("8", True, ""),
        ("8", False, "0.5"),
    ]
    assert {r["stage"] for r in rows} == {"fit"}
    assert [r["epoch"] for r in rows[:3]] == ["0.5", "1", "1"]
    assert all(float(r["lr"]) > 0 for r in rows if r["loss"])

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]
    assert [e.value for e in events.Scalars("eval/accuracy")] == [0.25, 0.5]

    log_text = (tmp_path / "train.log").read_text()
    assert "step 4 epoch 1.00 stage fit | eval_accuracy=0.25" in log_text
    assert "checkpoint step-00000008" in log_text
    png = (tmp_path / "plots" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_retention_keeps_the_last_n_and_the_best(tmp_path: Path, digits: TensorDataset) -> None:
    config = quiet(
        stages=[StageConfig(epochs=2, max_steps=10)],
        eval_every_steps=1,
        checkpoint_every_steps=1,
        keep_last=2,
        early_stopping_metric="accuracy",
        early_stopping_patience=100,
        restore_best=False,
    )
    eval_fn = scripted_eval([0.1, 0.2, 0.9, 0.3, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8])
    Trainer(TwoPart(), config, digits, xent, tmp_path, eval_fn=eval_fn).fit()
    directory = tmp_path / "checkpoints"
    kept = sorted(p.name for p in directory.glob("step-*"))
    assert kept == ["step-00000003", "step-00000009", "step-00000010"]
    index = json.loads((directory / "index.json").read_text())
    assert (index["best"], index["latest"]) == ("step-00000003", "step-00000010")
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no leftovers


def test_trainer_config_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "trainer.yaml"
    path.write_text(
        "batch_size: 16\nstages:\n  - name: warm\n    epochs: 2\n    trainable: ['head.*']\n"
        "  - name: all\n    alternate: [['a.*'], ['b.*']]\n    alternate_every: 5\n"
    )
    config = load_config(TrainerConfig, path)
    assert [s.name for s in config.stages] == ["warm", "all"]
    assert config.stages[1].alternate == [["a.*"], ["b.*"]]
    with pytest.raises(ConfigError, match="stage 'x': epochs: expected >= 1, got 0"):
        load_config(TrainerConfig, None, ["stages=[{name: x, epochs: 0}]"])


def test_progress_bar_shows_loss_throughput_and_eta(tmp_path: Path, digits: TensorDataset) -> None:
    buffer = io.StringIO()
    bar = ProgressBar(console=Console(file=buffer, width=160, force_terminal=False))
    config = quiet(stages=[StageConfig(epochs=2)], log_every_steps=4)
    Trainer(TwoPart(), config, digits, xent, tmp_path, callbacks=[bar]).fit()
    text = buffer.getvalue()
    assert "16/16" in text and "train epoch 2/2" in text
    assert re.search(r"loss \d+\.\d{4}", text) and re.search(r"\d+ ex/s", text)
    assert "eta" in text


class Shifted(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Digits with a random shift drawn from torch's global RNG in __getitem__."""

    def __init__(self, data: TensorDataset) -> None:
        self.x, self.y = data.tensors

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index] + 0.1 * torch.randn(64), self.y[index]


def test_worker_processes_do_not_change_what_is_trained(
    tmp_path: Path, digits: TensorDataset
) -> None:
    # each batch's augmentation is seeded from (seed, epoch, its indices): not from which
    # process fetched it, so num_workers is a speed setting only
    models = []
    for workers in (0, 2):
        model = TwoPart()
        config = quiet(stages=[StageConfig(epochs=2)], num_workers=workers)
        Trainer(model, config, Shifted(digits), xent, tmp_path / str(workers)).fit()
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_mlflow_requested_but_not_installed_is_logged_not_fatal(
    tmp_path: Path, digits: TensorDataset
) -> None:
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed: see test_mlflow_logs_params_and_metrics")
    result = Trainer(TwoPart(), quiet(mlflow=True), digits, xent, tmp_path).fit()
    assert result.global_step == 8
    assert "mlflow=True but mlflow is not installed" in (tmp_path / "train.log").read_text()


def test_mlflow_logs_params_and_metrics(
    tmp_path: Path, digits: TensorDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed here")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    config = quiet(mlflow=True, log_every_steps=2)
    Trainer(TwoPart(), config, digits, xent, tmp_path / "run").fit()
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1 and runs["params.batch_size"][0] == "32"
    history = mlflow.MlflowClient().get_metric_history(runs["run_id"][0], "train/loss")
    assert [m.step for m in history] == [2, 4, 6, 8]

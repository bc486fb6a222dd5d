"""Trainer behaviour: evaluation, early stopping, callbacks, the files of a run directory, the
progress bar, data-loader workers and MLflow. Real data: scikit-learn's digits."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch.utils.data import TensorDataset
from trainer_helpers import Recorder, TwoPart, changed, quiet, scripted_eval, snapshot, xent

from towerkit.core.callbacks import ProgressBar
from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.trainer import StageConfig, Trainer, TrainerConfig

pytestmark = pytest.mark.usefixtures("one_thread")


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
    trained = snapshot(models[0])  # equal because both trained alike, not because neither moved
    assert changed(snapshot(TwoPart()), trained) == set(trained)


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

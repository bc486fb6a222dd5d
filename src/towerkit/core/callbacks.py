"""Trainer callbacks: the hook interface and the built-in writers of a run directory.

The built-ins run on the main process only: ``logs/metrics.csv``, ``tensorboard/``, MLflow,
``train.log``, a Rich progress bar and ``plots/loss.png``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from towerkit.core.config import to_dict
from towerkit.core.io import atomic_path
from towerkit.core.plots import plot_history

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from towerkit.core.trainer import Trainer, TrainResult

LOGGER_NAME = "towerkit.trainer"
# columns that describe where a row was logged; every other column is a number to plot
POSITION_KEYS = ("step", "epoch", "stage")
TRAIN_KEYS = ("loss", "lr", "grad_norm", "examples_per_second")


class Callback:
    """Override any of these; each is a no-op by default. Called on every process, in order.

    ``on_step_end`` runs after every optimizer step. Its ``logs`` always hold ``step``,
    ``epoch`` and ``lr``; ``loss``, ``grad_norm`` and ``examples_per_second`` are added on
    logging steps only (every ``log_every_steps``), which keeps device syncs off the hot path.
    ``on_log`` receives every row that goes to ``metrics.csv`` (train rows and eval rows).
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        return None

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        return None

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        return None

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        return None

    def on_epoch_end(self, trainer: Trainer) -> None:
        return None

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        return None


class CallbackList(Callback):
    """Calls each callback in turn."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    def _each(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, trainer: Trainer) -> None:
        self._each("on_train_begin", trainer)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._each("on_step_end", trainer, logs)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        self._each("on_log", trainer, row)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._each("on_evaluate", trainer, metrics)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self._each("on_epoch_end", trainer)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self._each("on_train_end", trainer, result)


def builtin_callbacks(trainer: Trainer) -> list[Callback]:
    """The run directory's writers, on the main process only (train.log first: others log)."""
    if not trainer.is_main_process:
        return []
    run_dir, config = trainer.run_dir, trainer.config
    callbacks: list[Callback] = [
        TextLog(run_dir / "train.log"),
        MetricsCsv(run_dir / "logs" / "metrics.csv"),
    ]
    if config.tensorboard:
        callbacks.append(TensorBoardLog(run_dir / "tensorboard"))
    if config.mlflow:
        callbacks.append(MlflowLog(run_dir.name))
    if config.progress:
        callbacks.append(ProgressBar())
    callbacks.append(LossPlot(run_dir / "plots" / "loss.png"))
    return callbacks


def _stage_name(trainer: Trainer, row: dict[str, float]) -> str:
    index = int(row.get("stage", 0))
    stages = trainer.config.stages
    return stages[index].name if index < len(stages) else str(index)


def _format_value(value: float) -> str:
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) < 1e15
    ):
        return str(int(value))
    return f"{value:.6g}"


class MetricsCsv(Callback):
    """``logs/metrics.csv``: one row per train log and per evaluation; new columns rewrite it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = [*POSITION_KEYS, *TRAIN_KEYS]
        self.rows: list[dict[str, str]] = []
        self._handle: io.TextIOWrapper | None = None

    def _csv_row(self, trainer: Trainer, row: dict[str, float]) -> dict[str, str]:
        out = {k: _format_value(v) for k, v in row.items()}
        out["stage"] = _stage_name(trainer, row)
        return out

    def on_train_begin(self, trainer: Trainer) -> None:
        # a resume replays the checkpoint's history: rows logged after it are redone
        self.rows = [self._csv_row(trainer, r) for r in trainer.state.history]
        for row in self.rows:
            self.columns += [k for k in row if k not in self.columns]
        self._rewrite()

    def _rewrite(self) -> None:
        if self._handle is not None:
            self._handle.close()
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        self._handle = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for appends)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        csv_row = self._csv_row(trainer, row)
        self.rows.append(csv_row)
        new = [k for k in csv_row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        assert self._handle is not None
        csv.DictWriter(self._handle, fieldnames=self.columns).writerow(csv_row)
        self._handle.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _tag(key: str) -> str:
    return f"eval/{key[len('eval_') :]}" if key.startswith("eval_") else f"train/{key}"


class TensorBoardLog(Callback):
    """Event files under ``tensorboard/`` (torch.utils.tensorboard)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.writer: SummaryWriter | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after the checkpoint it resumes from
        purge = trainer.state.global_step + 1 if trainer.state.global_step else None
        self.writer = SummaryWriter(str(self.directory), purge_step=purge)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        assert self.writer is not None
        step = int(row["step"])
        for key, value in row.items():
            if key not in POSITION_KEYS:
                self.writer.add_scalar(_tag(key), value, step)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowLog(Callback):
    """Parameters and metrics to the active MLflow tracking URI; a warning when not installed."""

    def __init__(self, run_name: str) -> None:
        self.run_name = run_name
        self.mlflow: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        try:
            import mlflow
        except ImportError:
            logging.getLogger(LOGGER_NAME).warning(
                "mlflow=True but mlflow is not installed (pip install 'towerkit[mlflow]')"
            )
            return
        self.mlflow = mlflow
        mlflow.start_run(run_name=self.run_name)
        params = _flatten(to_dict(trainer.config))
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.mlflow is not None:
            metrics = {_tag(k): v for k, v in row.items() if k not in POSITION_KEYS}
            self.mlflow.log_metrics(metrics, step=int(row["step"]))

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self.mlflow is not None:
            self.mlflow.end_run()
            self.mlflow = None


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                flat.update(_flatten(item, f"{prefix}{key}.{i}."))
        else:
            flat[prefix + key] = value
    return flat


class TextLog(Callback):
    """``train.log``: every log row and the trainer's events (resume, checkpoints, stop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logger = logging.getLogger(LOGGER_NAME)
        self.handler: logging.FileHandler | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path, mode="a", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        acc = trainer.accelerator
        self.logger.info(
            "training %d stage(s), %d optimizer steps, %d process(es) on %s, mixed precision %s",
            len(trainer.config.stages),
            trainer.total_steps,
            acc.num_processes,
            acc.device,
            acc.mixed_precision,
        )
        if trainer.resumed_from is not None:
            self.logger.info(
                "resumed from %s at step %d", trainer.resumed_from, trainer.state.global_step
            )

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        where = (
            f"step {int(row['step'])} epoch {row['epoch']:.2f} stage {_stage_name(trainer, row)}"
        )
        values = " ".join(
            f"{k}={_format_value(v)}" for k, v in row.items() if k not in POSITION_KEYS
        )
        self.logger.info("%s | %s", where, values)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.logger.info(
            "done: step %d, %d epochs, %.1f s, %.0f examples/s, final metrics %s",
            result.global_step,
            result.epochs_completed,
            result.train_seconds,
            result.examples_per_second,
            result.final_metrics,
        )
        self.close()

    def close(self) -> None:
        if self.handler is not None:
            self.handler.close()
            self.logger.removeHandler(self.handler)
            self.handler = None


class ProgressBar(Callback):
    """A Rich bar over all optimizer steps with the latest loss, examples/s and the ETA."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self.task: TaskID | None = None
        self.started = False

    def _description(self, trainer: Trainer) -> str:
        state = trainer.state
        stages = trainer.config.stages
        if state.stage_index >= len(stages):
            return "done"
        stage = stages[state.stage_index]
        return f"{stage.name} epoch {state.epoch + 1}/{stage.epochs}"

    def on_train_begin(self, trainer: Trainer) -> None:
        self.progress.start()
        self.started = True
        self.task = self.progress.add_task(
            self._description(trainer),
            total=trainer.total_steps,
            completed=trainer.state.global_step,
            loss="-",
            speed="-",
        )

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        assert self.task is not None
        fields: dict[str, Any] = {}
        if "loss" in logs:
            fields = {"loss": f"{logs['loss']:.4f}", "speed": f"{logs['examples_per_second']:.0f}"}
        self.progress.update(
            self.task, completed=int(logs["step"]), description=self._description(trainer), **fields
        )

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


class LossPlot(Callback):
    """``plots/loss.png``: train loss and every eval metric against the step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        plot_history(result.history, self.path, _stage_starts(result.history))


def _stage_starts(history: Sequence[dict[str, float]]) -> list[float]:
    starts, last = [], None
    for row in history:
        if last is not None and row.get("stage") != last:
            starts.append(row["step"])
        last = row.get("stage")
    return starts

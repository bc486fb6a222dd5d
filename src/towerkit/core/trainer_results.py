"""What the Trainer reports: evaluation metrics (``eval_fn`` on the main process, shared with the
others) and the ``TrainResult`` of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import nn

from towerkit.core.checkpoint import TrainingState
from towerkit.core.errors import TowerkitError


@dataclass
class TrainResult:
    global_step: int
    epochs_completed: int
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    history: list[dict[str, float]]
    train_seconds: float
    examples_per_second: float
    final_metrics: dict[str, float]


def train_result(st: TrainingState, seconds: float, final_metrics: dict[str, float]) -> TrainResult:
    return TrainResult(
        global_step=st.global_step,
        epochs_completed=st.epochs_completed,
        best_metric=st.best_metric,
        best_step=st.best_step,
        stopped_early=st.stopped_early,
        history=list(st.history),
        train_seconds=seconds,
        examples_per_second=st.examples_seen / max(seconds, 1e-9),
        final_metrics=final_metrics,
    )


def as_metrics(out: Any) -> dict[str, float]:
    if not isinstance(out, dict):
        raise TowerkitError(f"eval_fn: expected a dict of metric name -> number, got {type(out)}")
    metrics = {}
    for key, value in out.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TowerkitError(f"eval_fn: metric {key!r} is not a number ({value!r})") from None
    return metrics


def evaluate_on_main(
    eval_fn: Callable[[nn.Module], dict[str, float]],
    accelerator: Accelerator,
    prepared: nn.Module,
) -> dict[str, float]:
    """``eval_fn`` on the plain model in eval mode under no_grad, on the main process only; every
    process gets its metrics."""
    metrics: dict[str, float] = {}
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(prepared)
        model.eval()
        try:
            with torch.no_grad():
                metrics = as_metrics(eval_fn(model))
        finally:
            model.train()
    if accelerator.num_processes > 1:
        box = [metrics]
        broadcast_object_list(box, from_process=0)
        metrics = box[0]
    return metrics

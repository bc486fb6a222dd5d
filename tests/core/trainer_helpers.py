"""What the Trainer tests share: a two-part model on digits, its loss, a quiet config, a
recording callback and scripted evaluations (a module with its own name: ``conftest`` is ambiguous
between test folders)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from towerkit.core.trainer import Callback, Trainer, TrainerConfig, TrainResult


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

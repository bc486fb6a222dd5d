"""Refit (recipe ``refit: true``): the model that is tested is trained on train + validation.

Early stopping on the validation split chooses how long retrieval trains (the Trainer's best
step) and, with ``like_selection``, how long the like path trains (its own best step). The
validation period is also the most recent data before the test, and in a time split the users
and items of the test period resemble it most; a model that never trains on it is a month out
of date. So the refit builds a fresh model (same seed, same stages and schedules) on train +
validation (vocabularies, statistics and the SVD table refitted on it too) and stops at the
same point of the schedule: each chosen step scaled by the ratio of steps per epoch, since the
refit's epochs are longer. Nothing is evaluated during the refit: no held-out data is left
before the test. ``StopAtSteps`` keeps each path's weights of its own step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from towerkit.core.callbacks import LOGGER_NAME, Callback
from towerkit.core.errors import TowerkitError
from towerkit.core.schedules import TrainerConfig
from towerkit.rec.twotower.model import TwoTowerModel

if TYPE_CHECKING:
    from towerkit.core.trainer import Trainer, TrainResult

log = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class ChosenSteps:
    """What the selection run chose, in its own optimizer steps."""

    retrieval: int  # the Trainer's best step (its early-stopping metric)
    like: int | None  # the like path's own best step (like_selection), None: same as retrieval
    steps_per_epoch: int  # of the selection run

    def __post_init__(self) -> None:
        if self.retrieval < 1 or (self.like is not None and self.like < 1):
            raise TowerkitError(
                f"refit: the selection run chose step {self.retrieval} (like path: {self.like}); "
                "expected a step >= 1: did it evaluate at all?"
            )

    def scaled(self, steps_per_epoch: int) -> tuple[int, int | None]:
        """The same points of the schedule in a run with ``steps_per_epoch`` steps an epoch."""
        ratio = steps_per_epoch / self.steps_per_epoch
        like = None if self.like is None else max(1, round(self.like * ratio))
        return max(1, round(self.retrieval * ratio)), like


class StopAtSteps(Callback):
    """Stops the refit at the later of the two chosen steps; the retrieval parameters of the
    retrieval step and the like path's of the like step are restored at the end."""

    def __init__(self, model: TwoTowerModel, chosen: ChosenSteps) -> None:
        self.model, self.chosen = model, chosen
        like = set(model.like_path_names()) if chosen.like is not None else set()
        self.groups = {
            "retrieval": [k for k in model.state_dict() if k not in like],
            "like": sorted(like),
        }
        self.steps: dict[str, int] = {}
        self.saved: dict[str, dict[str, Tensor]] = {}

    def on_train_begin(self, trainer: Trainer) -> None:
        retrieval, like = self.chosen.scaled(trainer.steps_per_epoch)
        self.steps = {"retrieval": retrieval} | ({"like": like} if like is not None else {})
        if max(self.steps.values()) > trainer.total_steps:
            raise TowerkitError(
                f"refit: step {max(self.steps.values())} is past the schedule's "
                f"{trainer.total_steps} steps"
            )
        self.saved = {}

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        step = trainer.state.global_step
        state = self.model.state_dict()
        for group, at in self.steps.items():
            if step == at:
                self.saved[group] = {k: state[k].detach().clone() for k in self.groups[group]}
        if step >= max(self.steps.values()):
            trainer.request_stop()

    @torch.no_grad()
    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        state = self.model.state_dict()
        for tensors in self.saved.values():
            for name, tensor in tensors.items():
                state[name].copy_(tensor)
        log.info("refit: weights of steps %s", self.steps)


def refit_trainer_config(config: TrainerConfig) -> TrainerConfig:
    """The selection run's trainer config without evaluation, early stopping or best-weight
    restoring (there is nothing to evaluate on)."""
    return replace(config, early_stopping_metric=None, restore_best=False, eval_every_steps=None)


def refit_dir(run_dir: Path) -> Path:
    """Where the refit's Trainer writes (its logs and checkpoints)."""
    return run_dir / "refit"

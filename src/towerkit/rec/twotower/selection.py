"""Model selection of the like-vs-pass path apart from retrieval's (recipe ``like_selection``).

On MovieLens the like logit is best on validation AUC after the first epoch and then overfits
the training period, while retrieval (validation recall@50, the trainer's early-stopping
metric) keeps improving for several epochs. ``LikePathSelection`` is a Trainer callback: after
every evaluation it keeps a copy of the parameters that feed only the like logit
(``TwoTowerModel.like_path_names``: the bias / like heads, or with ``model.like_towers`` the
like path's own towers, the logit's scale and bias and its history attention) when the
selection metric improved; when training has finished (after the Trainer restored the best
weights of its own metric) it loads that copy back. With ``like_towers`` the two paths share
no parameter, so the result is exactly the like path of its best evaluation next to the
retrieval path of its own.

The copy is also written to ``<run_dir>/like_selection.safetensors`` (its step and value in the
file's metadata), so a resumed run goes on from it; a copy from after the resumed checkpoint's
step is dropped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from towerkit.core.callbacks import LOGGER_NAME, Callback
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.io import atomic_path
from towerkit.core.schedules import resolve_stage_params
from towerkit.rec.twotower.config import TwoTowerRecipe
from towerkit.rec.twotower.model import TwoTowerModel

if TYPE_CHECKING:
    from towerkit.core.trainer import Trainer, TrainResult

log = logging.getLogger(LOGGER_NAME)
SNAPSHOT_FILE = "like_selection.safetensors"


class LikePathSelection(Callback):
    """Keeps the like path's weights of the best ``metric`` evaluation (module docstring)."""

    def __init__(
        self,
        model: TwoTowerModel,
        metric: str,
        mode: Literal["max", "min"] = "max",
        run_dir: Path | None = None,
    ) -> None:
        self.model, self.metric, self.mode = model, metric, mode
        self.names = model.like_path_names()
        self.path = run_dir / SNAPSHOT_FILE if run_dir is not None else None
        self.best: float | None = None
        self.best_step: int | None = None
        self.saved: dict[str, Tensor] = {}

    def on_train_begin(self, trainer: Trainer) -> None:
        self.best, self.best_step, self.saved = None, None, {}
        if trainer.resumed_from is None or self.path is None or not self.path.is_file():
            return
        with safe_open(str(self.path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("metric") != self.metric:
            return
        if int(meta["step"]) <= trainer.state.global_step:  # not from a discarded future
            self.best, self.best_step = float(meta["value"]), int(meta["step"])
            self.saved = load_file(self.path)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise TowerkitError(
                f"like_selection.metric {self.metric!r}: eval_fn returned only {sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        better = self.best is None or (
            value > self.best if self.mode == "max" else value < self.best
        )
        if math.isnan(value) or not better:
            return
        self.best, self.best_step = value, trainer.state.global_step
        state = self.model.state_dict()
        self.saved = {name: state[name].detach().clone() for name in self.names}
        if self.path is not None and trainer.is_main_process:
            meta = {"metric": self.metric, "value": repr(value), "step": str(self.best_step)}
            with atomic_path(self.path) as tmp:
                save_file({k: v.contiguous() for k, v in self.saved.items()}, str(tmp), meta)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        finished = trainer.state.stage_index >= len(trainer.config.stages)
        if finished and self.saved:
            self.restore()
            log.info(
                "like path: weights of step %s (%s %s)", self.best_step, self.metric, self.best
            )

    @torch.no_grad()
    def restore(self) -> None:
        """Load the kept like-path tensors into the model (nothing else changes)."""
        state = self.model.state_dict()
        for name, tensor in self.saved.items():
            state[name].copy_(tensor)


def like_selection_callbacks(
    recipe: TwoTowerRecipe, model: TwoTowerModel, run_dir: Path | None
) -> list[Callback]:
    """The recipe's callbacks for ``recipe.like_selection`` (none when no metric is set), after
    checking its stages (``check_like_stages``)."""
    check_like_stages(recipe, model)
    config = recipe.like_selection
    if config.metric is None:
        return []
    return [LikePathSelection(model, config.metric, config.mode, run_dir)]


def check_like_stages(recipe: TwoTowerRecipe, model: TwoTowerModel) -> None:
    """A stage that trains only the like path (its own learning rate and epochs) leaves the
    retrieval metric where it was, so the trainer's early stopping counts each of its
    evaluations as one without improvement: with fewer patience than epochs it would be cut
    short. Refused rather than silently shortened (evaluating once per epoch)."""
    trainer = recipe.trainer
    if trainer.early_stopping_metric is None or trainer.eval_every_steps is not None:
        return
    like = set(model.like_path_names())
    names = [name for name, _ in model.named_parameters()]
    for stage in trainer.stages:
        trainable = set(resolve_stage_params(stage, names).trainable)
        if trainable <= like and stage.epochs > trainer.early_stopping_patience:
            raise ConfigError(
                f"stage {stage.name!r} trains only the like path for {stage.epochs} epochs, "
                f"but early_stopping_patience is {trainer.early_stopping_patience}: retrieval "
                "does not move in it, so early stopping would end it early; raise the patience "
                "to at least its epochs"
            )

"""The Trainer's checkpoints: saving a run's position and resuming it bit for bit.

``CheckpointingMixin`` holds the methods; ``Trainer`` inherits it and owns the state they use.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from towerkit.core.callbacks import LOGGER_NAME
from towerkit.core.checkpoint import (
    CheckpointManager,
    TrainingState,
    indices_fingerprint,
    load_state,
    load_weights,
    read_run_payload,
    restore_process_file,
    write_process_file,
    write_run_files,
)
from towerkit.core.config import to_dict
from towerkit.core.errors import TowerkitError
from towerkit.core.schedules import StageParams, TrainerConfig

log = logging.getLogger(LOGGER_NAME)


def first_batch(loader: Any) -> list[int] | None:
    """The sample indices of the loader's first batch, listed without loading any data."""
    first: list[int] | None = next(iter(loader.batch_sampler), None)
    return first


class CheckpointingMixin:
    """``_save_checkpoint`` / ``_load_checkpoint`` and the data-position check after a resume."""

    # set by Trainer
    model: nn.Module
    config: TrainerConfig
    accelerator: Accelerator
    checkpoints: CheckpointManager
    state: TrainingState
    _stage_params: list[StageParams]
    _prepared: nn.Module
    _optimizer: AcceleratedOptimizer | None
    _scheduler: LambdaLR | None
    _ready_stage: int | None
    _saved_at: int | None
    _expected_batch: str | bool | None
    _seconds_before: float
    _fit_started: float
    _window_loss: torch.Tensor
    _start_stage: Callable[[], None]
    _loader: Callable[[int, int, int], Any]

    def _next_batch_indices(self) -> list[int] | None:
        st = self.state
        if st.stage_index >= len(self.config.stages):
            return None
        return first_batch(self._loader(st.stage_index, st.epoch, st.batch_in_epoch))

    def _save_checkpoint(self) -> None:
        st = self.state
        if self._saved_at == st.global_step:
            return
        st.train_seconds = self._seconds_before + time.perf_counter() - self._fit_started
        st.window_loss_sum = float(self._window_loss)
        name = self.config.early_stopping_metric
        metric = st.last_metrics.get(name) if name and st.last_eval_step == st.global_step else None
        # a finished stage's optimizer is never needed again: the next stage builds its own
        live = self._ready_stage == st.stage_index
        payload = {
            "state": dataclasses.asdict(st),
            "world_size": self.accelerator.num_processes,
            "optimizer_stage": st.stage_index if live else None,
            "optimizer_params": self._stage_params[st.stage_index].trainable if live else None,
            "config": to_dict(self.config),
        }
        path = self.checkpoints.save(
            st.global_step,
            lambda d: write_run_files(
                d,
                self.accelerator.unwrap_model(self._prepared),
                payload,
                optimizer=self._optimizer if live else None,
                scheduler=self._scheduler if live else None,
                scaler=self.accelerator.scaler,
            ),
            lambda d: write_process_file(
                d, self.accelerator.process_index, self._next_batch_indices()
            ),
            metric,
        )
        self._saved_at = st.global_step
        log.info("checkpoint %s", path.name)

    def _load_checkpoint(self, path: Path) -> None:
        payload = read_run_payload(path)
        if payload["world_size"] != self.accelerator.num_processes:
            raise TowerkitError(
                f"resume: {path} was written by {payload['world_size']} processes, "
                f"this run has {self.accelerator.num_processes}"
            )
        load_weights(self.model, path, self.accelerator.device)
        st = self.state = payload["state"]
        self._window_loss.fill_(st.window_loss_sum)
        self._seconds_before, self._saved_at = st.train_seconds, st.global_step
        if st.stage_index < len(self.config.stages):
            self._start_stage()
            if payload["optimizer_stage"] == st.stage_index:
                self._load_optimizer(path, payload["optimizer_params"])
        if self.accelerator.scaler is not None and (path / "scaler.json").is_file():
            self.accelerator.scaler.load_state_dict(load_state(path, "scaler"))
        self.checkpoints.discard_after(st.global_step)
        # last: nothing after this may draw random numbers before the next batch
        self._expected_batch = restore_process_file(path, self.accelerator.process_index)

    def _load_optimizer(self, path: Path, saved_params: list[str]) -> None:
        if saved_params != self._stage_params[self.state.stage_index].trainable:
            raise TowerkitError(
                f"resume: {path} trained other parameters in this stage: the model or the "
                "stage's trainable patterns changed"
            )
        assert self._optimizer is not None and self._scheduler is not None
        self._optimizer.load_state_dict(load_state(path, "optimizer"))
        self._scheduler.load_state_dict(load_state(path, "scheduler"))

    def _check_data_position(self, loader: Any) -> None:
        if self._expected_batch is False:
            return
        expected, self._expected_batch = self._expected_batch, False
        actual = indices_fingerprint(first_batch(loader))
        if actual != expected:
            raise TowerkitError(
                "resume: the data position does not match the checkpoint (the next batch's "
                "sample indices differ): did the dataset, batch_size, seed or process count change?"
            )

    def _restore_best(self) -> None:
        """The best checkpoint's weights back into the model, unless the last step was the best."""
        st = self.state
        if st.best_step is not None and st.best_step != st.global_step:
            best = self.checkpoints.path_for(st.best_step)
            raw = self.accelerator.unwrap_model(self._prepared)
            load_weights(raw, best, self.accelerator.device)
            log.info("restored the best weights (step %d, %s)", st.best_step, st.best_metric)

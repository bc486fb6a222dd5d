"""The shared Trainer, on Hugging Face Accelerate: one CPU, one GPU or ``accelerate launch``.

Stages (each with its trainable parameters, optimizer, schedule and epochs, optionally
alternating groups), mixed precision, gradient accumulation and clipping, evaluation with early
stopping, callbacks, logs under the run directory, and checkpoints that resume bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.utils import DistributedType, find_batch_size, set_seed
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, IterableDataset

from towerkit.core.callbacks import LOGGER_NAME, Callback, CallbackList, builtin_callbacks
from towerkit.core.checkpoint import CheckpointManager, TrainingState
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.schedules import (
    EarlyStopping,
    EpochSampler,
    SeededBatches,
    StageConfig,
    TrainerConfig,
    build_optimizer,
    build_scheduler,
    epoch_seed,
    make_accelerator,
    resolve_stage_params,
)
from towerkit.core.trainer_checkpoints import CheckpointingMixin
from towerkit.core.trainer_results import TrainResult, evaluate_on_main, train_result

__all__ = ["Callback", "StageConfig", "TrainResult", "Trainer", "TrainerConfig", "TrainingState"]

log = logging.getLogger(LOGGER_NAME)


def _forget_prepared(accelerator: Accelerator) -> None:
    """Accelerator.free_memory() without its gc.collect(), which takes ~0.3 s in a big process:
    a new stage's optimizer must be the only one Accelerate unscales and clips."""
    for registry in ("_models", "_optimizers", "_schedulers", "_dataloaders"):
        getattr(accelerator, registry).clear()
    accelerator.step = 0


def _count_examples(batch: Any, default: int) -> int:
    try:
        return int(find_batch_size(batch))
    except (TypeError, ValueError, AttributeError):  # a batch without tensors
        return default


class Trainer(CheckpointingMixin):
    """Trains ``model`` by ``loss_fn(prepared_model, batch) -> scalar``.

    ``loss_fn`` receives the prepared model (DDP-wrapped under several processes): call it
    rather than reaching into its attributes; ``trainer.model`` is always the plain module.
    ``eval_fn(model) -> {name: value}`` gets the plain model in eval mode under no_grad and runs
    on the main process; its metrics are broadcast to the others.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainerConfig,
        train_dataset: Dataset[Any],
        loss_fn: Callable[[nn.Module, Any], torch.Tensor],
        run_dir: str | Path,
        eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        if isinstance(train_dataset, IterableDataset) or not hasattr(train_dataset, "__len__"):
            raise TowerkitError(
                "train_dataset: expected a map-style Dataset (__len__, __getitem__)"
            )
        if len(train_dataset) == 0:
            raise TowerkitError("train_dataset: is empty")
        if config.early_stopping_metric is not None and eval_fn is None:
            raise ConfigError("trainer: early_stopping_metric needs an eval_fn")
        self.model = model
        self.config = config
        self.train_dataset = train_dataset
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.collate_fn = collate_fn
        self.run_dir = Path(run_dir)
        self.user_callbacks = list(callbacks)
        self._early_stopping = EarlyStopping(
            config.early_stopping_metric, config.early_stopping_mode, config.early_stopping_patience
        )
        self.accelerator = make_accelerator(config)
        self.is_main_process = self.accelerator.is_main_process
        self.checkpoints = CheckpointManager(
            self.run_dir / "checkpoints",
            config.keep_last,
            config.early_stopping_mode,
            self.is_main_process,
            self.accelerator.wait_for_everyone,
        )
        names = [n for n, _ in model.named_parameters()]
        self._stage_params = [resolve_stage_params(s, names) for s in config.stages]
        self._batches_per_epoch = len(self._loader(0, 0, 0))
        self.total_steps = sum(self._stage_total_steps(s) for s in config.stages)
        self._reset_run()

    # --- public -------------------------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the training data."""
        return math.ceil(self._batches_per_epoch / self.config.grad_accum_steps)

    def request_stop(self) -> None:
        """Stop after the current step and write a checkpoint; ``fit(resume=True)`` goes on."""
        self._stop_requested = True

    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train every stage. ``resume=True``: from the latest checkpoint in run_dir/checkpoints
        (a fresh start when there is none); a path: from that checkpoint."""
        self._reset_run()
        checkpoint = self.resumed_from = self.checkpoints.resolve(resume)
        self.checkpoints.remove_leftovers()
        saved_flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        was_training = self.model.training
        try:
            self.model.train()
            if checkpoint is not None:
                self._load_checkpoint(checkpoint)
            else:
                set_seed(self.config.seed, device_specific=True)
            self._builtins = builtin_callbacks(self)
            self._callbacks = CallbackList([*self._builtins, *self.user_callbacks])
            self._fit_started = time.perf_counter()
            self._callbacks.on_train_begin(self)
            while self.state.stage_index < len(self.config.stages) and not self._stop_requested:
                if self._ready_stage != self.state.stage_index:
                    self._start_stage()
                self._run_epoch()
            result = self._finish()
            self._callbacks.on_train_end(self, result)
        finally:
            self._release(saved_flags, was_training)
        return result

    # --- stages and data ---------------------------------------------------------------------

    def _reset_run(self) -> None:
        self.state = TrainingState()
        self._prepared: nn.Module = self.model
        self._optimizer: AcceleratedOptimizer | None = None
        self._scheduler: LambdaLR | None = None
        self._ready_stage: int | None = None
        self._inactive: list[list[nn.Parameter]] = []
        self._trainable: list[nn.Parameter] = []
        self._stop_requested = False
        self._stage_ending = False
        self._improved_at: int | None = None
        self._saved_at: int | None = None
        self._expected_batch: str | bool | None = False  # False: nothing to check
        self._seconds_before = 0.0
        self._fit_started = time.perf_counter()
        self._window_loss = torch.zeros((), device=self.accelerator.device)
        self._window_started = time.perf_counter()
        self._grad_norm: torch.Tensor | None = None
        self._callbacks = CallbackList(self.user_callbacks)
        self._builtins = []
        self.resumed_from = None

    def _stage_total_steps(self, stage: StageConfig) -> int:
        total = stage.epochs * self.steps_per_epoch
        return min(total, stage.max_steps) if stage.max_steps is not None else total

    def _start_stage(self) -> None:
        index = self.state.stage_index
        stage, params = self.config.stages[index], self._stage_params[index]
        # drop Accelerate's autocast wrapper and DDP so the new trainable set is wrapped afresh
        raw = self.accelerator.unwrap_model(self._prepared, keep_fp32_wrapper=False)
        _forget_prepared(self.accelerator)
        named = dict(raw.named_parameters())
        chosen = set(params.trainable)
        for name, param in named.items():
            param.requires_grad_(name in chosen)
        optimizer = build_optimizer([(n, named[n]) for n in params.trainable], stage)
        self._prepared, self._optimizer = self.accelerator.prepare(raw, optimizer)
        self._scheduler = build_scheduler(
            self._optimizer.optimizer, stage, self._stage_total_steps(stage)
        )
        self._trainable = [named[n] for n in params.trainable]
        self._inactive = [[named[n] for n in params.trainable if n not in g] for g in params.groups]
        self._ready_stage = index
        log.info("stage %r: %d trainable parameter tensors", stage.name, len(self._trainable))

    def _loader(self, stage_index: int, epoch: int, skip: int) -> Any:
        """This epoch's batches for this process, the first ``skip`` of them left out."""
        seed = epoch_seed(self.config.seed, stage_index, epoch)
        order = EpochSampler(len(self.train_dataset), seed)
        loader = DataLoader(
            SeededBatches(self.train_dataset, seed),
            batch_size=self.config.batch_size,
            sampler=order,
            collate_fn=self.collate_fn,
            num_workers=self.config.num_workers,
            # DataLoader draws its worker base seed from here, not from the global RNG
            generator=torch.Generator().manual_seed(seed),
            pin_memory=self.accelerator.device.type == "cuda",
        )
        prepared = self.accelerator.prepare_data_loader(loader)
        return self.accelerator.skip_first_batches(prepared, skip) if skip else prepared

    # --- the loop ----------------------------------------------------------------------------

    def _run_epoch(self) -> None:
        st = self.state
        loader = self._loader(st.stage_index, st.epoch, st.batch_in_epoch)
        self._check_data_position(loader)
        self.accelerator.step = 0  # accumulation windows start at the epoch's first batch
        for batch in loader:
            self._train_micro_batch(batch)
            if not self.accelerator.sync_gradients:
                continue
            self._after_optimizer_step()
            if self._stage_ending or self._stop_requested:
                loader.end()  # leaving early: unregister it from Accelerate's gradient state
                break
        self._end_epoch(complete=st.batch_in_epoch >= self._batches_per_epoch)

    def _train_micro_batch(self, batch: Any) -> None:
        with self.accelerator.accumulate(self._prepared):
            loss = self.loss_fn(self._prepared, batch)
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                raise TowerkitError(f"loss_fn: expected a scalar tensor, got {type(loss)}")
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients:
                self._prepare_gradients()
                self._step_optimizer()
        st = self.state
        st.batch_in_epoch += 1
        examples = _count_examples(batch, self.config.batch_size) * self.accelerator.num_processes
        st.examples_seen += examples
        st.window_examples += examples
        st.window_batches += 1
        self._window_loss += loss.detach().float()

    def _step_optimizer(self) -> None:
        assert self._optimizer is not None
        if (
            self.accelerator.scaler is None
            and self.accelerator.distributed_type != DistributedType.XLA
        ):
            # what AcceleratedOptimizer.step() does here, minus its two importlib lookups per
            # call (~1 ms a step on a busy machine)
            self._optimizer.optimizer.step()
        else:
            self._optimizer.step()  # fp16: the grad scaler's unscale, inf check and update
        self._optimizer.optimizer.zero_grad(set_to_none=True)

    def _prepare_gradients(self) -> None:
        if self._inactive:  # alternating mode: the inactive group takes no step at all
            stage = self.config.stages[self.state.stage_index]
            group = (self.state.stage_step // stage.alternate_every) % len(self._inactive)
            for param in self._inactive[group]:
                param.grad = None
        if self.config.max_grad_norm is not None:
            self._grad_norm = self.accelerator.clip_grad_norm_(
                self._trainable, self.config.max_grad_norm
            )

    def _after_optimizer_step(self) -> None:
        st, config = self.state, self.config
        assert self._optimizer is not None and self._scheduler is not None
        lr = self._current_lr()
        if not self._optimizer.step_was_skipped:  # fp16 overflow: the schedule waits too
            self._scheduler.step()
        st.global_step += 1
        st.stage_step += 1
        logs = {"step": float(st.global_step), "epoch": self._epoch_progress(), "lr": lr}
        if st.global_step % config.log_every_steps == 0:
            logs.update(self._log_window(lr))
        self._callbacks.on_step_end(self, logs)
        if config.eval_every_steps and st.global_step % config.eval_every_steps == 0:
            self._evaluate()
        max_steps = self.config.stages[st.stage_index].max_steps
        if max_steps is not None and st.stage_step >= max_steps:
            self._stage_ending = True
        # a step that ends the stage or the run saves from _end_epoch, after the position moved
        if not (self._stage_ending or self._stop_requested) and self.config.checkpoint_due(
            self.state.global_step, False, self._improved_at
        ):
            self._save_checkpoint()

    def _end_epoch(self, complete: bool) -> None:
        st = self.state
        if complete:
            st.epochs_completed += 1
            st.epoch += 1
            st.batch_in_epoch = 0
        elif self._stop_requested:
            return  # the position stays mid-epoch; _finish writes the checkpoint
        if self.config.eval_every_steps is None and st.last_eval_step != st.global_step:
            self._evaluate()
        self._callbacks.on_epoch_end(self)
        if st.epoch >= self.config.stages[st.stage_index].epochs or self._stage_ending:
            self._end_stage()
        if self.config.checkpoint_due(st.global_step, True, self._improved_at):
            self._save_checkpoint()

    def _end_stage(self) -> None:
        st = self.state
        if st.window_batches:
            self._log_window(self._current_lr())
        log.info(
            "stage %r done at step %d", self.config.stages[st.stage_index].name, st.global_step
        )
        st.stage_index += 1
        st.epoch = st.batch_in_epoch = st.stage_step = st.evals_without_improvement = 0
        self._stage_ending = False

    def _current_lr(self) -> float:
        return float(self._optimizer.param_groups[0]["lr"]) if self._optimizer else 0.0

    def _epoch_progress(self) -> float:
        return self.state.epoch + self.state.batch_in_epoch / self._batches_per_epoch

    def _row(self, values: dict[str, float]) -> dict[str, float]:
        st = self.state
        row = {"step": st.global_step, "epoch": round(self._epoch_progress(), 4)}
        return {**row, "stage": st.stage_index, **values}

    def _log_window(self, lr: float) -> dict[str, float]:
        """Average the loss since the last log over all processes: the only sync per log."""
        st = self.state
        local = torch.stack([self._window_loss, self._window_loss.new_tensor(st.window_batches)])
        loss_sum, batches = self.accelerator.reduce(local, reduction="sum").tolist()
        now = time.perf_counter()
        values = {
            "loss": loss_sum / max(batches, 1.0),
            "lr": lr,
            "examples_per_second": st.window_examples / max(now - self._window_started, 1e-9),
        }
        if self._grad_norm is not None:
            values["grad_norm"] = float(self._grad_norm)
        self._window_loss.zero_()
        st.window_batches = st.window_examples = 0
        self._window_started = now
        row = self._row(values)
        st.history.append(row)
        self._callbacks.on_log(self, row)
        return values

    # --- evaluation and early stopping ------------------------------------------------------

    def _evaluate(self, final: bool = False) -> None:
        """``final``: the run is over; the result still counts for the best, not for stopping."""
        if self.eval_fn is None:
            return
        st = self.state
        metrics = evaluate_on_main(self.eval_fn, self.accelerator, self._prepared)
        st.last_eval_step, st.last_metrics = st.global_step, metrics
        row = self._row({f"eval_{k}": v for k, v in metrics.items()})
        st.history.append(row)
        self._callbacks.on_log(self, row)
        self._callbacks.on_evaluate(self, metrics)
        verdict = self._early_stopping.update(st, metrics)
        if verdict == "improved":
            self._improved_at = st.global_step
        elif verdict == "stop" and not final:
            st.stopped_early = self._stage_ending = True
            log.info("early stopping at step %d (best %s)", st.global_step, st.best_metric)

    # --- begin and end ---------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        st = self.state
        finished = st.stage_index >= len(self.config.stages)
        if finished and st.last_eval_step != st.global_step:
            self._evaluate(final=True)
        self._save_checkpoint()
        final_metrics = dict(st.last_metrics)
        restore = self.config.restore_best and self.config.early_stopping_metric is not None
        if finished and restore and st.best_step is not None:
            self._restore_best()
            final_metrics = dict(st.best_metrics)
        seconds = self._seconds_before + time.perf_counter() - self._fit_started
        return train_result(st, seconds, final_metrics)

    def _release(self, saved_flags: dict[str, bool], was_training: bool) -> None:
        """Give the caller back their module as it came: forward, requires_grad, mode."""
        self.accelerator.unwrap_model(self._prepared, keep_fp32_wrapper=False)
        _forget_prepared(self.accelerator)
        self._prepared, self._optimizer, self._scheduler = self.model, None, None
        self._ready_stage = None
        for name, param in self.model.named_parameters():
            param.requires_grad_(saved_flags.get(name, True))
        self.model.train(was_training)
        for callback in self._builtins:  # also after an exception: files closed, bar stopped
            close = getattr(callback, "close", None)
            if callable(close):
                close()

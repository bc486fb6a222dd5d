"""The training plan, what happens when: stage and trainer configs, which parameters a stage
trains, optimizers and learning-rate schedules, early stopping, the order of the data in each
epoch, and the Accelerator that runs it.

The schedule is a LambdaLR over a small pure function: transformers has similar helpers, but
not with a floor (``min_lr_ratio``) for every kind, and importing it costs seconds.
"""

from __future__ import annotations

import fnmatch
import math
import random
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import parse_flag_from_env
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Dataset, Sampler

from towerkit.core.checkpoint import TrainingState, capture_rng_state, restore_rng_state
from towerkit.core.errors import ConfigError, TowerkitError

ScheduleKind = Literal["constant", "linear", "cosine"]


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class StageConfig:
    name: str = "train"
    epochs: int = 1
    max_steps: int | None = None  # cap on optimizer steps in this stage
    lr: float = 1e-3
    weight_decay: float = 0.0  # applied to weights with >= 2 dims; biases and norms get none
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = 0.9  # sgd only
    scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    trainable: list[str] = field(default_factory=lambda: ["*"])  # fnmatch on parameter names
    # alternating mode: only the active group (of trainable parameters) is updated; the group
    # changes every alternate_every optimizer steps; trainable parameters in no group stay frozen
    alternate: list[list[str]] = field(default_factory=list)
    alternate_every: int = 100

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}"
        _require(self.epochs >= 1, f"{where}: epochs: expected >= 1, got {self.epochs}")
        _require(
            self.max_steps is None or self.max_steps >= 1,
            f"{where}: max_steps: expected None or >= 1, got {self.max_steps}",
        )
        _require(self.lr > 0, f"{where}: lr: expected > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"{where}: weight_decay: expected >= 0")
        _require(self.warmup_steps >= 0, f"{where}: warmup_steps: expected >= 0")
        _require(0 <= self.min_lr_ratio <= 1, f"{where}: min_lr_ratio: expected 0..1")
        _require(bool(self.trainable), f"{where}: trainable: expected at least one pattern")
        _require(self.alternate_every >= 1, f"{where}: alternate_every: expected >= 1")
        _require(all(self.alternate), f"{where}: alternate: every group needs at least one pattern")


@dataclass
class TrainerConfig:
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    batch_size: int = 64
    eval_batch_size: int | None = None  # for recipes' eval loaders; None: batch_size
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    # auto: bf16 on CUDA GPUs that support it, otherwise no (CPU bf16 autocast is opt-in: it
    # is slower than fp32 on many CPUs); fp16 needs CUDA and uses a grad scaler
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = "no"
    seed: int = 0
    eval_every_steps: int | None = None  # None: evaluate at the end of every epoch
    early_stopping_metric: str | None = None  # a key of eval_fn's dict
    early_stopping_mode: Literal["max", "min"] = "max"
    early_stopping_patience: int = 3  # evaluations without improvement that end a stage
    restore_best: bool = True  # with a metric: load the best weights at the end
    checkpoint_every_steps: int | None = None  # None: at the end of every epoch
    keep_last: int = 2  # plus the best one
    log_every_steps: int = 20
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = True
    mlflow: bool = False  # log to MLflow when installed

    def __post_init__(self) -> None:
        _require(bool(self.stages), "trainer: stages: expected at least one stage")
        for key in ("batch_size", "grad_accum_steps", "early_stopping_patience", "keep_last"):
            _require(getattr(self, key) >= 1, f"trainer: {key}: expected >= 1")
        _require(self.log_every_steps >= 1, "trainer: log_every_steps: expected >= 1")
        for key in ("eval_batch_size", "eval_every_steps", "checkpoint_every_steps"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"trainer: {key}: expected None or >= 1")
        _require(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            "trainer: max_grad_norm: expected None or > 0",
        )
        _require(self.seed >= 0, f"trainer: seed: expected >= 0, got {self.seed}")
        _require(self.num_workers >= 0, "trainer: num_workers: expected >= 0")

    @property
    def resolved_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    def checkpoint_due(self, step: int, epoch_end: bool, improved_at: int | None) -> bool:
        """By the cadence, or because this step's evaluation is the best so far."""
        every = self.checkpoint_every_steps
        by_cadence = (every is None and epoch_end) or (every is not None and step % every == 0)
        return by_cadence or improved_at == step


@dataclass
class StageParams:
    """Parameter names a stage trains, and its alternating groups (empty: none)."""

    trainable: list[str]
    groups: list[set[str]]


def _match(names: Sequence[str], patterns: Sequence[str], where: str) -> list[str]:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ConfigError(
                f"{where}: pattern {pattern!r} matches no parameter (names look like "
                f"{', '.join(names[:3])})"
            )
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def resolve_stage_params(stage: StageConfig, names: Sequence[str]) -> StageParams:
    where = f"stage {stage.name!r}"
    trainable = _match(names, stage.trainable, f"{where}: trainable")
    groups = [
        set(_match(trainable, group, f"{where}: alternate[{i}]"))
        for i, group in enumerate(stage.alternate)
    ]
    if groups:
        trainable = [n for n in trainable if any(n in g for g in groups)]
    return StageParams(trainable, groups)


def resolve_mixed_precision(requested: str, device_type: str) -> str:
    """``auto``: bf16 on CUDA GPUs that support it, otherwise ``no``."""
    bf16_ok = device_type == "cuda" and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return "bf16" if bf16_ok else "no"
    if requested == "fp16" and device_type != "cuda":
        raise ConfigError(f"mixed_precision 'fp16' needs a CUDA device, found {device_type}")
    if requested == "bf16" and device_type == "cuda" and not bf16_ok:
        raise ConfigError("mixed_precision 'bf16': this GPU does not support bf16; use fp16")
    return requested


class EarlyStopping:
    """Counts evaluations without improvement of one metric; the best is kept in the state."""

    def __init__(self, metric: str | None, mode: Literal["max", "min"], patience: int) -> None:
        self.metric, self.mode, self.patience = metric, mode, patience

    def update(self, state: TrainingState, metrics: dict[str, float]) -> str:
        """``"improved"``, ``"stop"`` (patience used up) or ``""``; NaN never improves."""
        if self.metric is None:
            return ""
        if self.metric not in metrics:
            raise TowerkitError(
                f"early_stopping_metric {self.metric!r}: eval_fn returned only {sorted(metrics)}"
            )
        value, best = metrics[self.metric], state.best_metric
        if not math.isnan(value) and (
            best is None or (value > best if self.mode == "max" else value < best)
        ):
            state.best_metric, state.best_step = value, state.global_step
            state.best_metrics = dict(metrics)
            state.evals_without_improvement = 0
            return "improved"
        state.evals_without_improvement += 1
        return "stop" if state.evals_without_improvement >= self.patience else ""


def lr_factor(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    kind: ScheduleKind = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the base LR for optimizer step ``step`` (0-based, the step about to happen).

    Warmup rises linearly from 0 at step 0 to 1 at ``warmup_steps`` (the Hugging Face
    convention); then ``constant`` stays at 1, ``linear`` falls to ``min_lr_ratio`` at
    ``total_steps`` and ``cosine`` follows half a cosine down to ``min_lr_ratio``.
    """
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if kind == "linear":
        shape = 1.0 - progress
    elif kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ConfigError(f"scheduler: expected constant, linear or cosine, got {kind!r}")
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


def build_scheduler(
    optimizer: torch.optim.Optimizer, stage: StageConfig, total_steps: int
) -> LambdaLR:
    # a closure, not a callable object: LambdaLR.state_dict() would copy an object's __dict__
    # (the StageConfig included) into the checkpoint
    def factor(step: int) -> float:
        return lr_factor(step, total_steps, stage.warmup_steps, stage.scheduler, stage.min_lr_ratio)

    return LambdaLR(optimizer, factor)


def build_optimizer(
    named_params: Sequence[tuple[str, nn.Parameter]], stage: StageConfig
) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD over ``named_params``; biases and norm weights (1-d) get no decay."""
    decay = [p for name, p in named_params if p.ndim > 1]
    no_decay = [p for name, p in named_params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": stage.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=stage.lr)
    if stage.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage.lr)
    if stage.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum)
    raise ConfigError(
        f"stage {stage.name!r}: optimizer: expected adamw, adam or sgd, got {stage.optimizer!r}"
    )


def make_accelerator(config: TrainerConfig) -> Accelerator:
    # without a GPU, Accelerate forms a multi-process (gloo) group only when told cpu=True
    device = torch.accelerator.current_accelerator()
    cpu = device is None or parse_flag_from_env("ACCELERATE_USE_CPU")
    device_type = "cpu" if cpu or device is None else device.type
    precision = resolve_mixed_precision(config.mixed_precision, device_type)
    # Accelerate keeps one global state that refuses a second mixed-precision setting; reset
    # it (not the process group) so several Trainers can run one after another in a process.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(
        cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=config.grad_accum_steps
    )


# --- the order of the data -----------------------------------------------------------------------------


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """The seed of one epoch's shuffle: every process computes the same one, no broadcast."""
    return int(np.random.SeedSequence([seed, stage, epoch]).generate_state(1, np.uint64)[0] >> 1)


class EpochSampler(Sampler[int]):
    """One epoch's permutation from its own torch.Generator, never the global RNG.

    Each iteration starts from the same seed, so the order can be listed again (to check a
    resume) without disturbing the run.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


@contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Seed torch (CPU), NumPy and Python RNGs for the block, then put their states back."""
    saved = capture_rng_state(cuda=False)
    # the CPU generator only: torch.manual_seed also queues lazy CUDA/XPU seeding with a stack
    # capture each call (~1 ms), and devices' generators are not forked here anyway
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        restore_rng_state(saved)


class SeededBatches(Dataset[Any]):
    """Fetches each batch's samples under RNGs seeded from the epoch seed and the batch's indices.

    Random augmentation in a Dataset then depends only on (seed, stage, epoch, batch): not on
    Accelerate's one-batch prefetch, the worker processes, or batches skipped on resume. The
    training RNG stream (dropout, the loss) is left exactly as it was, so resumes stay exact.
    (A collate_fn runs outside: keep randomness in the Dataset.)
    """

    def __init__(self, dataset: Dataset[Any], seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """PyTorch's fetcher calls this with a whole batch's indices."""
        key = zlib.crc32(np.asarray(indices, dtype=np.int64).tobytes())
        with seeded_rngs((self.seed ^ key) % 2**63):
            return [self.dataset[i] for i in indices]

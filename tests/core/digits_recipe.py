"""A small real recipe for the subprocess tests: an MLP on scikit-learn's digits.

    python digits_recipe.py RUN_DIR OUT_PREFIX [--resume | --resume-from CHECKPOINT]
                            [--keep-last N] [--step-sleep SECONDS]

Two stages (head only, then everything), dropout, gradient accumulation, checkpoints every 5
optimizer steps, random augmentation from torch's RNG inside the Dataset (the pitfall of
prefetching loaders) and NumPy + Python randomness in the loss, so that every RNG and the data
position a resume restores matter. At the end each process writes OUT_PREFIX.process<N>.safetensors (its final weights)
and OUT_PREFIX.process<N>.json (hash of the weights, first and last logged loss).
Also runs under ``accelerate launch`` with several processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import Dataset

from towerkit.core.trainer import Callback, StageConfig, Trainer, TrainerConfig


class Digits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class NoisyDigits(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Digits with random pixel dropout drawn from torch's global RNG in __getitem__."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = (torch.rand(self.x.shape[1]) > 0.1).float()
        return self.x[index] * keep, self.y[index]


def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    # input noise from NumPy, scaled by Python's RNG: a resume must restore both exactly
    noise = torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(x.shape)).astype(np.float32))
    x = x + noise * random.uniform(0.5, 1.5)
    return nn.functional.cross_entropy(model(x), y)


class Sleep(Callback):
    """Slows the run down so a test can kill it mid-epoch; does not touch any RNG."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        time.sleep(self.seconds)


def config(keep_last: int = 2) -> TrainerConfig:
    return TrainerConfig(
        stages=[
            StageConfig(name="head", epochs=1, trainable=["head.*"], lr=5e-3),
            StageConfig(name="all", epochs=3, lr=3e-3, warmup_steps=5, weight_decay=0.01),
        ],
        batch_size=16,
        grad_accum_steps=2,
        eval_every_steps=None,
        early_stopping_metric="accuracy",
        checkpoint_every_steps=5,
        keep_last=keep_last,
        log_every_steps=4,
        progress=False,
        tensorboard=False,
        restore_best=False,  # compare the last step's weights: the strictest check
        seed=7,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out_prefix")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--resume-from", type=Path, default=None)
    parser.add_argument("--keep-last", type=int, default=2)
    parser.add_argument("--step-sleep", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # bit-identical runs need the same reduction order every time

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    train, x_val, y_val = NoisyDigits(x[:1500], y[:1500]), x[1500:], y[1500:]

    def eval_fn(model: nn.Module) -> dict[str, float]:
        return {"accuracy": (model(x_val).argmax(1) == y_val).float().mean().item()}

    torch.manual_seed(0)
    model = Digits()
    callbacks = [Sleep(args.step_sleep)] if args.step_sleep else []
    trainer = Trainer(
        model, config(args.keep_last), train, loss_fn, args.run_dir, eval_fn, callbacks=callbacks
    )
    result = trainer.fit(resume=args.resume_from or args.resume)

    rank = trainer.accelerator.process_index
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{args.out_prefix}.process{rank}.safetensors")
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(state[key].numpy().tobytes())
    losses = [row["loss"] for row in result.history if "loss" in row]
    summary = {
        "param_hash": digest.hexdigest(),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "global_step": result.global_step,
        "final_metrics": result.final_metrics,
        "num_processes": trainer.accelerator.num_processes,
    }
    Path(f"{args.out_prefix}.process{rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()

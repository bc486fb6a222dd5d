"""Trainer overhead: the same CNN, data, optimizer, schedule, clipping and per-epoch evaluation,
trained by a plain PyTorch loop and by towerkit's Trainer (its defaults: Rich progress bar,
metrics.csv, train.log, TensorBoard, a checkpoint at every epoch end, loss.png), side by side.

    .venv/bin/python benchmarks/trainer_overhead.py [--repeats 5] [--train-size 12000]

Runs alternate (plain, trainer, trainer, plain, ...) so drift on a shared machine hits both;
medians are reported. Writes the table into BENCHMARKS.md under "## Trainer overhead".
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from towerkit.core.schedules import lr_factor
from towerkit.core.trainer import StageConfig, Trainer, TrainerConfig

FASHION = Path("/usr/share/datasets/fashion-mnist")
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
SECTION = "## Trainer overhead"
LR, WARMUP, MAX_NORM = 3e-3, 20, 1.0


def load_data(train_size: int, val_size: int) -> tuple[TensorDataset, TensorDataset, str]:
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():
        from towerkit.zoo.data.vision import read_idx

        images = read_idx(FASHION / "train-images-idx3-ubyte.gz", 3)
        labels = read_idx(FASHION / "train-labels-idx1-ubyte.gz", 1)
        name = f"Fashion-MNIST ({FASHION}), {train_size:,} train / {val_size:,} val images"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.kron(digits.images, np.ones((4, 4)))[:, 2:30, 2:30] * 16  # 8x8 -> 28x28
        labels = digits.target
        train_size, val_size = min(train_size, 1400), min(val_size, 397)
        name = "scikit-learn digits (Fashion-MNIST absent), upscaled to 28x28"
    x = torch.tensor(images[: train_size + val_size], dtype=torch.float32).unsqueeze(1) / 255.0
    y = torch.tensor(labels[: train_size + val_size], dtype=torch.long)
    train = TensorDataset(x[:train_size], y[:train_size])
    val = TensorDataset(x[train_size:], y[train_size:])
    return train, val, name


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def accuracy_on(val: TensorDataset) -> Callable[[nn.Module], dict[str, float]]:
    x, y = val.tensors

    def evaluate(model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            return {"accuracy": (model(x).argmax(1) == y).float().mean().item()}

    return evaluate


def plain_loop(train: TensorDataset, val: TensorDataset, epochs: int, batch: int) -> float:
    """What a careful user writes by hand: same math, no logging, no checkpoints."""
    model = make_model(0)
    evaluate = accuracy_on(val)
    loader = DataLoader(
        train, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    total = epochs * len(loader)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, WARMUP, "cosine")
    )
    metrics: dict[str, float] = {}
    for _ in range(epochs):
        model.train()
        for batch_data in loader:
            loss = loss_fn(model, batch_data)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
        model.eval()
        metrics = evaluate(model)
    return metrics["accuracy"]


def trainer_loop(train: TensorDataset, val: TensorDataset, epochs: int, batch: int) -> float:
    """The Trainer with its defaults, as a recipe would call it."""
    stage = StageConfig(epochs=epochs, lr=LR, warmup_steps=WARMUP, scheduler="cosine")
    config = TrainerConfig(stages=[stage], batch_size=batch, max_grad_norm=MAX_NORM)
    with tempfile.TemporaryDirectory(prefix="trainer-overhead-") as run_dir:
        trainer = Trainer(make_model(0), config, train, loss_fn, run_dir, accuracy_on(val))
        result = trainer.fit()
    return result.final_metrics["accuracy"]


def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds of this process (all its threads) and the val accuracy."""
    wall, cpu = time.perf_counter(), time.process_time()
    accuracy = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, accuracy


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def write_section(markdown: str) -> None:
    """Replace (or add) this benchmark's section; other sections stay as they are."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.is_file() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip() + "\n\n" + markdown
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + markdown + (text[end + 1 :] if end != -1 else "")
    BENCHMARKS_MD.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # the bar renders live as in a terminal even when stderr is a pipe: what a user pays
    os.environ.setdefault("TTY_COMPATIBLE", "1")
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    train, val, data_name = load_data(args.train_size, args.val_size)
    runs: dict[str, Callable[[], float]] = {
        "plain PyTorch loop": lambda: plain_loop(train, val, args.epochs, args.batch_size),
        "towerkit Trainer": lambda: trainer_loop(train, val, args.epochs, args.batch_size),
    }
    cold = {name: timed(fn)[0] for name, fn in runs.items()}  # imports, first allocations
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds, cpu_seconds, accuracy[name] = timed(runs[name])
            times[name].append(seconds)
            cpu[name].append(cpu_seconds)
            print(f"repeat {repeat + 1}: {name}: {seconds:.2f} s", file=sys.stderr)

    steps = args.epochs * -(-len(train) // args.batch_size)
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
    plain, ours = medians["plain PyTorch loop"], medians["towerkit Trainer"]
    # each repeat runs both back to back: their ratio cancels most of the machine's drift
    paired = statistics.median(
        t / p for t, p in zip(times["towerkit Trainer"], times["plain PyTorch loop"], strict=True)
    )
    rows = [
        f"| {name} | {medians[name]:.2f} | {min(t):.2f} | {max(t):.2f} | "
        f"{cpu_medians[name]:.2f} | {cold[name]:.2f} | "
        f"{len(train) * args.epochs / medians[name]:,.0f} | {accuracy[name]:.4f} |"
        for name, t in times.items()
    ]
    command = " ".join([".venv/bin/python", shlex.join(sys.argv)])
    markdown = "\n".join(
        [
            SECTION,
            "",
            f"Same CNN (2 conv + 2 linear), data, AdamW, warmup + cosine schedule, clipping at "
            f"{MAX_NORM} and per-epoch validation; {args.epochs} epochs x {steps // args.epochs} "
            f"steps of batch {args.batch_size} on {data_name}. The Trainer runs with its "
            "defaults: live Rich progress bar, metrics.csv, train.log, TensorBoard, a checkpoint "
            "at each epoch end and loss.png. Median of "
            f"{args.repeats} alternating repeats after one untimed warm-up run of each.",
            "",
            "| loop | median wall s | min s | max s | median CPU s | first run s | "
            "train examples/s | val acc |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"**Trainer / plain = {ours / plain:.3f}** ({100 * (ours / plain - 1):+.1f}% wall "
            f"time, {1000 * (ours - plain) / steps:+.2f} ms per optimizer step); median of the "
            f"per-repeat ratios {paired:.3f}; CPU time (this process, all threads) "
            f"{cpu_medians['towerkit Trainer'] / cpu_medians['plain PyTorch loop']:.3f}. "
            "The spread of the plain loop's own wall times "
            f"({100 * (max(times['plain PyTorch loop']) / min(times['plain PyTorch loop']) - 1):.0f}"
            "% max/min) bounds what this machine can resolve.",
            "",
            f"- machine: {machine()}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s); 1-minute load average at start "
            f"{load_avg:.1f} (a shared machine: other jobs ran alongside)",
            f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- command: `{command}`",
            "",
        ]
    )
    print(markdown)
    if not args.no_write:
        write_section(markdown)
        print(f"wrote {BENCHMARKS_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()

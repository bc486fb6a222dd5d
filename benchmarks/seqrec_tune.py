"""Pick towerkit's SASRec batch size and learning rate for benchmarks/seqrec.py on the VALIDATION
split (the test split is never read here).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/seqrec_tune.py --epochs 20 --threads 1 \
        [--batches 16 32 64 128] [--lrs 0.001 0.002 0.005]

Every cell trains towerkit's side exactly as benchmarks/seqrec.py does (the same recipe
overrides: hidden, heads, blocks, max_len, dropout, full-softmax CE, a fixed epoch budget, no
early stopping, seed 0) with that batch size and lr, then ranks every user's validation item
against all items (train prefix as history, history masked). Results go to
runs/bench/seqrec-tune/results.json as each cell finishes (a re-run with the same settings
skips the cells already there; ``--fresh`` starts over) and the script prints a markdown table
for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from seqrec import NAME, ROOT, towerkit_overrides  # benchmarks/ is sys.path[0] when run
from towerkit.core.io import write_json_atomic
from towerkit.core.trainer import Trainer
from towerkit.rec.sequential.recipe import DataConfig, load_data, load_recipe_config
from towerkit.rec.sequential.sasrec import SASRec
from towerkit.rec.sequential.training import (
    NextItemDataset,
    evaluate_model,
    sasrec_loss,
    sasrec_scorer,
)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.002, 0.005])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "seqrec-tune")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results.json")
    return parser.parse_args()


def _cell(args: argparse.Namespace, prepared: Path, batch: int, lr: float) -> dict[str, Any]:
    """Train one (batch, lr) the way seqrec.py's towerkit side does; validation metrics only."""
    cell = argparse.Namespace(**{**vars(args), "towerkit_batch": batch, "towerkit_lr": lr})
    config = load_recipe_config(None, towerkit_overrides(cell, prepared))
    data = load_data(config.data)
    config.model = dataclasses.replace(config.model, n_items=data.n_items)
    torch.manual_seed(config.trainer.seed)  # as recipe.train: the same initial weights
    model = SASRec(config.model)
    samples = NextItemDataset(data, config.model.max_len, config.model.num_negatives)
    run_dir = args.out / "runs" / f"b{batch}-lr{lr:g}"
    trainer = Trainer(model, config.trainer, samples, sasrec_loss, run_dir)
    fit = trainer.fit()
    model.eval()
    with torch.no_grad():
        valid = evaluate_model(sasrec_scorer(model), data, "valid", config.model.max_len)
    return {
        "batch": batch,
        "lr": lr,
        "samples": len(samples),
        "steps_per_epoch": math.ceil(len(samples) / batch),
        "seconds_per_epoch": fit.train_seconds / max(fit.epochs_completed, 1),
        "valid_ndcg@10": valid.metrics["ndcg@10"],
        "valid_hr@10": valid.metrics["hr@10"],
        "valid_mrr": valid.metrics["mrr"],
    }


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    prepared = args.out / "data"
    if not (prepared / "sequences.parquet").is_file():
        load_data(DataConfig(format="ml-100k", name=NAME)).save(prepared)
    path = args.out / "results.json"
    settings = {k: getattr(args, k) for k in ("epochs", "threads", "hidden", "heads", "blocks",
                                               "max_len", "dropout")}  # fmt: skip
    earlier = {} if args.fresh or not path.is_file() else json.loads(path.read_text())
    # cells from other settings are not reused
    done: list[dict[str, Any]] = earlier["cells"] if earlier.get("settings") == settings else []
    for batch in args.batches:
        for lr in args.lrs:
            if any(c["batch"] == batch and c["lr"] == lr for c in done):
                continue
            started = time.perf_counter()
            cell = _cell(args, prepared, batch, lr)
            cell["wall_seconds"] = time.perf_counter() - started
            done.append(cell)
            print(json.dumps(cell), flush=True)
            write_json_atomic(path, {"settings": settings, "cells": done})
    print(_markdown(settings, done))


def _markdown(settings: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    best = max(cells, key=lambda c: c["valid_ndcg@10"])
    lines = [
        f"towerkit SASRec, validation split (full ranking, history masked), settings {settings}:",
        "",
        "| batch | lr | steps / epoch | s / epoch | valid NDCG@10 | valid HR@10 | valid MRR |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in sorted(cells, key=lambda c: (c["batch"], c["lr"])):
        mark = "**" if c is best else ""
        lines.append(
            f"| {c['batch']} | {c['lr']:g} | {c['steps_per_epoch']} | "
            f"{c['seconds_per_epoch']:.2f} | {mark}{c['valid_ndcg@10']:.4f}{mark} | "
            f"{c['valid_hr@10']:.4f} | {c['valid_mrr']:.4f} |"
        )
    lines += ["", f"best on validation NDCG@10: batch {best['batch']}, lr {best['lr']:g}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

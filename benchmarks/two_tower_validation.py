"""The validation runs behind configs/rec/two-tower-full.yaml's settings (test split never read).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_validation.py [--variants a,b]

Each variant is the full recipe plus overrides, trained on MovieLens-100K's training split
(the same seed-db rules and time split as benchmarks/two_tower.py) with early stopping on
validation recall@50; printed: validation AUC, recall@50, NDCG@50 and the epoch it stopped at.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _stages(epochs: int, lr: float, weight_decay: float) -> str:
    """One cosine stage, as the full recipe's, with other numbers."""
    stage = f"name: train, epochs: {epochs}, lr: {lr}, weight_decay: {weight_decay:.6f}"
    return f"trainer.stages=[{{{stage}, scheduler: cosine}}]"


_STATIC = ["model.user_bias=false", "model.like_head=false", "model.query_ids=true"]
VARIANTS: dict[str, list[str]] = {
    "static user features + user id (the recipe before)": [
        "features.history_len=0",
        *_STATIC,
        "loss.id_dropout=0.5",
    ],
    "+ history of 50": ["features.history_len=50", *_STATIC, "loss.id_dropout=0.5"],
    "+ user bias, like head, no user id": ["features.history_len=50", "loss.id_dropout=0.5"],
    "+ id dropout 0.1": ["features.history_len=50"],
    "+ history of 10 (the full recipe)": [],
    "full recipe, history of 200": ["features.history_len=200"],
    "full recipe with the user id row": ["model.query_ids=true"],
    "full recipe, history into the like head only, user id row, id dropout 0.5": [
        "model.history_into=like",
        "model.query_ids=true",
        "loss.id_dropout=0.5",
    ],
    "full recipe, lr 0.001, weight decay 0.01, 12 epochs": [_stages(12, 0.001, 0.01)],
    "full recipe, BCE only, early stopping on AUC": [
        "loss.softmax_weight=0",
        "trainer.early_stopping_metric=auc",
    ],
}


def run_variant(overrides: list[str], data: object) -> dict[str, float]:
    from towerkit.core.trainer import Trainer
    from towerkit.rec.twotower.evaluation import evaluate_scorer, model_scorer, warm_users
    from towerkit.rec.twotower.prepare import InteractionDataset, collate
    from towerkit.rec.twotower.recipe import (
        build_model,
        build_prepared,
        default_config_path,
        load_recipe,
    )
    from towerkit.rec.twotower.training import TwoTowerLoss

    config = load_recipe(default_config_path("full"), overrides)
    config.trainer.tensorboard = False
    prepared = build_prepared(config, data)  # type: ignore[arg-type]
    model = build_model(config, prepared)
    art, histories = prepared.artifacts, prepared.histories("val")
    warm = warm_users(prepared.train)

    def on_val(unwrapped: object) -> dict[str, float]:
        scorer = model_scorer(unwrapped, art, histories)  # type: ignore[arg-type]
        return evaluate_scorer(
            scorer, prepared.val, prepared.train, prepared.n_users, prepared.n_items,
            config.eval.ks, warm,
        )  # fmt: skip

    loss = TwoTowerLoss(art.query_tables, art.candidate_tables, config.loss, prepared.train_history)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model, config.trainer, InteractionDataset(prepared.train), loss, Path(tmp),
            eval_fn=on_val, collate_fn=collate,
        )  # fmt: skip
        fit = trainer.fit()
    result = on_val(model)
    result["best_step"] = float(fit.best_step or 0)
    result["steps"] = float(fit.global_step)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="names separated by ';' (default: all)")
    parser.add_argument(
        "--try", dest="tries", action="append", default=[],
        help="an ad-hoc variant: overrides separated by ';' (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    from towerkit.rec.twotower.sources import movielens_data

    data = movielens_data()
    for text in args.tries:
        VARIANTS[text] = [o.strip() for o in text.split(";") if o.strip()]
    chosen = [v for v in args.variants.split(";") if v] or (
        list(args.tries) if args.tries else list(VARIANTS)
    )
    print(
        "| variant | val AUC | val recall@50 | val NDCG@50 | warm recall@50 | best step / steps | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in chosen:
        started = time.perf_counter()
        row = run_variant(VARIANTS[name], data)
        print(
            f"| {name} | {row['auc']:.4f} | {row['recall@50']:.4f} | {row['ndcg@50']:.4f} "
            f"| {row['warm_recall@50']:.4f} "
            f"| {row['best_step']:.0f} / {row['steps']:.0f} | {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""The validation runs behind configs/rec/two-tower-full.yaml's settings (test split never read).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_validation.py [--variants a,b]

Each variant is the full recipe plus overrides, trained on MovieLens-100K's training split
(the same seed-db rules and time split as benchmarks/two_tower.py) with early stopping on
validation recall@50 (and, where ``like_selection`` is set, the like path's weights of its best
validation AUC); printed: validation AUC, recall@50, NDCG@50, warm-user recall@50 and the steps
the weights came from.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch


def _stages(epochs: int, lr: float, weight_decay: float) -> str:
    """One cosine stage, as the full recipe's, with other numbers."""
    stage = f"name: train, epochs: {epochs}, lr: {lr}, weight_decay: {weight_decay:.6f}"
    return f"trainer.stages=[{{{stage}, scheduler: cosine}}]"


def _like_stage(lr: float, epochs: int) -> str:
    """The full recipe's two stages, the like path's first with another lr / epoch count."""
    like = f"{{name: like, epochs: {epochs}, lr: {lr}, weight_decay: 0.00001, scheduler: cosine, "
    like += "trainable: ['like_*', 'attention.*', 'bce_*']}"
    retrieval = "{name: retrieval, epochs: 8, lr: 0.003, weight_decay: 0.00001, "
    retrieval += "scheduler: cosine, trainable: ['query_tower.*', 'candidate_tower.*']}"
    return f"trainer.stages=[{like}, {retrieval}]"


# the recipe before the like path was split off (2026-12-05): one stage, shared towers
_ONE = [
    "model.like_towers=false",
    "model.history_into=both",
    "like_selection.metric=null",
    _stages(8, 0.003, 0.00001),
    "trainer.early_stopping_patience=3",
]
_SPLIT = ["model.like_towers=true", "like_selection.metric=auc"]
_STATIC = ["model.user_bias=false", "model.like_head=false", "model.query_ids=true"]
# the recipe before the history attention (2026-12-05): no attention, 10 items, dropout 0.1
_B = [*_ONE, "model.like_attention=false", "features.history_len=10", "model.dropout=0.1"]
_ATT = ["model.like_attention=true", "model.attention_init=random", "model.attention_fixed=false"]
_SVD = ["model.like_attention=true", "model.attention_init=svd"]
VARIANTS: dict[str, list[str]] = {
    "static user features + user id (the recipe before)": [
        *_B,
        "features.history_len=0",
        *_STATIC,
        "loss.id_dropout=0.5",
    ],
    "+ history of 50": [*_B, "features.history_len=50", *_STATIC, "loss.id_dropout=0.5"],
    "+ user bias, like head, no user id": [*_B, "features.history_len=50", "loss.id_dropout=0.5"],
    "+ id dropout 0.1": [*_B, "features.history_len=50"],
    "+ history of 10 (the recipe before the attention)": [*_B],
    "recipe before, history of 200": [*_B, "features.history_len=200"],
    "recipe before, with the user id row": [*_B, "model.query_ids=true"],
    "recipe before, history into the like head only, user id row, id dropout 0.5": [
        *_B,
        "model.history_into=like",
        "model.query_ids=true",
        "loss.id_dropout=0.5",
    ],
    "recipe before, lr 0.001, weight decay 0.01, 12 epochs": [*_B, _stages(12, 0.001, 0.01)],
    "recipe before, BCE only, early stopping on AUC": [
        *_B,
        "loss.softmax_weight=0",
        "trainer.early_stopping_metric=auc",
    ],
    "recipe before, history of 50, dropout 0.3 (no attention)": [
        *_B,
        "features.history_len=50",
        "model.dropout=0.3",
    ],
    "recipe before + history attention, own item table (random start)": [*_B, *_ATT],
    "recipe before + history attention, candidate tower's id table": [
        *_B,
        *_ATT,
        "model.attention_table=shared",
    ],
    "recipe before + attention, own table started from the SVD of training swipes": [
        *_B,
        *_SVD,
    ],
    "attention, SVD-started table, history of 50": [*_B, *_SVD, "features.history_len=50"],
    "attention, fixed SVD table, history of 50": [
        *_B,
        *_SVD,
        "model.attention_fixed=true",
        "features.history_len=50",
    ],
    "attention, fixed SVD table, history of 50, no user features": [
        *_B,
        *_SVD,
        "model.attention_fixed=true",
        "features.history_len=50",
        "features.user_features=[]",
    ],
    "attention, fixed SVD table, history of 10, dropout 0.3": [*_ONE, "features.history_len=10"],
    "attention, fixed SVD table, history of 50, dropout 0.3 (the recipe before the split)": _ONE,
    "recipe before the split, like heads kept at their best validation AUC": [
        *_ONE,
        "like_selection.metric=auc",
    ],
    "like path on towers of its own, kept at its best validation AUC": [*_ONE, *_SPLIT],
    "the same, retrieval without the history (history_into=like)": [
        *_ONE,
        *_SPLIT,
        "model.history_into=like",
    ],
    "the same, evaluated every half epoch": [
        *_ONE,
        *_SPLIT,
        "model.history_into=like",
        "trainer.eval_every_steps=57",
        "trainer.early_stopping_patience=6",
    ],
    "the same, dropout 0.5": [*_ONE, *_SPLIT, "model.history_into=like", "model.dropout=0.5"],
    "like path in a stage of its own first: lr 0.0003, 4 epochs": [_like_stage(0.0003, 4)],
    "like path in a stage of its own first: lr 0.003, 4 epochs": [_like_stage(0.003, 4)],
    "like path in a stage of its own first: lr 0.001, 8 epochs": [
        _like_stage(0.001, 8),
        "trainer.early_stopping_patience=8",
    ],
    "like path in a stage of its own first: lr 0.001, 4 epochs (the full recipe)": [],
}


TRACE = False  # --trace: print validation AUC / recall@50 at every evaluation


# every row above was measured before the recipe had the like booster (booster.py)
for _overrides in VARIANTS.values():
    _overrides.append("booster.enabled=false")


@dataclass
class Fitted:
    """A variant trained with early stopping on validation, and what chose its weights."""

    config: Any
    prepared: Any
    model: Any
    fit: Any
    like_step: int | None  # the like path's own best step (like_selection), else None
    steps_per_epoch: int
    trace: list[str]


def fit_variant(overrides: list[str], data: object) -> Fitted:
    """The full recipe plus ``overrides``, trained on the training split of ``data``."""
    from towerkit.core.trainer import Trainer
    from towerkit.rec.twotower.evaluation import evaluate_scorer, model_scorer, warm_users
    from towerkit.rec.twotower.prepare import InteractionDataset, collate
    from towerkit.rec.twotower.recipe import (
        build_loss,
        build_model,
        build_prepared,
        default_config_path,
        load_recipe,
    )
    from towerkit.rec.twotower.selection import LikePathSelection, like_selection_callbacks

    config = load_recipe(default_config_path("full"), overrides)
    config.trainer.tensorboard = False
    prepared = build_prepared(config, data)  # type: ignore[arg-type]
    model = build_model(config, prepared)
    art, histories = prepared.artifacts, prepared.histories("val")
    warm = warm_users(prepared.train)
    trace: list[str] = []

    def on_val(unwrapped: object) -> dict[str, float]:
        scorer = model_scorer(unwrapped, art, histories)  # type: ignore[arg-type]
        got = evaluate_scorer(
            scorer, prepared.val, prepared.train, prepared.n_users, prepared.n_items,
            config.eval.ks, warm,
        )  # fmt: skip
        trace.append(f"{got['auc']:.4f}/{got['recall@50']:.4f}")
        return got

    loss = build_loss(config, prepared)
    callbacks = like_selection_callbacks(config, model, None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model, config.trainer, InteractionDataset(prepared.train), loss, Path(tmp),
            eval_fn=on_val, collate_fn=collate, callbacks=callbacks,
        )  # fmt: skip
        fit = trainer.fit()
    like = next((c.best_step for c in callbacks if isinstance(c, LikePathSelection)), None)
    return Fitted(config, prepared, model, fit, like, trainer.steps_per_epoch, trace)


def run_variant(overrides: list[str], data: object) -> dict[str, float]:
    from towerkit.rec.twotower.booster import attach_booster
    from towerkit.rec.twotower.recipe import evaluate_all

    got = fit_variant(overrides, data)
    attach_booster(got.config.booster, got.model, got.prepared, got.config.trainer.seed)
    config = replace(got.config, baselines=replace(got.config.baselines, names=["popularity"]))
    result = evaluate_all(config, got.model, got.prepared, "val")["two_tower"]
    if TRACE:
        print("  per evaluation, AUC/recall@50:", " ".join(got.trace), flush=True)
    result["best_step"] = float(got.fit.best_step or 0)
    result["like_step"] = float(got.like_step or result["best_step"])
    result["steps"] = float(got.fit.global_step)
    return result


def _steps(row: dict[str, float]) -> str:
    """ "best / steps", with the like path's own best step when it was selected apart."""
    like = f" (like {row['like_step']:.0f})" if row["like_step"] != row["best_step"] else ""
    return f"{row['best_step']:.0f}{like} / {row['steps']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="names separated by ';' (default: all)")
    parser.add_argument(
        "--try", dest="tries", action="append", default=[],
        help="an ad-hoc variant: overrides separated by ';' (repeatable)",
    )  # fmt: skip
    parser.add_argument("--trace", action="store_true", help="print every evaluation's numbers")
    args = parser.parse_args()
    global TRACE
    TRACE = args.trace
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
            f"| {_steps(row)} | {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Does refitting on train + validation pay? Measured one period earlier, test split unread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_refit.py [--seeds 0,1,2] [overrides]

The full recipe's data are cut at the start of its test split (``split.test_end``), and the
split moves one period back: the recipe's validation period becomes the test period here, and
an equally long period before it the validation period. Per seed, the selection run (early
stopping on that validation period) is scored on the held-out period, and then its refit
(``refit.py``: a fresh model on train + validation up to the chosen steps); ALS is fitted on
the same training data as each. Printed: AUC, recall@50 and warm-user recall@50 of both.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def shifted_split(data: object, config: object) -> list[str]:
    """Overrides that move the recipe's split one validation period back."""
    from towerkit.rec.twotower.data import time_split

    real = time_split(data.interactions, config.split)  # type: ignore[attr-defined]
    length = real.test_start - real.val_start
    return [
        f"split.val_start='{(real.val_start - length).isoformat()}'",
        f"split.test_start='{real.val_start.isoformat()}'",
        f"split.test_end='{real.test_start.isoformat()}'",
    ]


def scores(config: object, model: object, prepared: object) -> dict[str, float]:
    from towerkit.rec.twotower.recipe import evaluate_all

    table = evaluate_all(config, model, prepared, "test")  # type: ignore[arg-type]
    ours, als = table["two_tower"], table["als"]
    return {
        "auc": ours["auc"],
        "recall@50": ours["recall@50"],
        "warm": ours["warm_recall@50"],
        "als_recall@50": als["recall@50"],
    }


def run_seed(overrides: list[str], data: object) -> dict[str, dict[str, float]]:
    from towerkit.core.trainer import Trainer
    from towerkit.rec.twotower.evaluation import evaluate_scorer, model_scorer, warm_users
    from towerkit.rec.twotower.prepare import InteractionDataset, collate
    from towerkit.rec.twotower.recipe import (
        build_model,
        build_prepared,
        default_config_path,
        load_recipe,
        refit,
    )
    from towerkit.rec.twotower.refit import ChosenSteps
    from towerkit.rec.twotower.selection import LikePathSelection, like_selection_callbacks
    from towerkit.rec.twotower.training import TwoTowerLoss

    config = load_recipe(default_config_path("full"), overrides)
    config.trainer.tensorboard = False
    prepared = build_prepared(config, data)  # type: ignore[arg-type]
    model = build_model(config, prepared)
    art, histories, warm = prepared.artifacts, prepared.histories("val"), warm_users(prepared.train)

    def on_val(unwrapped: object) -> dict[str, float]:
        scorer = model_scorer(unwrapped, art, histories)  # type: ignore[arg-type]
        return evaluate_scorer(
            scorer, prepared.val, prepared.train, prepared.n_users, prepared.n_items,
            config.eval.ks, warm,
        )  # fmt: skip

    loss = TwoTowerLoss(art.query_tables, art.candidate_tables, config.loss, prepared.train_history)
    callbacks = like_selection_callbacks(config, model, None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model, config.trainer, InteractionDataset(prepared.train), loss, Path(tmp),
            eval_fn=on_val, collate_fn=collate, callbacks=callbacks,
        )  # fmt: skip
        fit = trainer.fit()
        like = next((c.best_step for c in callbacks if isinstance(c, LikePathSelection)), None)
        chosen = ChosenSteps(fit.best_step or fit.global_step, like, trainer.steps_per_epoch)
        selected = scores(config, model, prepared)
        refitted, merged, _ = refit(config, data, chosen, Path(tmp))  # type: ignore[arg-type]
        return {"selection": selected, "refit": scores(config, refitted, merged)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from towerkit.rec.twotower.recipe import default_config_path, load_recipe
    from towerkit.rec.twotower.sources import movielens_data

    data = movielens_data()
    split = shifted_split(data, load_recipe(default_config_path("full"), args.overrides))
    print("split:", " ".join(split))
    print("| seed | model | AUC | recall@50 | warm recall@50 | ALS recall@50 | s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows: dict[str, list[dict[str, float]]] = {"selection": [], "refit": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        started = time.perf_counter()
        got = run_seed([*args.overrides, *split, f"trainer.seed={seed}"], data)
        seconds = time.perf_counter() - started
        for name, row in got.items():
            rows[name].append(row)
            print(
                f"| {seed} | {name} | {row['auc']:.4f} | {row['recall@50']:.4f} "
                f"| {row['warm']:.4f} | {row['als_recall@50']:.4f} | {seconds:.0f} |",
                flush=True,
            )
    for name, got in rows.items():
        mean = {k: statistics.fmean(r[k] for r in got) for k in got[0]}
        print(
            f"| mean | {name} | {mean['auc']:.4f} | {mean['recall@50']:.4f} "
            f"| {mean['warm']:.4f} | {mean['als_recall@50']:.4f} | |"
        )


if __name__ == "__main__":
    main()

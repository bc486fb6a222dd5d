"""Does refitting on train + validation pay? Measured one period earlier, test split unread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_refit.py [--seeds 0,1,2] [overrides]

The full recipe's data are cut at the start of its test split (``split.test_end``), and the
split moves one period back: the recipe's validation period becomes the test period here, and
an equally long period before it the validation period. Per seed, the selection run (early
stopping on that validation period) is scored on the held-out period, and then its refit
(``refit.py``: a fresh model on train + validation up to the chosen steps); ALS is fitted on
the same training data as each. Printed: AUC, recall@50 and warm-user recall@50 of both (with
``booster.enabled=true``, AUC is the blend's and "network AUC" the network's own like logit).
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
    network = ours["auc"]
    booster = getattr(model, "booster", None)
    if booster is not None:  # the network's own like logit, for the booster's share
        model.booster = None  # type: ignore[attr-defined]
        network = evaluate_all(config, model, prepared, "test")["two_tower"]["auc"]  # type: ignore[arg-type]
        model.booster = booster  # type: ignore[attr-defined]
    return {
        "auc": ours["auc"],
        "network_auc": network,
        "recall@50": ours["recall@50"],
        "warm": ours["warm_recall@50"],
        "als_recall@50": als["recall@50"],
    }


def run_seed(overrides: list[str], data: object) -> dict[str, dict[str, float]]:
    from towerkit.rec.twotower.booster import attach_booster
    from towerkit.rec.twotower.recipe import refit
    from towerkit.rec.twotower.refit import ChosenSteps
    from two_tower_validation import fit_variant  # benchmarks/ is sys.path[0] when run

    got = fit_variant(overrides, data)
    fit = got.fit
    chosen = ChosenSteps(fit.best_step or fit.global_step, got.like_step, got.steps_per_epoch)
    seed = got.config.trainer.seed
    attach_booster(got.config.booster, got.model, got.prepared, seed)
    selected = scores(got.config, got.model, got.prepared)
    with tempfile.TemporaryDirectory() as tmp:
        refitted, merged, _ = refit(got.config, data, chosen, Path(tmp))  # type: ignore[arg-type]
    attach_booster(got.config.booster, refitted, merged, seed)
    return {"selection": selected, "refit": scores(got.config, refitted, merged)}


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
    print("| seed | model | AUC | network AUC | recall@50 | warm recall@50 | ALS recall@50 | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows: dict[str, list[dict[str, float]]] = {"selection": [], "refit": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        started = time.perf_counter()
        got = run_seed([*args.overrides, *split, f"trainer.seed={seed}"], data)
        seconds = time.perf_counter() - started
        for name, row in got.items():
            rows[name].append(row)
            print(
                f"| {seed} | {name} | {row['auc']:.4f} | {row['network_auc']:.4f} "
                f"| {row['recall@50']:.4f} "
                f"| {row['warm']:.4f} | {row['als_recall@50']:.4f} | {seconds:.0f} |",
                flush=True,
            )
    for name, got in rows.items():
        mean = {k: statistics.fmean(r[k] for r in got) for k in got[0]}
        print(
            f"| mean | {name} | {mean['auc']:.4f} | {mean['network_auc']:.4f} "
            f"| {mean['recall@50']:.4f} "
            f"| {mean['warm']:.4f} | {mean['als_recall@50']:.4f} | |"
        )


if __name__ == "__main__":
    main()

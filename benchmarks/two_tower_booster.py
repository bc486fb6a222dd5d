"""The like booster's settings on the validation split (test split never read).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_booster.py [--seeds 0,1,2]

Per seed the full recipe's network is trained once (``two_tower_validation.fit_variant``:
training split, early stopping on validation), then each booster setting is fitted on the
training log (``booster.attach_booster``) and validation AUC is printed for the network's own
like logit, the booster alone (weight 1) and the blends of ``--weights``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

SETTINGS: dict[str, dict[str, float]] = {
    "recipe": {},
    "400 trees, lr 0.025": {"trees": 400, "learning_rate": 0.025},
    "depth 6": {"max_depth": 6},
    "depth 3": {"max_depth": 3},
    "fitted on the last 50 %": {"fit_fraction": 0.5},
    "fitted on the last 20 %": {"fit_fraction": 0.2},
    "min_child_samples 100": {"min_child_samples": 100},
}


def val_auc(model: object, prepared: object) -> float:
    """Validation AUC of the model's like logit (with its booster, if attached)."""
    from towerkit.core.metrics import roc_auc
    from towerkit.rec.twotower.evaluation import model_scorer

    val = prepared.val  # type: ignore[attr-defined]
    histories = prepared.histories("val")  # type: ignore[attr-defined]
    scorer = model_scorer(model, prepared.artifacts, histories)  # type: ignore[arg-type, attr-defined]
    return roc_auc(val.labels.astype(np.int64), scorer.pair_scores(val.user_rows, val.item_rows))


def main() -> None:
    from towerkit.rec.twotower.booster import attach_booster
    from towerkit.rec.twotower.sources import movielens_data
    from two_tower_validation import fit_variant  # benchmarks/ is sys.path[0] when run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--weights", default="0.5,0.6,0.7")
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights = [1.0, *(float(w) for w in args.weights.split(","))]
    data = movielens_data()
    print("| seed | booster | network | " + " | ".join(f"w = {w}" for w in weights) + " |")
    print("|---:|---|---:|" + "---:|" * len(weights))
    for seed in [int(s) for s in args.seeds.split(",")]:
        got = fit_variant([f"trainer.seed={seed}", "booster.enabled=false"], data)
        network = val_auc(got.model, got.prepared)
        for name, changes in SETTINGS.items():
            config = replace(got.config.booster, enabled=True, **changes)  # type: ignore[arg-type]
            attach_booster(config, got.model, got.prepared, seed)
            booster = got.model.booster
            assert booster is not None
            cells = []
            for weight in weights:
                booster.config = replace(booster.config, weight=weight)
                cells.append(f"{val_auc(got.model, got.prepared):.4f}")
            print(f"| {seed} | {name} | {network:.4f} | " + " | ".join(cells) + " |", flush=True)
        got.model.booster = None


if __name__ == "__main__":
    main()

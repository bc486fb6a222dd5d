"""Does retraining the dual tower during the backtest pay? Scored on validation-era cutoffs only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_retrain.py [--seeds 0,1,2,3] [--every 3] [--cutoffs 12]

The statsforecast baselines refit at every cutoff; the dual tower is trained once and forecasts
all the test cutoffs, up to 11 months after its training data ends. This checks whether a model
retrained every ``--every`` cutoffs does better. The splits move back so that ``--cutoffs``
scored cutoffs end at the recipe's last validation cutoff (the recipe's test cutoffs are never
read); selection and the refit's epoch count come from the cutoffs before them. Per seed
(``ensemble=1``): the recipe's model (selected, refitted) forecasts every scored cutoff ("once");
"retrained" replaces, for each later block of ``--every`` cutoffs, its forecasts with those of a
fresh model (same seed, the refit's epoch count) trained on every window whose targets end by
the block's first cutoff. Theta's point forecast on the same rows for scale. Numbers go to
runs/bench/forecast-retrain.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from pathlib import Path

import numpy as np
import torch

from towerkit.core.io import write_json_atomic
from towerkit.core.registry import ModelRegistry
from towerkit.forecast.backtest import EvalRows, MethodForecast, build_rows, model_forecast, score
from towerkit.forecast.data import (
    ForecastData,
    SplitWindows,
    predict_scaled,
    theta_cache_dir,
    to_raw,
)
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.recipe import default_config_path, load_recipe, train, train_for_epochs
from towerkit.forecast.theta import theta_forecasts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "forecast-retrain"


def windows_at(data: ForecastData, cutoffs: list[int]) -> SplitWindows:
    arrays = data.windows(cutoffs)
    return SplitWindows(arrays, data.text_for(arrays.pairs, progress=False))


def quantiles(
    model: DualTowerForecaster, data: ForecastData, scored: SplitWindows, rows: EvalRows
) -> np.ndarray:
    raw = to_raw(predict_scaled(model, scored), scored.arrays, data.target_idx)
    return model_forecast("m", rows, raw, model.config.quantiles).quantiles


def mase(
    rows: EvalRows, q: np.ndarray, targets: list[str], subset: np.ndarray | None = None
) -> float:
    return score(rows, MethodForecast("m", q), targets, subset)["overall"]["mase"]


def run_seed(
    config_path: Path, shift: list[str], seed: int, every: int, n_scored: int
) -> dict[str, float]:
    config = load_recipe(config_path, [*shift, "ensemble=1", f"trainer.seed={seed}"])
    config.trainer.progress = False
    result = train(
        config, registry=ModelRegistry(OUT / "registry.db"), runs_root=OUT, progress=False
    )
    data, horizon = result.data, config.data.horizon
    epochs = int(result.metrics["refit_epochs"])
    scored_cutoffs = data.splits.test[:n_scored]
    scored = windows_at(data, scored_cutoffs)
    rows = build_rows(data.panel, scored.arrays.pairs, data.target_idx, horizon)
    once = quantiles(result.model, data, scored, rows)
    retrained = once.copy()
    cutoffs = rows.cutoffs()
    for start in range(every, n_scored, every):
        block = scored_cutoffs[start : start + every]
        # every window whose targets end by the block's first cutoff, beyond train + validation
        extra = windows_at(data, list(range(data.splits.val[-1] + 1, block[0] - horizon + 1)))
        run_dir = result.run_dir / f"retrain-{data.panel.label(block[0])}"
        model = train_for_epochs(config, data, [data.train, data.val, extra], epochs, run_dir)
        at = np.isin(cutoffs, block)
        retrained[at] = quantiles(model, data, scored, rows)[at]
    targets = list(config.data.targets)
    theta = theta_forecasts(
        data.panel, scored.arrays.pairs, data.target_idx, horizon, theta_cache_dir(config.data)
    )
    theta_q = np.repeat(
        np.clip(theta[rows.window, :, rows.target], 0.0, None)[..., None], 3, axis=2
    )
    later = np.flatnonzero(cutoffs >= scored_cutoffs[every])
    return {
        "once": mase(rows, once, targets),
        "retrained": mase(rows, retrained, targets),
        "theta": mase(rows, theta_q, targets),
        "later_once": mase(rows, once, targets, later),
        "later_retrained": mase(rows, retrained, targets, later),
        "later_theta": mase(rows, theta_q, targets, later),
        "refit_epochs": float(epochs),
        "rows": float(len(rows)),
        "first": data.panel.label(scored_cutoffs[0]),  # type: ignore[dict-item]
        "last": data.panel.label(scored_cutoffs[-1]),  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--every", type=int, default=3, help="retrain every N scored cutoffs")
    parser.add_argument("--cutoffs", type=int, default=12, help="scored cutoffs")
    args = parser.parse_args()
    d = load_recipe(args.config).data
    if not 1 <= args.every < args.cutoffs:
        parser.error(f"--every {args.every}: expected 1 <= --every < --cutoffs ({args.cutoffs})")
    # the scored cutoffs end at the recipe's last validation cutoff
    n_test = d.n_test_cutoffs + d.horizon - 1 + args.cutoffs
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for seed in seeds:
        results[seed] = run_seed(
            args.config, [f"data.n_test_cutoffs={n_test}"], seed, args.every, args.cutoffs
        )
        print(f"seed {seed}: {results[seed]}", flush=True)
    stamp = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, 1 thread"
    )
    first = next(iter(results.values()))
    lines = [
        f"{int(first['rows'])} rows, cutoffs {first['first']}..{first['last']}, retrained every "
        f"{args.every}; {stamp}",
        "",
        "| seed | MASE once | MASE retrained | Theta | later blocks: once / retrained / Theta |",
        "|---:|---:|---:|---:|---:|",
    ]
    for seed, r in results.items():
        lines.append(
            f"| {seed} | {r['once']:.4f} | {r['retrained']:.4f} | {r['theta']:.4f} | "
            f"{r['later_once']:.4f} / {r['later_retrained']:.4f} / {r['later_theta']:.4f} |"
        )
    mean = {k: np.mean([r[k] for r in results.values()]) for k in ("once", "retrained", "theta")}
    lines.append(f"| mean | {mean['once']:.4f} | {mean['retrained']:.4f} | {mean['theta']:.4f} | |")
    print("\n".join(lines))
    write_json_atomic(
        ROOT / "runs" / "bench" / "forecast-retrain.json",
        {"stamp": stamp, "seeds": results, "table": lines},
    )


if __name__ == "__main__":
    main()

"""One model per target against the recipe's joint model, on *validation* cutoffs only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_per_target.py [--seeds 0,1,2] [--inner]

The full recipe trains one network whose heads forecast all six targets. Here, for each seed,
that joint model is trained as the recipe does, and beside it six models of the same recipe
with ``data.targets=[t]`` (every input metric still read, one target's heads), each early-stopped
(and, with ``--inner``, refitted) on its own. Both are scored on the same rows: each row's MASE
(``forecast.backtest.row_mase``), the overall mean, and per target. Without ``--inner`` models are
trained with ``refit=false`` and scored on the recipe's validation cutoffs; ``--inner`` moves
every split back as ``benchmarks/forecast_variants.py --inner`` does (the validation cutoffs play
the test's part, selection and the refit come from the cutoffs before them). The test cutoffs
are never read. Runs go to runs/bench/forecast-per-target/, numbers to
runs/bench/forecast-per-target[-inner].json.
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
from towerkit.forecast.backtest import build_rows, model_forecast, row_mase
from towerkit.forecast.data import SplitWindows, predict_scaled, to_raw
from towerkit.forecast.dataset import TARGETS
from towerkit.forecast.recipe import ForecastRecipeConfig, default_config_path, load_recipe, train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "forecast-per-target"


def scored(config: ForecastRecipeConfig, registry: ModelRegistry, inner: bool) -> np.ndarray:
    """(rows, 4): each scored row's target position, repository, cutoff and MASE, sorted by
    target, repository and cutoff (so that two models' rows line up)."""
    config.trainer.progress = False
    result = train(config, registry=registry, runs_root=OUT, progress=False)
    data = result.data
    windows = data.val
    if inner:
        arrays = data.windows(data.splits.test[: data.config.n_val_cutoffs])
        windows = SplitWindows(arrays, data.text_for(arrays.pairs, progress=False))
    rows = build_rows(data.panel, windows.arrays.pairs, data.target_idx, config.data.horizon)
    raw = to_raw(predict_scaled(result.model, windows), windows.arrays, data.target_idx)
    point = model_forecast("m", rows, raw, result.model.config.quantiles)
    positions = [TARGETS.index(config.data.targets[t]) for t in rows.target]
    keys = rows.pairs[rows.window]  # (repo, cutoff) per row
    table = np.column_stack([positions, keys, row_mase(rows, point)])
    return table[np.lexsort((table[:, 2], table[:, 1], table[:, 0]))]


def summary(rows: np.ndarray) -> dict[str, float]:
    out = {"mase": float(rows[:, 3].mean()), "rows": float(len(rows))}
    out.update({t: float(rows[rows[:, 0] == k, 3].mean()) for k, t in enumerate(TARGETS)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--inner", action="store_true", help="splits moved back (see above)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shift = ["refit=false"]
    if args.inner:
        d = load_recipe(args.config).data
        shift = [f"data.n_test_cutoffs={d.n_test_cutoffs + d.n_val_cutoffs + d.horizon - 1}"]
    registry = ModelRegistry(OUT / "registry.db")
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        common = [*shift, "ensemble=1", f"trainer.seed={seed}"]
        joint = scored(load_recipe(args.config, common), registry, args.inner)
        parts = [
            scored(load_recipe(args.config, [*common, f"data.targets=[{t}]"]), registry, args.inner)
            for t in TARGETS
        ]
        split = np.concatenate(parts)  # each part sorted; targets in TARGETS order
        assert np.array_equal(joint[:, :3], split[:, :3]), "the two scored different rows"
        results.append({"seed": seed, "joint": summary(joint), "per_target": summary(split)})
        print(results[-1], flush=True)
    stamp = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, 1 thread"
        + (", inner splits" if args.inner else "")
    )
    lines = [
        f"{int(results[0]['joint']['rows'])} rows; {stamp}",
        "",
        "| seed | joint | per target | " + " | ".join(TARGETS) + " |",
        "|---" * (len(TARGETS) + 3) + "|",
    ]
    for r in results:
        j, p = r["joint"], r["per_target"]
        cells = " | ".join(f"{j[t]:.3f} / {p[t]:.3f}" for t in TARGETS)
        lines.append(f"| {r['seed']} | {j['mase']:.4f} | {p['mase']:.4f} | {cells} |")
    means = [np.mean([r[k]["mase"] for r in results]) for k in ("joint", "per_target")]
    lines.append(f"| mean | {means[0]:.4f} | {means[1]:.4f} |" + " |" * len(TARGETS))
    print("\n".join(lines))
    name = "forecast-per-target" + ("-inner" if args.inner else "") + ".json"
    write_json_atomic(ROOT / "runs" / "bench" / name, {"stamp": stamp, "seeds": results})


if __name__ == "__main__":
    main()

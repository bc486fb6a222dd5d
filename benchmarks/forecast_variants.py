"""Forecast recipe variants scored on the *validation* cutoffs only (never the test ones).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_variants.py [--seeds 3] [--only NAME ...] [--inner [--back MONTHS]] [--combine]

Trains each variant of the full recipe (configs/forecast/full.yaml plus the variant's
overrides) with ``--seeds`` seeds (a variant with ``ensemble=K`` takes seeds k * K onwards
for its members), and prints the validation MASE / coverage of each seed, of
the mean of the seeds' quantiles (a seed ensemble) and of a 50/50 average with Theta's own
forecast, beside Naive, Theta and the comb on the same rows: the table the recipe's settings were chosen
from (BENCHMARKS.md, "## Forecast: what the table shows"). Runs and a private registry go to
runs/bench/forecast-variants/; the numbers to runs/bench/forecast-variants.json.

Without ``--inner`` every variant is trained with ``refit=false`` and ``calibrate=false``,
whatever it sets (a model refitted, or a band calibrated, on the validation windows cannot be
scored on them). ``--inner`` judges ``refit``
honestly: every split moves back so that the recipe's validation cutoffs become the first
test cutoffs (selection and the refit's epoch count come from the 6 cutoffs before them), and
the models are scored on those validation cutoffs. ``--back MONTHS`` moves every split that
many months further back again, to see whether a choice holds at an earlier origin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from towerkit.core.io import write_json_atomic
from towerkit.core.registry import ModelRegistry
from towerkit.forecast.backtest import EvalRows, MethodForecast, build_rows, model_forecast, score
from towerkit.forecast.comb import comb_channels
from towerkit.forecast.data import (
    ForecastData,
    SplitWindows,
    predict_scaled,
    theta_cache_dir,
    to_raw,
)
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.recipe import default_config_path, load_recipe, train
from towerkit.forecast.theta import theta_forecasts

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, list[str]] = {
    "base last (recipe of 2026-11-23)": ["model.base=last"],
    "base theta": ["model.base=theta"],
    "base theta, stop on mase": ["model.base=theta", "trainer.early_stopping_metric=mase"],
    "base theta, lr 0.0005": [
        "model.base=theta",
        "trainer.stages=[{name: train, epochs: 6, lr: 0.0005, weight_decay: 0.0001, "
        "scheduler: cosine, warmup_steps: 50}]",
    ],
    "base theta, dropout 0.3": ["model.base=theta", "model.dropout=0.3"],
    "base theta, weight 0.5": ["model.base=theta", "model.base_weight=0.5"],
    "base theta, no text": ["model.base=theta", "model.use_text=false"],
    "base theta, refit on train + validation": ["model.base=theta", "refit=true"],
    "base comb": ["model.base=comb"],
    "base theta, ensemble 3": ["model.base=theta", "ensemble=3"],
    "base comb, ensemble 3": ["model.base=comb", "ensemble=3"],
    "base theta, transformer": ["model.base=theta", "model.encoder=transformer"],
    "base theta, lookback 12": ["model.base=theta", "data.lookback=12"],
    "base theta, lookback 36": ["model.base=theta", "data.lookback=36"],
    "base theta, panel context": ["model.base=theta", "data.panel_context=true"],
    "base theta, one model": ["model.base=theta", "ensemble=1"],
    "base theta, one model per target": ["model.base=theta", "ensemble=1", "model.per_target=true"],
    "base theta, one model per target, recency half-life 12": [
        "model.base=theta",
        "ensemble=1",
        "model.per_target=true",
        "data.recency_halflife=12",
    ],
    "base theta, one model per target, recency half-life 24": [
        "model.base=theta",
        "ensemble=1",
        "model.per_target=true",
        "data.recency_halflife=24",
    ],
    # the recipe (single models) at four look-backs; --combine also scores the mean of the
    # variants' quantiles, a look-back ensemble
    "recipe, lookback 12": ["ensemble=1", "data.lookback=12"],
    "recipe, lookback 24": ["ensemble=1", "data.lookback=24"],
    "recipe, lookback 36": ["ensemble=1", "data.lookback=36"],
    "recipe, lookback 48": ["ensemble=1", "data.lookback=48"],
    "recipe, no recency weighting": ["ensemble=1", "data.recency_halflife=0"],
    # scored twice: as trained and with the band's conformal shifts (seeds x 1 training)
    "base theta, one model per target, calibrated": [
        "model.base=theta",
        "ensemble=1",
        "model.per_target=true",
        "calibrate=true",
    ],
}


def _scores(rows: EvalRows, quantiles: np.ndarray, targets: list[str]) -> dict[str, float]:
    forecast = MethodForecast("m", quantiles)
    report = score(rows, forecast, targets)
    overall = report["overall"]
    out = {k: overall[k] for k in ("mase", "coverage", "pinball")}
    out.update({f"mase_{t}": report[t]["mase"] for t in targets})
    return out


def _quantiles(
    model: DualTowerForecaster, data: ForecastData, scored: SplitWindows, rows: EvalRows, name: str
) -> np.ndarray:
    raw = to_raw(predict_scaled(model, scored), scored.arrays, data.target_idx)
    return model_forecast(name, rows, raw, model.config.quantiles).quantiles


def _combined_lines(
    rows: EvalRows, by_variant: dict[str, list[np.ndarray]], targets: list[str], seeds: int
) -> list[str]:
    """Table rows for the mean of every variant's quantiles, seed by seed and all together."""
    each = [
        _scores(rows, np.mean([q[s] for q in by_variant.values()], axis=0), targets)
        for s in range(seeds)
    ]
    together = _scores(rows, np.mean([x for q in by_variant.values() for x in q], axis=0), targets)
    mase = ", ".join(f"{e['mase']:.3f}" for e in each)
    return [
        f"| mean of the variants' quantiles, seed by seed | {mase} | "
        f"{np.mean([e['mase'] for e in each]):.3f} | {together['mase']:.3f} | | "
        f"{together['coverage']:.3f} | {together['pinball']:.3f} |"
    ]


def scored_windows(data: ForecastData, inner: bool) -> SplitWindows:
    if not inner:
        return data.val
    arrays = data.windows(data.splits.test[: data.config.n_val_cutoffs])
    return SplitWindows(arrays, data.text_for(arrays.pairs, progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    parser.add_argument("--inner", action="store_true", help="splits moved back (see above)")
    parser.add_argument(
        "--back", type=int, default=0, help="with --inner: months to move every split back further"
    )
    parser.add_argument(
        "--combine",
        action="store_true",
        help="also score the mean of the variants' quantiles, seed by seed (they must share rows)",
    )
    args = parser.parse_args()
    shift = ["refit=false", "calibrate=false"]
    if args.back and not args.inner:
        parser.error("--back needs --inner")
    if args.back < 0:
        parser.error(f"--back: expected months >= 0, got {args.back}")
    if args.inner:
        d = load_recipe(args.config).data
        moved = d.n_test_cutoffs + d.n_val_cutoffs + d.horizon - 1 + args.back
        shift = [f"data.n_test_cutoffs={moved}"]
    torch.set_num_threads(1)
    out_root = ROOT / "runs" / "bench" / "forecast-variants"
    registry = ModelRegistry(out_root / "registry.db")
    chosen = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    results: dict[str, dict[str, object]] = {}
    rows: EvalRows | None = None
    targets: list[str] = []
    theta_point, comb_point = np.zeros(0), np.zeros(0)
    quantiles_by_variant: dict[str, list[np.ndarray]] = {}
    for name, overrides in chosen.items():
        per_seed, raws, plain = [], [], []
        for seed in range(args.seeds):
            # an ensemble's members take seeds k * K .. k * K + K - 1: disjoint between seeds
            members = load_recipe(args.config, [*overrides, *shift]).ensemble
            config = load_recipe(
                args.config, [*overrides, *shift, f"trainer.seed={seed * members}"]
            )
            config.trainer.progress = False
            started = time.perf_counter()
            result = train(config, registry=registry, runs_root=out_root, progress=False)
            data, model = result.data, result.model
            scored = scored_windows(data, args.inner)
            if rows is None:
                targets = list(config.data.targets)
                pairs = scored.arrays.pairs
                rows = build_rows(data.panel, pairs, data.target_idx, config.data.horizon)
                theta = theta_forecasts(
                    data.panel,
                    pairs,
                    data.target_idx,
                    config.data.horizon,
                    theta_cache_dir(config.data),
                )
                theta_point = np.clip(theta[rows.window, :, rows.target], 0.0, None)
                comb = comb_channels(
                    data.panel,
                    pairs,
                    data.target_idx,
                    config.data.horizon,
                    theta_cache_dir(config.data),
                )[..., 0]
                comb_point = np.clip(comb[rows.window, :, rows.target], 0.0, None)
            q = _quantiles(model, data, scored, rows, name)
            raws.append(q)
            seed_scores = _scores(rows, q, targets)
            if model.config.interval_shift is not None:  # the band as trained, for comparison
                band, model.config.interval_shift = model.config.interval_shift, None
                plain.append(_quantiles(model, data, scored, rows, name))
                model.config.interval_shift = band
                seed_scores["uncalibrated"] = _scores(rows, plain[-1], targets)  # type: ignore[assignment]
            seed_scores["best_step"] = result.metrics.get("best_step", float("nan"))
            seed_scores["seconds"] = time.perf_counter() - started
            per_seed.append(seed_scores)
            print(f"{name} seed {seed}: {seed_scores}", flush=True)
        quantiles_by_variant[name] = raws
        ensemble = np.mean(raws, axis=0)
        blend = ensemble.copy()
        blend[..., 1] = 0.5 * ensemble[..., 1] + 0.5 * theta_point
        blend[..., 0] = np.minimum(blend[..., 0], blend[..., 1])
        blend[..., 2] = np.maximum(blend[..., 2], blend[..., 1])
        results[name] = {
            "overrides": overrides,
            "seeds": per_seed,
            "ensemble": _scores(rows, ensemble, targets),  # type: ignore[arg-type]
            "ensemble_theta_5050": _scores(rows, blend, targets),  # type: ignore[arg-type]
        }
        if plain:
            as_trained = np.mean(plain, axis=0)
            results[name]["ensemble_uncalibrated"] = _scores(rows, as_trained, targets)  # type: ignore[arg-type]
    assert rows is not None
    flat = np.repeat(theta_point[..., None], 3, axis=2)
    last = np.array([h[-1] for h in rows.histories])
    naive = np.repeat(np.repeat(last[:, None, None], 3, axis=1), 3, axis=2)
    references = {
        "Theta (point only)": _scores(rows, flat, targets),
        "comb: median of Theta, AutoETS, Naive (point only)": _scores(
            rows, np.repeat(comb_point[..., None], 3, axis=2), targets
        ),
        "Naive (point only)": _scores(rows, naive, targets),
    }
    stamp = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, 1 thread"
        + (", inner splits" if args.inner else "")
        + (f" moved {args.back} months further back" if args.back else "")
    )
    lines = [
        f"validation rows: {len(rows)}; {stamp}",
        "",
        "| variant | seed MASE (each) | mean of seeds | seed ensemble | ensemble + Theta 50/50 "
        "| coverage (ensemble) | pinball (ensemble) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        seeds = r["seeds"]
        each = ", ".join(f"{s['mase']:.3f}" for s in seeds)  # type: ignore[attr-defined]
        mean = np.mean([s["mase"] for s in seeds])  # type: ignore[attr-defined]
        ens, blend_s = r["ensemble"], r["ensemble_theta_5050"]
        lines.append(
            f"| {name} | {each} | {mean:.3f} | {ens['mase']:.3f} | "  # type: ignore[index]
            f"{blend_s['mase']:.3f} | {ens['coverage']:.3f} | {ens['pinball']:.3f} |"  # type: ignore[index]
        )
        if "ensemble_uncalibrated" in r:
            un = r["ensemble_uncalibrated"]
            lines.append(
                f"| {name}, as trained | | | {un['mase']:.3f} | | "  # type: ignore[index]
                f"{un['coverage']:.3f} | {un['pinball']:.3f} |"  # type: ignore[index]
            )
    if args.combine:
        lines += _combined_lines(rows, quantiles_by_variant, targets, args.seeds)
    for name, s in references.items():
        lines.append(f"| {name} | | | {s['mase']:.3f} | | | |")
    print("\n".join(lines))
    write_json_atomic(
        ROOT
        / "runs"
        / "bench"
        / (
            "forecast-variants"
            + ("-inner" if args.inner else "")
            + (f"-back{args.back}" if args.back else "")
            + ".json"
        ),
        {"stamp": stamp, "variants": results, "references": references, "table": lines},
    )


if __name__ == "__main__":
    main()

"""A blend of the dual tower and N-BEATS, its weights chosen on the validation cutoffs.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/forecast_blend.py [--seeds 3]

needs neuralforecast (``.venv/bin/pip install -e '.[bench]'``).

The anchor run (``forecast_neuralforecast.py``) found N-BEATS at 1.009 x Theta's test MASE and
the dual tower at 0.987, but with N-BEATS lower on MAE and pinball, from the largest third of
the series. Two forecasters that err differently may do better together. The blend is
``(1 - w) x dual tower + w x N-BEATS``, quantile by quantile.

1. Validation cutoffs only: the full recipe's dual tower as selected there (before its refit)
   and N-BEATS (the configuration the anchor run chose on validation, ``--seeds`` networks)
   fitted on every series up to the first validation cutoff forecast the validation rows. ``w``
   is the grid value with the lowest MASE there, once for every row and once for each third of
   the rows by series scale (MASE's denominator, known at the cutoff; the thirds' edges from
   the validation rows). The dual tower was early-stopped on these windows, N-BEATS not: if
   anything, that favours small weights for N-BEATS.
2. Test, read once: the refitted, calibrated dual tower and N-BEATS fitted up to the first test
   cutoff, blended with the chosen weights, beside both alone and Theta, on the same rows.

Prints Markdown tables; writes runs/bench/forecast-blend.json. Runs and a private registry go
to runs/bench/forecast-blend/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from forecast_anchor import (  # benchmarks/ is sys.path[0] when run
    compare,
    forecast_rows,
    markdown,
    print_test,
    run_facts,
    theta_scores,
    train_dual_tower,
    validation_rows,
)
from forecast_neuralforecast import Anchor, Candidate, load_neuralforecast, parse_args
from towerkit.core.io import write_json_atomic
from towerkit.forecast.backtest import EvalRows, MethodForecast, model_forecast, naive_scales, score
from towerkit.forecast.data import predict_scaled, to_raw
from towerkit.forecast.evaluation import run_backtest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "forecast-blend"
# chosen on the validation cutoffs by forecast_neuralforecast.py (BENCHMARKS.md, 2026-12-07)
NBEATS = Candidate("NBEATS", 24, 500, "robust")
GRID = np.round(np.linspace(0.0, 1.0, 21), 2)  # N-BEATS's weight, in steps of 0.05


def blend(a: MethodForecast, b: MethodForecast, weight: np.ndarray | float) -> np.ndarray:
    """``(1 - weight) a + weight b`` of every quantile; ``weight`` a scalar or one per row."""
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (len(a.quantiles),))
    mixed = (1.0 - w)[:, None, None] * a.quantiles + w[:, None, None] * b.quantiles
    return np.sort(mixed, axis=-1)


def scale_edges(rows: EvalRows, parts: int = 3) -> np.ndarray:
    """The inner edges of ``parts`` equal groups of rows by MASE's denominator."""
    return np.quantile(naive_scales(rows), np.arange(1, parts) / parts)


def scale_group(rows: EvalRows, edges: np.ndarray) -> np.ndarray:
    """Each row's group by MASE's denominator (0: the smallest), from :func:`scale_edges`."""
    return np.searchsorted(edges, naive_scales(rows), side="right")


def choose_weights(
    rows: EvalRows,
    a: MethodForecast,
    b: MethodForecast,
    edges: np.ndarray,
    names: list[str],
) -> list[float]:
    """For each group of rows by scale (``edges`` from :func:`scale_edges`; none: one group),
    the grid weight of ``b`` with the lowest MASE of the group's rows (ties: the smaller)."""
    group = scale_group(rows, edges)
    chosen = []
    for g in range(len(edges) + 1):
        at = np.flatnonzero(group == g)
        part = subset(rows, at)
        found = [
            score(part, MethodForecast("blend", blend(take(a, at), take(b, at), w)), names)[
                "overall"
            ]["mase"]
            for w in GRID
        ]
        chosen.append(float(GRID[int(np.argmin(found))]))
    return chosen


def subset(rows: EvalRows, at: np.ndarray) -> EvalRows:
    """These rows only (the windows table is shared)."""
    kept = [rows.histories[i] for i in at]
    return EvalRows(rows.pairs, rows.window[at], rows.target[at], rows.truth[at], kept)


def take(forecast: MethodForecast, at: np.ndarray) -> MethodForecast:
    return MethodForecast(forecast.name, forecast.quantiles[at])


def row_weights(rows: EvalRows, edges: np.ndarray, weights: list[float]) -> np.ndarray:
    """Each row's weight: its scale group's."""
    return np.asarray(weights)[scale_group(rows, edges)]


def validation(config: Any, trained: Any, threads: int, seeds: int) -> dict[str, Any]:
    """The weights (and the scale groups' edges), chosen on the validation rows, and every
    method's scores there."""
    data, names, h = trained.data, config.data.targets, config.data.horizon
    rows = validation_rows(config, data)
    assert np.array_equal(rows.pairs, data.val.arrays.pairs), "rows and windows must align"
    scaled = predict_scaled(trained.selected, data.val)
    raw = to_raw(scaled, data.val.arrays, data.target_idx)
    tower = model_forecast("dual tower", rows, raw, trained.selected.config.quantiles)
    anchor = Anchor(NBEATS, list(range(seeds)), h, threads).fit(
        data.panel, data.target_idx, names, data.splits.val[0]
    )
    nbeats = forecast_rows(lambda _: anchor, data.panel, rows, data.target_idx, names, h, "N-BEATS")
    edges = scale_edges(rows)
    single = choose_weights(rows, tower, nbeats, np.array([]), names)
    by_scale = choose_weights(rows, tower, nbeats, edges, names)
    methods = {
        "dual tower (as selected)": tower.quantiles,
        "N-BEATS": nbeats.quantiles,
        f"blend, w = {single[0]}": blend(tower, nbeats, single[0]),
        f"blend by scale, w = {by_scale}": blend(tower, nbeats, row_weights(rows, edges, by_scale)),
    }
    table = {n: score(rows, MethodForecast(n, q), names)["overall"] for n, q in methods.items()}
    table["Theta"] = theta_scores(data, rows, names)
    chosen = {"single": single, "by_scale": by_scale, "edges": edges.tolist()}
    return {"validation": table, "weights": chosen, "validation_rows": len(rows)}


def test_read(config: Any, trained: Any, anchor: Anchor, weights: dict[str, Any]) -> dict[str, Any]:
    """Every method on the test rows, read once, blended with ``weights`` from validation."""
    data, names, h = trained.data, config.data.targets, config.data.horizon
    backtest = run_backtest([trained.model], config, data, OUT / "backtest", progress=False)
    rows, panel, idx = backtest.rows, data.panel, data.target_idx
    anchor.fit(panel, idx, names, data.splits.test[0])
    nbeats = forecast_rows(lambda _: anchor, panel, rows, idx, names, h, name="N-BEATS")
    tower = backtest.forecasts["dual tower"]
    single = weights["single"][0]
    by_scale = row_weights(rows, np.asarray(weights["edges"]), weights["by_scale"])
    methods = {
        "dual tower": tower,
        "N-BEATS": nbeats,
        "blend": MethodForecast("blend", blend(tower, nbeats, single)),
        "blend by scale": MethodForecast("blend by scale", blend(tower, nbeats, by_scale)),
        "Theta": backtest.forecasts["Theta"],
    }
    return compare(rows, methods, names)


def report(result: dict[str, Any], names: list[str]) -> None:
    keys = ["mase", "pinball", "mae", "coverage"]
    body = [[n, *(f"{s[k]:.4g}" for k in keys)] for n, s in result["validation"].items()]
    print(markdown(["method (validation)", *keys], body) + "\n")
    print_test(result, names)
    minutes = result["seconds"] / 60
    print(f"\nweights: {result['weights']}; {result['rows']} test rows; {minutes:.1f} min")


def main() -> None:
    args = parse_args(doc=__doc__)
    version = load_neuralforecast("forecast_blend")
    started, facts = time.perf_counter(), run_facts()
    config, trained = train_dual_tower(args.config, OUT)
    chosen = validation(config, trained, args.threads, args.seeds)
    print(f"weights chosen on validation: {chosen['weights']}")
    anchor = Anchor(NBEATS, list(range(args.seeds)), config.data.horizon, args.threads)
    result = {
        **facts,
        "neuralforecast": version,
        "nbeats": f"{NBEATS.label}, mean of {args.seeds} seed(s)",
        **chosen,
        **test_read(config, trained, anchor, chosen["weights"]),
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(ROOT / "runs" / "bench" / "forecast-blend.json", result)
    report(result, config.data.targets)


if __name__ == "__main__":
    main()

"""Simple reference forecasts on the forecast recipe's *validation* rows (never the test ones).

    .venv/bin/python benchmarks/forecast_references.py [--config configs/forecast/full.yaml] [--back MONTHS]

Prints the overall MASE of the Naive forecast, of the mean / median of the last k months
(k = 2, 3, 6, 12), of statsforecast's Theta (the recipes' base; seconds) and of the rest of its
Theta family (OptimizedTheta, DynamicTheta, DynamicOptimizedTheta: candidates for the base) on
the validation cutoffs, scored like the backtest: the yardstick the recipe's settings were
chosen against (BENCHMARKS.md, "## Forecast: what the table shows"). ``--back MONTHS`` moves
every split that many months back, to see whether a ranking holds at an earlier origin (as
``benchmarks/forecast_variants.py --inner --back`` does; with 12 months, the cutoffs it scores
are the same as there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from towerkit.forecast.backtest import MethodForecast, baseline_forecasts, build_rows, score
from towerkit.forecast.baselines import THETA_VARIANTS
from towerkit.forecast.data import table_path
from towerkit.forecast.dataset import read_panel
from towerkit.forecast.recipe import default_config_path, load_recipe
from towerkit.forecast.windows import make_splits, window_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--back", type=int, default=0, help="months to move every split back")
    args = parser.parse_args()
    if args.back < 0:
        parser.error(f"--back: expected months >= 0, got {args.back}")
    c = load_recipe(args.config).data
    panel = read_panel(table_path(c), c.repos_limit)
    splits = make_splits(
        panel.n_months - args.back, c.horizon, c.n_val_cutoffs, c.n_test_cutoffs, c.min_history
    )
    pairs = window_index(panel, splits.val, c.min_history, c.horizon)
    rows = build_rows(panel, pairs, panel.target_indices(c.targets), c.horizon)
    cutoffs = f"{panel.label(splits.val[0])}..{panel.label(splits.val[-1])}"

    def mase(point: np.ndarray) -> float:
        flat = np.repeat(point[:, None, None], c.horizon, axis=1).repeat(3, axis=2)
        return score(rows, MethodForecast("reference", flat), c.targets)["overall"]["mase"]

    print(f"validation rows: {len(rows)} (cutoffs {cutoffs})")
    print(f"Naive: {mase(np.array([h[-1] for h in rows.histories])):.4f}")
    for k in (2, 3, 6, 12):
        mean = mase(np.array([h[-k:].mean() for h in rows.histories]))
        median = mase(np.array([np.median(h[-k:]) for h in rows.histories]))
        print(f"last {k} months: mean {mean:.4f}, median {median:.4f}")
    for method in ("Theta", *THETA_VARIANTS):
        found, seconds = baseline_forecasts(panel, rows, [method], c.horizon)
        scores = score(rows, found[method], c.targets)["overall"]
        print(f"{method}: {scores['mase']:.4f} (pinball {scores['pinball']:.3f}, {seconds:.0f} s)")


if __name__ == "__main__":
    main()

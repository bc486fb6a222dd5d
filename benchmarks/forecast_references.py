"""Simple reference forecasts on the forecast recipe's *validation* rows (never the test ones).

    .venv/bin/python benchmarks/forecast_references.py [--config configs/forecast/full.yaml]

Prints the overall MASE of the Naive forecast, of the mean / median of the last k months
(k = 2, 3, 6, 12) and of statsforecast's Theta (the recipes' base; seconds) on the validation
cutoffs, scored like the backtest: the yardstick the recipe's settings were chosen against
(BENCHMARKS.md, "## Forecast: what the table shows").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from towerkit.forecast.backtest import MethodForecast, baseline_forecasts, build_rows, score
from towerkit.forecast.data import table_path
from towerkit.forecast.dataset import read_panel
from towerkit.forecast.recipe import default_config_path, load_recipe
from towerkit.forecast.windows import make_splits, window_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    c = load_recipe(parser.parse_args().config).data
    panel = read_panel(table_path(c), c.repos_limit)
    splits = make_splits(
        panel.n_months, c.horizon, c.n_val_cutoffs, c.n_test_cutoffs, c.min_history
    )
    pairs = window_index(panel, splits.val, c.min_history, c.horizon)
    rows = build_rows(panel, pairs, panel.target_indices(c.targets), c.horizon)

    def mase(point: np.ndarray) -> float:
        flat = np.repeat(point[:, None, None], c.horizon, axis=1).repeat(3, axis=2)
        return score(rows, MethodForecast("reference", flat), c.targets)["overall"]["mase"]

    print(f"validation rows: {len(rows)}")
    print(f"Naive: {mase(np.array([h[-1] for h in rows.histories])):.4f}")
    for k in (2, 3, 6, 12):
        mean = mase(np.array([h[-k:].mean() for h in rows.histories]))
        median = mase(np.array([np.median(h[-k:]) for h in rows.histories]))
        print(f"last {k} months: mean {mean:.4f}, median {median:.4f}")
    theta, _ = baseline_forecasts(panel, rows, ["Theta"], c.horizon)
    print(f"Theta: {score(rows, theta['Theta'], c.targets)['overall']['mase']:.4f}")


if __name__ == "__main__":
    main()

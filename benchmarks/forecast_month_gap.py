"""How one month of the OpenDigger corpus compares with the months around it, per target: the
median over repositories of the month's value over the mean of the month before and after.

    .venv/bin/python benchmarks/forecast_month_gap.py [--month 2021-10]

About 1 in an ordinary month. 2021-10 is the month OpenDigger interpolates and keeps the raw
value of under ``2021-10-raw``, which #6 asks to use; the other months of 2021 are printed beside
it for comparison. Reads the table `towerkit forecast prepare` writes (prepared here if missing).
"""

from __future__ import annotations

import argparse

import numpy as np

from towerkit.forecast.data import prepare_table, table_path
from towerkit.forecast.dataset import read_panel
from towerkit.forecast.parse import month_index, month_label
from towerkit.forecast.recipe import default_config_path, load_recipe


def neighbour_ratio(values: np.ndarray, month: int) -> float:
    """Median over repositories of values[:, month] / mean(values[:, month +- 1])."""
    around = values[:, [month - 1, month + 1]].mean(axis=1)
    here = values[:, month]
    ok = np.isfinite(here) & np.isfinite(around) & (around > 0)
    return float(np.median(here[ok] / around[ok]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--month", default="2021-10")
    args = parser.parse_args()
    config = load_recipe(default_config_path("full")).data
    path = table_path(config)
    if not path.is_file():
        path, _ = prepare_table(config, progress=False)
    panel = read_panel(path)
    wanted = month_index(args.month)
    year = [m for m in range(wanted - wanted % 12, wanted - wanted % 12 + 12)]
    months = [m for m in year if m != wanted and 0 < m - panel.month0 < panel.end]
    print(f"| target | {args.month} | other months of {wanted // 12} (min..max) |")
    print("|---|---:|---:|")
    for target in config.targets:
        values = panel.values[:, :, panel.features.index(target)]
        gap = neighbour_ratio(values, wanted - panel.month0)
        others = [neighbour_ratio(values, m - panel.month0) for m in months]
        print(f"| {target} | {gap:.2f} | {min(others):.2f}..{max(others):.2f} |")
    print(f"\nother months: {', '.join(month_label(m) for m in months)}")


if __name__ == "__main__":
    main()

"""What the forecast anchors share (``forecast_mlforecast.py``, ``forecast_neuralforecast.py``).

Each anchor is a forecaster of another family, set up on the validation cutoffs and read once
on the test cutoffs beside the full recipe's dual tower and Theta, trained and fitted in the
same run. This module holds the parts that do not depend on the family: every series of the
panel as a long frame up to a cutoff, the forecast of backtest rows from any model with
mlforecast's ``predict(h, new_df)``, the dual tower's training, and the test tables.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from towerkit.core.registry import ModelRegistry
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    baseline_forecasts,
    build_rows,
    by_scale,
    mase_ratio,
    score,
)
from towerkit.forecast.dataset import Panel
from towerkit.forecast.recipe import load_recipe, train
from towerkit.forecast.windows import window_index

LEVELS = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
KEYS = ["mase", "smape", "mae", "pinball", "coverage"]


def long_frame(panel: Panel, target_idx: list[int], names: list[str], end: int) -> pd.DataFrame:
    """Every (repository, target) series from its first month to grid position ``end``; a series
    with a missing metric file (NaN) or under 2 months is left out, as the backtest leaves out
    its rows."""
    stamps = pd.date_range(panel.label(0) + "-01", periods=panel.n_months, freq="MS")
    parts = []
    for r in range(len(panel.repos)):
        start = int(panel.first[r])
        if end - start + 1 < 2:
            continue
        for t, feature in enumerate(target_idx):
            y = panel.values[r, start : end + 1, feature]
            if np.isnan(y).any():
                continue
            frame = pd.DataFrame({"ds": stamps[start : end + 1], "y": y})
            frame["unique_id"], frame["metric"] = f"{r}:{t}", names[t]
            parts.append(frame)
    df = pd.concat(parts, ignore_index=True)
    df["metric"] = pd.Categorical(df["metric"], categories=names)
    return df[["unique_id", "ds", "y", "metric"]]


def forecast_rows(
    model_at: Callable[[int], Any],
    panel: Panel,
    rows: EvalRows,
    target_idx: list[int],
    names: list[str],
    h: int,
    name: str,
) -> MethodForecast:
    """``model_at(cutoff)``'s (p10, p50, p90) for every row: at each cutoff, from each series'
    history up to that cutoff (``new_df``), so nothing after a cutoff reaches its forecast. Any
    model with mlforecast's ``predict(h=, new_df=)`` returning p10, p50 and p90 columns will do."""
    out = np.full((len(rows), h, 3), np.nan)
    cutoffs = rows.cutoffs()
    for cutoff in np.unique(cutoffs):
        history = long_frame(panel, target_idx, names, int(cutoff))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = model_at(int(cutoff)).predict(h=h, new_df=history)
        found = found.sort_values(["unique_id", "ds"])
        by_id = {
            uid: group[list(LEVELS)].to_numpy(dtype=np.float64)
            for uid, group in found.groupby("unique_id", sort=False)
        }
        for i in np.flatnonzero(cutoffs == cutoff):
            repo = int(rows.pairs[rows.window[i], 0])
            out[i] = by_id[f"{repo}:{int(rows.target[i])}"]
    # quantiles may cross (fitted apart, or averaged); counts and scores are >= 0
    return MethodForecast(name, np.clip(np.sort(out, axis=-1), 0.0, None))


def train_dual_tower(config_path: Path, out: Path) -> tuple[Any, Any]:
    """The full recipe's dual tower, trained into ``out`` with a private registry; its backtest
    will compare with Theta alone (no ablations, no AutoARIMA sample)."""
    overrides = ["eval.baselines=[Theta]", "eval.ablations=false", "eval.sample_size=0"]
    config = load_recipe(config_path, overrides)
    config.trainer.progress = False
    registry = ModelRegistry(out / "registry.db")
    return config, train(config, registry=registry, runs_root=out, progress=False)


def validation_rows(config: Any, data: Any) -> EvalRows:
    """The rows of the validation cutoffs, where an anchor's settings are chosen: none of their
    target months reaches the first test cutoff."""
    panel, splits, h = data.panel, data.splits, config.data.horizon
    pairs = window_index(panel, splits.val, config.data.min_history, h)
    assert pairs[:, 1].max() + h <= min(splits.test), "a validation truth reaches the test"
    return build_rows(panel, pairs, data.target_idx, h)


def theta_scores(data: Any, rows: EvalRows, names: list[str]) -> dict[str, float]:
    """Theta's overall scores on ``rows``: the reference beside an anchor's validation table."""
    h = rows.truth.shape[1]
    theta, _ = baseline_forecasts(data.panel, rows, ["Theta"], h)
    return score(rows, theta["Theta"], names)["overall"]


def run_facts() -> dict[str, str]:
    """When and where: the start of a benchmark's JSON."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }


def compare(rows: EvalRows, methods: dict[str, MethodForecast], names: list[str]) -> dict[str, Any]:
    """Every method's scores on the test rows and its MASE over Theta's (with the bootstrap
    interval over repositories that ``evaluate`` uses)."""
    scores = {n: score(rows, f, names) for n, f in methods.items()}
    theta = methods["Theta"]
    ratios = {n: mase_ratio(rows, f, theta) for n, f in methods.items() if n != "Theta"}
    return {
        "test": {n: s["overall"] for n, s in scores.items()},
        "per_target": {n: {t: s[t]["mase"] for t in names} for n, s in scores.items()},
        "ratio_to_theta": {n: str(r) for n, r in ratios.items()},
        "by_scale": {n: by_scale(rows, f) for n, f in methods.items()},
        "rows": len(rows),
    }


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in body)])


def print_test(result: dict[str, Any], names: list[str]) -> None:
    """The test tables of :func:`compare`'s result: overall, MASE per target, then MASE and MAE
    by the series' scale."""
    ratios = result["ratio_to_theta"]
    body = [
        [n, *(f"{s[k]:.4g}" for k in KEYS), ratios.get(n, "1")] for n, s in result["test"].items()
    ]
    print(markdown(["method (test)", *KEYS, "MASE / Theta"], body) + "\n")
    per_target = result["per_target"]
    body = [[t, *(f"{per_target[n][t]:.3f}" for n in per_target)] for t in names]
    print(markdown(["target (test MASE)", *per_target], body) + "\n")
    groups = result["by_scale"]
    header = ["series scale (rows)", *(f"{n} MASE / MAE" for n in per_target)]
    first = groups[next(iter(per_target))]
    body = [
        [
            f"{low:.3g}..{high:.3g} ({int(count)})",
            *(f"{groups[n]['mase'][i]:.3f} / {groups[n]['mae'][i]:.4g}" for n in per_target),
        ]
        for i, (low, high, count) in enumerate(
            zip(first["scale_low"], first["scale_high"], first["rows"], strict=True)
        )
    ]
    print(markdown(header, body))

"""PNG plots: backtest MASE per cutoff for one target, and a repository's forecast."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from towerkit.core.io import atomic_path
from towerkit.forecast.backtest import EvalRows, MethodForecast, mase_by_cutoff
from towerkit.forecast.dataset import Panel


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def mase_by_cutoff_png(
    rows: EvalRows,
    forecasts: Mapping[str, MethodForecast],
    target: int,
    name: str,
    panel: Panel,
    path: Path,
) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    for method, forecast in forecasts.items():
        if np.isnan(forecast.quantiles).any():  # scored on a sample only
            continue
        by_cutoff = mase_by_cutoff(rows, forecast, target)
        cutoffs = sorted(by_cutoff)
        style = "-" if method.startswith("dual tower") else "--"
        ax.plot(
            [panel.label(c) for c in cutoffs],
            [by_cutoff[c] for c in cutoffs],
            style,
            marker="o",
            ms=3,
            label=method,
        )
    ax.set_title(f"{name}: MASE per test cutoff (horizon {rows.truth.shape[1]})")
    ax.set_ylabel("MASE")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=7)
    return _save(fig, path)


def mase_by_horizon_png(horizons: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Each method's MASE and p10..p90 coverage per horizon month, side by side."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method, by_h in horizons.items():
        months = range(1, len(by_h["mase"]) + 1)
        style = "-" if method.startswith("dual tower") else "--"
        left.plot(months, by_h["mase"], style, marker="o", ms=3, label=method)
        right.plot(months, by_h["coverage"], style, marker="o", ms=3, label=method)
    left.set_title("MASE per horizon month")
    right.set_title("p10..p90 coverage per horizon month (nominal 0.8)")
    right.axhline(0.8, color="grey", lw=0.8)
    for ax in (left, right):
        ax.set_xlabel("months after the cutoff")
        ax.set_xticks(list(months))
    left.legend(fontsize=7)
    return _save(fig, path)


def band_misses_png(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]], groups: Sequence[str], path: Path
) -> Path:
    """Each method's share of true values below p10 and above p90, per target and overall; a
    calibrated band misses 0.1 on each side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key in zip(axes, ("below_p10", "above_p90"), strict=True):
        for method, by_group in scores.items():
            style = "-" if method.startswith("dual tower") else "--"
            values = [by_group[g][key] for g in groups]
            ax.plot(list(groups), values, style, marker="o", ms=3, label=method)
        ax.axhline(0.1, color="grey", lw=0.8)
        side = "below p10" if key == "below_p10" else "above p90"
        ax.set_title(f"share of true values {side} (nominal 0.1)")
        ax.tick_params(axis="x", rotation=45)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def history_forecast_png(
    panel: Panel,
    repo: int,
    targets: Sequence[int],
    months: Sequence[str],
    forecast: np.ndarray,
    quantiles: Sequence[float],
    path: Path,
    history: int = 36,
) -> Path:
    """History, p50 and the p10..p90 band of each target; forecast is (H, T, Q) raw, NaN for a
    target with no history."""
    lo, mid, hi = quantiles.index(0.1), quantiles.index(0.5), quantiles.index(0.9)
    start = max(int(panel.first[repo]), panel.end - history + 1)
    past = [panel.label(m) for m in range(start, panel.end + 1)]
    fig, axes = plt.subplots(2, (len(targets) + 1) // 2, figsize=(14, 6), squeeze=False)
    for ax, (t, feature) in zip(axes.flat, enumerate(targets), strict=False):
        ax.plot(past, panel.values[repo, start : panel.end + 1, feature], color="black", lw=1)
        ahead = [past[-1], *months]
        last = panel.values[repo, panel.end, feature]
        ax.set_title(panel.features[feature], fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=45)
        if np.isnan(forecast[:, t]).any():  # no history of this metric: nothing to forecast
            ax.text(0.5, 0.5, "no history", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks(past[:: max(1, len(past) // 4)])
            ax.set_yticks([])
            continue
        ax.plot(ahead, [last, *forecast[:, t, mid]], color="tab:blue")
        ax.fill_between(
            ahead,
            [last, *forecast[:, t, lo]],
            [last, *forecast[:, t, hi]],
            alpha=0.3,
            color="tab:blue",
        )
        ax.set_xticks(ahead[-1:] + past[:: max(1, len(past) // 4)])
    fig.suptitle(f"{panel.repos[repo]}: history and forecast (p50, p10..p90)")
    fig.tight_layout()
    return _save(fig, path)

"""Rolling-origin backtest: every method forecasts the same series from the same cutoffs.

A row is one (repository, target, cutoff): its truth over the horizon and its history up to the
cutoff (raw values). Rows whose target file is missing or whose history is constant (MASE's
naive scale would be zero) are left out, for every method alike. Metrics come from
``towerkit.core.metrics.forecasting``; coverage is the share of true values inside p10..p90.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.progress import Progress
from scipy.stats import bootstrap

from towerkit.core.metrics.forecasting import batched_forecast_metrics
from towerkit.forecast.baselines import forecast_cutoff
from towerkit.forecast.dataset import Panel


@dataclass
class EvalRows:
    pairs: np.ndarray  # (N, 2) the test windows (repo, cutoff)
    window: np.ndarray  # (S,) row -> window
    target: np.ndarray  # (S,) row -> target position (0..T-1)
    truth: np.ndarray  # (S, H)
    histories: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.window)

    def cutoffs(self) -> np.ndarray:
        return self.pairs[self.window, 1]


@dataclass
class MethodForecast:
    """Rows' forecasts: ``quantiles`` (S, H, 3) as p10, point (p50 / mean), p90."""

    name: str
    quantiles: np.ndarray

    @property
    def point(self) -> np.ndarray:
        return self.quantiles[..., 1]


def build_rows(panel: Panel, pairs: np.ndarray, targets: Sequence[int], horizon: int) -> EvalRows:
    window, target, truth, histories = [], [], [], []
    for n, (r, c) in enumerate(pairs):
        for t, feature in enumerate(targets):
            history = panel.values[r, panel.first[r] : c + 1, feature]
            future = panel.values[r, c + 1 : c + 1 + horizon, feature]
            if np.isnan(future).any() or np.isnan(history).any() or len(history) < 2:
                continue
            if np.all(history[1:] == history[:-1]):
                continue
            window.append(n)
            target.append(t)
            truth.append(future)
            histories.append(history)
    return EvalRows(
        pairs,
        np.asarray(window),
        np.asarray(target),
        np.asarray(truth).reshape(-1, horizon),
        histories,
    )


def model_forecast(
    name: str, rows: EvalRows, quantiles: np.ndarray, levels: Sequence[float]
) -> MethodForecast:
    """From the model's raw-scale (N, H, T, Q) output; targets are counts/scores >= 0."""
    chosen = [levels.index(0.1), levels.index(0.5), levels.index(0.9)]
    picked = quantiles[rows.window, :, rows.target][..., chosen]
    return MethodForecast(name, np.clip(picked, 0.0, None))


def baseline_forecasts(
    panel: Panel,
    rows: EvalRows,
    names: Sequence[str],
    horizon: int,
    subset: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[dict[str, MethodForecast], float]:
    """statsforecast models on the rows (or only ``subset`` of them; others stay NaN), with a
    bar over the cutoffs (``progress``): AutoETS and AutoARIMA take minutes."""
    chosen = np.arange(len(rows)) if subset is None else subset
    out = {n: np.full((len(rows), horizon, 3), np.nan) for n in names}
    seconds = 0.0
    cutoffs = rows.cutoffs()
    todo = np.unique(cutoffs[chosen])
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"{', '.join(names)} ({len(chosen)} rows)", total=len(todo))
        for cutoff in todo:
            at = chosen[cutoffs[chosen] == cutoff]
            stamp = pd.Timestamp(panel.label(int(cutoff)) + "-01")
            result, took = forecast_cutoff([rows.histories[i] for i in at], names, horizon, stamp)
            seconds += took
            for name in names:
                out[name][at] = np.clip(result[name], 0.0, None)
            bar.advance(task)
    return {n: MethodForecast(n, q) for n, q in out.items()}, seconds


def score(
    rows: EvalRows,
    forecast: MethodForecast,
    target_names: Sequence[str],
    subset: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """``{"overall": metrics, <target>: metrics}``: MASE, sMAPE, MAE, pinball, coverage, and the
    band's misses on each side: the shares of true values below p10 and above p90 (0.1 each for
    a calibrated band; coverage alone hides a band that sits too low or too high)."""
    chosen = np.arange(len(rows)) if subset is None else subset
    groups = {"overall": chosen}
    for t, name in enumerate(target_names):
        groups[name] = chosen[rows.target[chosen] == t]
    report = {}
    for group, idx in groups.items():
        if len(idx) == 0:
            continue
        q = forecast.quantiles[idx]
        truth = rows.truth[idx]
        metrics = batched_forecast_metrics(
            truth,
            q[..., 1],
            [rows.histories[i] for i in idx],
            m=1,
            quantile_pred=q,
            quantiles=[0.1, 0.5, 0.9],
        )
        metrics["below_p10"] = float(np.mean(truth < q[..., 0]))
        metrics["above_p90"] = float(np.mean(truth > q[..., 2]))
        metrics["coverage"] = float(np.mean((truth >= q[..., 0]) & (truth <= q[..., 2])))
        keys = ("mase", "smape", "mae", "pinball", "coverage", "below_p10", "above_p90")
        report[group] = {k: metrics[k] for k in (*keys, "n_series")}
    return report


def naive_scales(rows: EvalRows, idx: np.ndarray | None = None) -> np.ndarray:
    """MASE's denominator per row: the in-sample mean absolute one-step change."""
    chosen = range(len(rows)) if idx is None else idx
    return np.array([np.abs(np.diff(rows.histories[i])).mean() for i in chosen])


def row_mase(rows: EvalRows, forecast: MethodForecast) -> np.ndarray:
    """(S,) each row's MASE: the point forecast's mean absolute error over the naive scale."""
    errors = np.abs(rows.truth - forecast.point).mean(axis=1)
    return errors / naive_scales(rows)


@dataclass(frozen=True)
class RatioInterval:
    """Overall MASE of a method over a reference's, on the same rows, with its interval."""

    ratio: float
    low: float
    high: float
    level: float
    repositories: int

    def __str__(self) -> str:
        if np.isnan(self.low):
            return f"{self.ratio:.3f} (no interval: {self.repositories} repository)"
        return f"{self.ratio:.3f} ({self.level:.0%} CI {self.low:.3f}..{self.high:.3f})"


def mase_ratio(
    rows: EvalRows,
    forecast: MethodForecast,
    reference: MethodForecast,
    subset: np.ndarray | None = None,
    level: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> RatioInterval:
    """The ratio of overall MASEs and a BCa bootstrap interval that resamples repositories, not
    rows: a repository's targets and cutoffs move together, so rows are not independent."""
    chosen = np.arange(len(rows)) if subset is None else subset
    ours, theirs = row_mase(rows, forecast)[chosen], row_mase(rows, reference)[chosen]
    _, repo = np.unique(rows.pairs[rows.window[chosen], 0], return_inverse=True)
    sums = np.bincount(repo, ours), np.bincount(repo, theirs)  # per repository

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(a.sum(axis=axis) / b.sum(axis=axis))

    value = float(ratio(*sums))
    if len(sums[0]) < 2:  # nothing to resample
        return RatioInterval(value, float("nan"), float("nan"), level, len(sums[0]))
    interval = bootstrap(
        sums, ratio, n_resamples=resamples, paired=True, vectorized=True,
        confidence_level=level, rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return RatioInterval(value, float(interval.low), float(interval.high), level, len(sums[0]))


def per_horizon(rows: EvalRows, forecast: MethodForecast) -> dict[str, list[float]]:
    """Each horizon month's MASE, p10..p90 coverage and misses below / above the band over all
    rows; the mean of the MASEs is the overall MASE (a row's MASE is the mean of its months'
    scaled errors)."""
    scaled = np.abs(rows.truth - forecast.point) / naive_scales(rows)[:, None]
    q = forecast.quantiles
    below, above = rows.truth < q[..., 0], rows.truth > q[..., 2]
    return {
        "mase": scaled.mean(axis=0).tolist(),
        "coverage": (~below & ~above).mean(axis=0).tolist(),
        "below_p10": below.mean(axis=0).tolist(),
        "above_p90": above.mean(axis=0).tolist(),
    }


def by_scale(rows: EvalRows, forecast: MethodForecast, parts: int = 3) -> dict[str, list[float]]:
    """MASE and MAE in ``parts`` equal-count groups of rows, from the smallest series' scale
    (MASE's denominator) to the largest, with each group's scale range and row count. MASE
    weighs every row alike and MAE in counts is led by the large series, so the two can rank
    methods differently; this shows where. The row-weighted mean of the groups' MASEs is the
    overall MASE."""
    scales = naive_scales(rows)
    groups = np.array_split(np.argsort(scales, kind="stable"), max(1, min(parts, len(rows))))
    mase, mae = row_mase(rows, forecast), np.abs(rows.truth - forecast.point).mean(axis=1)
    return {
        "scale_low": [float(scales[g].min()) for g in groups],
        "scale_high": [float(scales[g].max()) for g in groups],
        "rows": [float(len(g)) for g in groups],
        "mase": [float(mase[g].mean()) for g in groups],
        "mae": [float(mae[g].mean()) for g in groups],
    }


def mase_by_cutoff(
    rows: EvalRows, forecast: MethodForecast, target: int | None = None
) -> dict[int, float]:
    """Mean MASE per cutoff for one target (for the per-target plot), or over every target."""
    per_row = row_mase(rows, forecast)
    cutoffs = rows.cutoffs()
    out = {}
    for cutoff in np.unique(cutoffs):
        chosen = cutoffs == cutoff
        if target is not None:
            chosen &= rows.target == target
        idx = np.flatnonzero(chosen)
        if len(idx):
            out[int(cutoff)] = float(per_row[idx].mean())
    return out


def mase_by_repository(rows: EvalRows, forecast: MethodForecast) -> dict[int, tuple[int, float]]:
    """Each repository's row count and mean MASE over its rows (every target and cutoff); the
    row-weighted mean over repositories is the overall MASE."""
    repos = rows.pairs[rows.window, 0]
    found, index, counts = np.unique(repos, return_inverse=True, return_counts=True)
    sums = np.bincount(index, row_mase(rows, forecast))
    return {
        int(r): (int(n), float(total / n)) for r, n, total in zip(found, counts, sums, strict=True)
    }

"""``predict``: the next months of one or many repositories with p10..p90 (table, JSON, CSV, PNG)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from towerkit.core.errors import TowerkitError
from towerkit.forecast.data import ForecastData, SplitWindows, to_raw
from towerkit.forecast.dataset import Panel
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.plots import history_forecast_png


@dataclass
class RepoForecast:
    repo: str
    last_month: str  # the corpus's last month: the forecast's cutoff
    months: list[str]
    targets: list[str]
    quantiles: list[float]
    raw: np.ndarray  # (H, T, Q) in the metrics' own units; NaN for a target with no history
    png: Path | None = None
    recent: np.ndarray | None = None  # (H, T): the last H known months, to compare with

    def change(self, target: int) -> float:
        """The p50's sum over the horizon against the last ``H`` months' sum, minus 1 (0.25:
        a quarter more); NaN without history or where those months sum to 0."""
        if self.recent is None or not self.known(target):
            return float("nan")
        before = float(np.sum(self.recent[:, target]))
        after = float(np.sum(self.raw[:, target, self.quantiles.index(0.5)]))
        return after / before - 1 if before > 0 and np.isfinite(before) else float("nan")

    def known(self, target: int) -> bool:
        return bool(np.isfinite(self.raw[:, target]).all())

    def cell(self, horizon: int, target: int) -> str:
        """``p50 [p10, p90]`` of one month, or ``no history``."""
        if not self.known(target):
            return "no history"
        levels = self.quantiles
        values = self.raw[horizon, target]
        lo, mid, hi = (values[levels.index(q)] for q in (0.1, 0.5, 0.9))
        return f"{mid:.1f} [{lo:.1f}, {hi:.1f}]"

    def change_cell(self, target: int) -> str:
        """The change as ``+12%``; ``no history``, or ``n/a`` where the last months were 0."""
        change = self.change(target)
        if not self.known(target):
            return "no history"
        return "n/a" if np.isnan(change) else f"{change:+.0%}"

    def to_json(self, model: str) -> dict[str, Any]:
        """Per target ``{"p10": [...], "p50": [...], "p90": [...]}`` (one value a month), or
        ``null`` where the repository has no history of that metric."""
        per_target: dict[str, dict[str, list[float]] | None] = {}
        for t, name in enumerate(self.targets):
            per_target[name] = (
                {
                    f"p{round(q * 100)}": [float(v) for v in self.raw[:, t, k]]
                    for k, q in enumerate(self.quantiles)
                }
                if self.known(t)
                else None
            )
        return {
            "repo": self.repo,
            "model": model,
            "cutoff": self.last_month,
            "months": self.months,
            "forecast": per_target,
        }


def find_repo(panel: Panel, repo: str, repos_limit: int = 0) -> int:
    """The panel row of ``owner/name``; a miss names the closest names the data has."""
    if repo in panel.repos:
        return panel.repos.index(repo)
    by_lower = {name.lower(): name for name in panel.repos}
    close = (
        [repo.lower()]
        if repo.lower() in by_lower
        else difflib.get_close_matches(repo.lower(), list(by_lower), n=3, cutoff=0.6)
    )
    hint = (
        f"did you mean {', '.join(by_lower[c] for c in close)}?"
        if close
        else f"e.g. {panel.repos[0]}"
    )
    if repos_limit > 0:
        hint += f" (the model's recipe reads only the first {repos_limit}: data.repos_limit)"
    raise TowerkitError(f"--repo {repo!r}: not in the dataset; {hint}")


def forecastable(data: ForecastData) -> list[str]:
    """The repositories with at least ``min_history`` months by the corpus's last month."""
    p = data.panel
    return [
        name for r, name in enumerate(p.repos) if p.end - p.first[r] + 1 >= data.config.min_history
    ]


def recalibration_cutoffs(model: DualTowerForecaster, data: ForecastData, count: int) -> list[int]:
    """The cutoffs a forecast from the corpus's last month recalibrates from (none: as trained):
    the latest ``count`` after the model's training whose target months are all known."""
    from towerkit.forecast.recalibration import first_unseen, pool_cutoffs

    unseen = first_unseen(model, data)
    return pool_cutoffs([data.panel.end], unseen, data.config.horizon, count)


def training_note(model: DualTowerForecaster, data: ForecastData) -> str:
    """How far the forecast's cutoff is from the model's last training month, where known: a
    model applied to a newer corpus (``--corpus``) ages, and the user should see by how much."""
    label = model.config.trained_through
    if label is None:
        return "model: its last training month is not recorded (trained before it was)"
    from towerkit.forecast.parse import month_index

    months = data.panel.month0 + data.panel.end - month_index(label)
    return f"model: trained through {label}, {months} months before this forecast's cutoff"


def recalibration_note(model: DualTowerForecaster, data: ForecastData, count: int) -> str:
    """One line on how the forecast's median and band were (or were not) recalibrated."""
    if count < 1:
        return "recalibration: off (the recipe's recalibrate is 0)"
    if model.config.trained_through is None:
        return "recalibration: skipped (the model does not record its last training month)"
    from towerkit.forecast.recalibration import MIN_WINDOWS

    cutoffs = recalibration_cutoffs(model, data, count)
    if not cutoffs:
        return (
            f"recalibration: none (no cutoff after the model's training, through "
            f"{model.config.trained_through}, has known outcomes yet)"
        )
    p = data.panel
    span = f"cutoffs {p.label(cutoffs[0])}..{p.label(cutoffs[-1])}"
    windows = _pool_size(data, cutoffs)
    if windows < MIN_WINDOWS:
        return (
            f"recalibration: none (only {windows} windows at {span}; it needs {MIN_WINDOWS}, "
            "e.g. a corpus of more repositories)"
        )
    return (
        f"recalibration: median and band from the model's errors on {windows} windows at "
        f"{span} (trained through {model.config.trained_through})"
    )


def _pool_size(data: ForecastData, cutoffs: list[int]) -> int:
    from towerkit.forecast.windows import window_index

    c = data.config
    return len(window_index(data.panel, cutoffs, c.min_history, c.horizon))


def forecast_repos(
    model: DualTowerForecaster, data: ForecastData, repos: Sequence[str], recalibrate: int = 0
) -> list[RepoForecast]:
    """The next ``horizon`` months after the corpus's end of each repository, in one batch,
    recalibrated from the model's errors at the latest ``recalibrate`` known cutoffs (0: as
    trained). A target whose metric is unknown at the last month (OpenDigger has no file for
    it, e.g. issues of a repository that tracks them elsewhere) is NaN, not a forecast of 0."""
    from towerkit.forecast.data import pair_windows, text_for
    from towerkit.forecast.recalibration import recalibrated

    p, c = data.panel, data.config
    rows = [find_repo(p, repo, c.repos_limit) for repo in repos]
    for repo, r in zip(repos, rows, strict=True):
        if p.end - p.first[r] + 1 < c.min_history:
            raise TowerkitError(f"--repo {repo!r}: fewer than {c.min_history} months of history")
    if not rows:
        return []
    pairs = np.array([[r, p.end] for r in rows])
    arrays = pair_windows(p, pairs, c, data.target_idx, data.base)
    window = SplitWindows(arrays, text_for(p, data.embeddings, pairs, progress=False))
    scaled = recalibrated(model, data, window, recalibrate)
    raw = np.clip(to_raw(scaled, arrays, data.target_idx), 0, None)
    months = [p.label(p.end + h + 1) for h in range(raw.shape[1])]
    targets = [p.features[i] for i in data.target_idx]
    recent = p.values[:, p.end - raw.shape[1] + 1 : p.end + 1][:, :, data.target_idx]
    out = []
    for i, r in enumerate(rows):
        raw[i][:, np.isnan(p.values[r, p.end, data.target_idx])] = np.nan
        quantiles = list(model.config.quantiles)
        args = (p.repos[r], p.label(p.end), months, targets, quantiles, raw[i])
        out.append(RepoForecast(*args, recent=recent[r]))
    return out


_PANEL: list[Panel] = []  # a plot worker's copy of the panel, sent once by its initializer
PLOTS_PER_JOB = 8  # fewer plots than this per process do not repay a process's start


def _plot_worker_start(panel: Panel) -> None:
    _PANEL.append(panel)


def _plot_in_worker(args: tuple[Any, ...]) -> Path:
    return history_forecast_png(_PANEL[0], *args)


def plot_forecasts(
    data: ForecastData,
    forecasts: Sequence[RepoForecast],
    folder: Path,
    on_done: Callable[[], None] = lambda: None,
) -> None:
    """A PNG per forecast, ``folder/<owner>_<name>.png``, drawn by TOWERKIT_FORECAST_JOBS
    processes (matplotlib holds the GIL, so threads would not help); ``on_done`` after each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from towerkit.forecast.baselines import configured_jobs

    p = data.panel
    tasks = [
        (f, (p.repos.index(f.repo), data.target_idx, f.months, f.raw, f.quantiles, folder / name))
        for f, name in ((f, f"{f.repo.replace('/', '_')}.png") for f in forecasts)
    ]
    jobs = min(configured_jobs(), len(tasks) // PLOTS_PER_JOB)
    if jobs <= 1:
        for f, args in tasks:
            f.png = history_forecast_png(p, *args)
            on_done()
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(jobs, context, _plot_worker_start, (p,)) as pool:
        futures = {pool.submit(_plot_in_worker, args): f for f, args in tasks}
        for future in as_completed(futures):
            futures[future].png = future.result()
            on_done()


def plot_forecast(data: ForecastData, forecast: RepoForecast, out: Path) -> Path:
    """The PNG of the repository's history, p50 and p10..p90 band at ``out``."""
    p = data.panel
    r = p.repos.index(forecast.repo)
    args = (forecast.months, forecast.raw, forecast.quantiles, out)
    forecast.png = history_forecast_png(p, r, data.target_idx, *args)
    return forecast.png


def forecast_repo(
    model: DualTowerForecaster, data: ForecastData, repo: str, out: Path, recalibrate: int = 0
) -> RepoForecast:
    """One repository's forecast (:func:`forecast_repos`) and its PNG at ``out``."""
    (forecast,) = forecast_repos(model, data, [repo], recalibrate)
    plot_forecast(data, forecast, out)
    return forecast


def forecasts_frame(forecasts: Sequence[RepoForecast], model: str) -> pd.DataFrame:
    """One row per repository, target and month: ``p10``, ``p50``, ``p90`` (empty where the
    repository has no history of the target) and ``change``, the p50's sum over the horizon
    against the last ``horizon`` known months' (the same for each month of a target)."""
    rows = []
    for f in forecasts:
        for t, target in enumerate(f.targets):
            change = f.change(t)
            for h, month in enumerate(f.months):
                levels = {f"p{round(q * 100)}": f.raw[h, t, k] for k, q in enumerate(f.quantiles)}
                rows.append(
                    {"repo": f.repo, "model": model, "cutoff": f.last_month, "target": target}
                    | {"month": month, **levels, "change": change}
                )
    return pd.DataFrame(rows)

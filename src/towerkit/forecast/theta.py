"""Theta's forecast of every window: the dual tower's base with ``model.base: theta``.

For a window (repository, cutoff) and a target, statsforecast's Theta is fitted on the series'
history from the repository's first month up to the cutoff, never later (the leakage rule),
and forecasts the horizon. That is the history the backtest's Theta baseline sees, so a test
window's base is exactly the baseline's point forecast. Every window of a call goes to
statsforecast in one batch; the result is cached on disk, keyed by a fingerprint of the data
and of the method, so each split is computed once.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from towerkit.core.io import atomic_path
from towerkit.forecast.baselines import forecast_jobs, make_models
from towerkit.forecast.dataset import Panel

SEASON = 12
MIN_MONTHS = 2  # statsforecast needs two points; shorter histories fall back to the last value


def _histories(
    panel: Panel, pairs: np.ndarray, targets: Sequence[int]
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Each (window, target)'s known history up to the window's cutoff, and its slot."""
    histories, slots = [], []
    for i, (r, c) in enumerate(pairs):
        for t, feature in enumerate(targets):
            history = panel.values[r, panel.first[r] : c + 1, feature]
            if len(history) >= MIN_MONTHS and not np.isnan(history).any():
                histories.append(history)
                slots.append((i, t))
    return histories, slots


def compute_theta(
    panel: Panel, pairs: np.ndarray, targets: Sequence[int], horizon: int
) -> np.ndarray:
    """(N, H, T) raw Theta forecasts; the last known value where Theta has none; NaN where the
    target's history is unknown."""
    return compute_method(panel, pairs, targets, horizon, "Theta")


def compute_method(
    panel: Panel, pairs: np.ndarray, targets: Sequence[int], horizon: int, method: str
) -> np.ndarray:
    """(N, H, T) raw forecasts of one statsforecast model (a name of
    :func:`~towerkit.forecast.baselines.make_models`), each fitted on the history up to the
    window's cutoff; the last known value where it has none; NaN where the history is unknown."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    out = np.full((len(pairs), horizon, len(targets)), np.nan)
    histories, slots = _histories(panel, pairs, targets)
    if not histories:
        return out
    grid = pd.date_range(start=panel.label(0) + "-01", periods=panel.n_months, freq="MS")
    ends = np.array([pairs[i, 1] for i, _ in slots])
    frames = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(len(histories)), [len(h) for h in histories]),
            "ds": np.concatenate(
                [grid[e - len(h) + 1 : e + 1] for h, e in zip(histories, ends, strict=True)]
            ),
            "y": np.concatenate(histories).astype(np.float64),
        }
    )
    engine = StatsForecast(
        models=make_models([method], SEASON),
        freq="MS",
        n_jobs=forecast_jobs(len(histories)),
        fallback_model=Naive(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # flat series' autocorrelation is 0 / 0
        found = pd.DataFrame(engine.forecast(df=frames, h=horizon))
    found = found.sort_values(["unique_id", "ds"])
    values = found[method].to_numpy(dtype=np.float64).reshape(len(histories), horizon)
    last = np.array([h[-1] for h in histories])[:, None]
    values = np.where(np.isfinite(values), values, last)
    rows, cols = np.asarray(slots).T
    out[rows, :, cols] = values
    return out


def panel_fingerprint(
    panel: Panel,
    targets: Sequence[int],
    horizon: int,
    method: str,
    pairs: np.ndarray | None = None,
) -> str:
    """Hash of everything ``method``'s forecasts depend on: the data, the method and, where
    given, the windows (a cache per batch of windows; without, a cache keyed per window)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(panel.values[:, :, list(targets)]).tobytes())
    digest.update(np.ascontiguousarray(panel.first).tobytes())
    digest.update("\n".join(panel.repos).encode())
    if pairs is not None:
        digest.update(np.ascontiguousarray(pairs, dtype=np.int64).tobytes())
    stamp = f"{method}(season_length={SEASON}) statsforecast {version('statsforecast')}"
    digest.update(f"{panel.month0} {horizon} {stamp}".encode())
    return digest.hexdigest()[:20]


def fingerprint(panel: Panel, pairs: np.ndarray, targets: Sequence[int], horizon: int) -> str:
    """Hash of everything a batch of windows' Theta forecasts depend on."""
    return panel_fingerprint(panel, targets, horizon, "Theta", pairs)


def theta_forecasts(
    panel: Panel,
    pairs: np.ndarray,
    targets: Sequence[int],
    horizon: int,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """:func:`compute_theta`, read from / written to ``cache_dir`` when one is given."""
    if cache_dir is None:
        return compute_theta(panel, pairs, targets, horizon)
    path = cache_dir / f"theta-{fingerprint(panel, pairs, targets, horizon)}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return np.asarray(stored["theta"])
    started = time.perf_counter()
    theta = compute_theta(panel, pairs, targets, horizon)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, theta=theta, seconds=time.perf_counter() - started)
    return theta

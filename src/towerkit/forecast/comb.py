"""The comb base (``model.base: comb``): M4's "comb", the median of several classical forecasts.

For a window (repository, cutoff) and a target, each member (statsforecast's Theta, AutoETS and
Naive) is fitted on the series' history up to the cutoff, never later (the leakage rule), and
forecasts the horizon; the comb is their median. The model gets the comb as its anchor and every
member as an input, so it can weigh them per window (as FFORMA does).

AutoETS is slow (up to ~64 ms a series on one core for long histories, ~25 minutes for the full
recipe's training and validation windows on 2 cores), so a member's forecasts are cached per window rather than per batch: one file per
member and data fingerprint holds every (repository, cutoff) computed so far, is filled in
chunks with a progress bar and written after each chunk, so an interrupted run resumes and
another split (validation, test, the inner splits of ``forecast_variants.py --inner``) only
computes the windows it adds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from towerkit.core.io import atomic_path
from towerkit.forecast.dataset import Panel
from towerkit.forecast.model import COMB_MEMBERS
from towerkit.forecast.theta import compute_method, panel_fingerprint, theta_forecasts

CHUNK = 1000  # windows per statsforecast batch and cache write


def member_forecasts(
    panel: Panel,
    pairs: np.ndarray,
    targets: Sequence[int],
    horizon: int,
    method: str,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(N, H, T) raw forecasts of ``method`` for these windows (see
    :func:`~towerkit.forecast.theta.compute_method`), through the per-window cache."""
    n_months, shape = panel.n_months, (horizon, len(targets))
    store = np.full((len(panel.repos), n_months, *shape), np.nan)
    done = np.zeros((len(panel.repos), n_months), dtype=bool)
    path = None
    if cache_dir is not None:
        fp = panel_fingerprint(panel, targets, horizon, method)
        path = cache_dir / f"{method.lower()}-{fp}.npz"
        if path.is_file():
            with np.load(path) as stored:
                store, done = np.array(stored["forecasts"]), np.array(stored["done"])
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    todo = np.unique(pairs[~done[pairs[:, 0], pairs[:, 1]]], axis=0)
    with Progress(disable=not progress or len(todo) < CHUNK) as bar:
        task = bar.add_task(f"{method} forecasts of {len(todo)} windows", total=len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # statsforecast's warnings on degenerate series
                found = compute_method(panel, chunk, targets, horizon, method)
            store[chunk[:, 0], chunk[:, 1]] = found
            done[chunk[:, 0], chunk[:, 1]] = True
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                    np.savez(handle, forecasts=store, done=done)
            bar.advance(task, len(chunk))
    return store[pairs[:, 0], pairs[:, 1]]


def comb_channels(
    panel: Panel,
    pairs: np.ndarray,
    targets: Sequence[int],
    horizon: int,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(N, H, T, 1 + members) raw forecasts: the comb (the members' median), then each member
    in :data:`~towerkit.forecast.model.COMB_MEMBERS` order; NaN where the history is unknown."""
    members = []
    for method in COMB_MEMBERS:
        if method == "Theta":  # shares the Theta base's cache
            found = theta_forecasts(panel, pairs, targets, horizon, cache_dir)
        else:
            found = member_forecasts(panel, pairs, targets, horizon, method, cache_dir, progress)
        members.append(found)
    stacked = np.stack(members, axis=-1)
    return np.concatenate([np.median(stacked, axis=-1, keepdims=True), stacked], axis=-1)

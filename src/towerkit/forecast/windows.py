"""Time-only splits, look-back windows and per-series scaling.

A cutoff ``c`` is the last month a forecast may see; its targets are months c+1 .. c+horizon.
Every repository shares the same cutoffs:

- test: the last ``n_test`` cutoffs whose targets are all inside the corpus (rolling origin);
- validation: ``n_val`` cutoffs whose targets all end by the first test cutoff;
- train: every cutoff whose targets all end by the first validation cutoff.

So no window has a target month after the cutoff of the split that follows it, and model
selection (validation) never sees a month the test forecasts from its own cutoff onward.

Scaling is per window and per series, from months up to the window's cutoff only. ``log``:
``z = (slog(x) - mean) / std`` with ``slog(x) = sign(x) log1p(|x|)``; ``naive``:
``z = (x - mean) / s`` with ``s`` the look-back's mean absolute month-to-month change; ``mase``: the same centre, but ``s``
is the mean absolute change over the series' whole history up to the cutoff, which is exactly
MASE's denominator, so the median's pinball loss in scaled space is the row's MASE (up to a
constant). :func:`inverse_scale` undoes each exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.forecast.dataset import Panel

MIN_STD = 0.05  # in log space: a flat look-back must not blow tiny changes up
NAIVE_MIN_SCALE = 0.01
Scaling = Literal["log", "naive", "mase"]


@dataclass(frozen=True)
class Splits:
    """Grid positions of the cutoffs of each split."""

    train: list[int]
    val: list[int]
    test: list[int]
    horizon: int

    def check(self) -> None:
        """Raise if any window's targets cross into the next split (the leakage rule)."""
        if self.val and self.train and max(self.train) + self.horizon > min(self.val):
            raise TowerkitError(
                "split: a training target month is after the first validation cutoff"
            )
        if self.test and self.val and max(self.val) + self.horizon > min(self.test):
            raise TowerkitError("split: a validation target month is after the first test cutoff")


def make_splits(n_months: int, horizon: int, n_val: int, n_test: int, lookback_min: int) -> Splits:
    """Cutoffs on a grid of ``n_months`` months (position n_months - 1 is the corpus's end)."""
    if horizon < 1 or n_val < 1 or n_test < 1:
        raise TowerkitError("split: horizon, n_val_cutoffs and n_test_cutoffs must be >= 1")
    last = n_months - 1 - horizon
    test = list(range(last - n_test + 1, last + 1))
    val_last = test[0] - horizon
    val = list(range(val_last - n_val + 1, val_last + 1))
    train = list(range(lookback_min - 1, val[0] - horizon + 1))
    if not train:
        raise TowerkitError(
            f"split: {n_months} months leave no training cutoff before validation "
            f"({n_test} test + {n_val} validation cutoffs, horizon {horizon})"
        )
    splits = Splits(train, val, test, horizon)
    splits.check()
    return splits


def eligible(panel: Panel, cutoff: int, min_history: int, horizon: int) -> np.ndarray:
    """Repositories with at least ``min_history`` months up to ``cutoff`` and all targets."""
    return (cutoff - panel.first + 1 >= min_history) & (cutoff + horizon <= panel.end)


def window_index(
    panel: Panel, cutoffs: Sequence[int], min_history: int, horizon: int
) -> np.ndarray:
    """(repo, cutoff) pairs of every eligible window, shape (N, 2)."""
    pairs = [
        (r, c) for c in cutoffs for r in np.flatnonzero(eligible(panel, c, min_history, horizon))
    ]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def slog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def sexp(y: np.ndarray) -> np.ndarray:
    return np.sign(y) * np.expm1(np.abs(y))


def fit_scale(history: np.ndarray, scaling: Scaling = "log") -> tuple[np.ndarray, np.ndarray]:
    """Per-series (centre, scale) over the non-NaN months of history (..., L, F)."""
    if scaling in ("naive", "mase"):
        return _fit_naive(history)
    logged = slog(history)
    present = ~np.isnan(logged)
    count = present.sum(axis=-2)
    filled = np.where(present, logged, 0.0)
    mean = np.divide(filled.sum(axis=-2), count, out=np.zeros(count.shape), where=count > 0)
    squares = np.where(present, (logged - mean[..., None, :]) ** 2, 0.0).sum(axis=-2)
    var = np.divide(squares, count, out=np.zeros(count.shape), where=count > 0)
    return mean, np.maximum(np.sqrt(var), MIN_STD)


def _fit_naive(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series: handled below
        centre = np.nan_to_num(np.nanmean(history, axis=-2))
        steps = np.nan_to_num(np.nanmean(np.abs(np.diff(history, axis=-2)), axis=-2))
    return centre, np.maximum(steps, np.maximum(0.05 * np.abs(centre), NAIVE_MIN_SCALE))


def apply_scale(
    x: np.ndarray, mean: np.ndarray, std: np.ndarray, scaling: Scaling = "log"
) -> np.ndarray:
    """x (..., T, F) with the (..., F) stats of its series."""
    base = slog(x) if scaling == "log" else x
    return (base - mean[..., None, :]) / std[..., None, :]


def inverse_scale(
    z: np.ndarray, mean: np.ndarray, std: np.ndarray, scaling: Scaling = "log"
) -> np.ndarray:
    out = z * std[..., None, :] + mean[..., None, :]
    return sexp(out) if scaling == "log" else out


def whole_history_scale(panel: Panel, pairs: np.ndarray) -> np.ndarray:
    """(N, F) mean absolute month-to-month change of each series from its first month up to
    the window's cutoff (MASE's in-sample naive scale), floored at ``NAIVE_MIN_SCALE``."""
    steps = np.abs(np.diff(panel.values, axis=1))  # (R, M - 1, F), NaN before a repo's start
    known = ~np.isnan(steps)
    month_zero = ((0, 0), (1, 0), (0, 0))  # running totals indexed by month: none up to month 0
    sums = np.pad(np.cumsum(np.where(known, steps, 0.0), axis=1), month_zero)
    counts = np.pad(np.cumsum(known, axis=1), month_zero)
    repo, cutoff = pairs[:, 0], pairs[:, 1]
    total, count = sums[repo, cutoff], counts[repo, cutoff]  # changes up to the cutoff month
    scale = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return np.maximum(scale, NAIVE_MIN_SCALE)


@dataclass
class WindowArrays:
    """Model inputs and targets of N windows (float32, scaled), plus what inverts them."""

    pairs: np.ndarray  # (N, 2) repo, cutoff
    # (N, L, F + 3 [+ T]): scaled features (0 where unknown), present flag, month sin/cos
    # [, the panel's median change of each target that month]
    x: np.ndarray
    static: np.ndarray  # (N, 2 F): mean and log std of each series' look-back
    y: np.ndarray  # (N, H, T) scaled targets (0 where unknown)
    y_mask: np.ndarray  # (N, H, T) 1 where the target is known
    mean: np.ndarray  # (N, F)
    std: np.ndarray  # (N, F)
    scaling: Scaling = "log"
    # (N, H, T) scaled Theta forecast (``model.base: theta``), (N, H, T, C) comb and members
    base: np.ndarray | None = None


def scale_targets(values: np.ndarray, arrays: WindowArrays, targets: Sequence[int]) -> np.ndarray:
    """(N, H, T) raw target values -> the windows' scaled space (as ``y``); float64."""
    mean, std = arrays.mean[:, list(targets)], arrays.std[:, list(targets)]
    return apply_scale(values, mean, std, arrays.scaling)


def unscale_targets(scaled: np.ndarray, arrays: WindowArrays, targets: Sequence[int]) -> np.ndarray:
    """The exact inverse of :func:`scale_targets`."""
    mean, std = arrays.mean[:, list(targets)], arrays.std[:, list(targets)]
    return inverse_scale(scaled, mean, std, arrays.scaling)


def attach_base(arrays: WindowArrays, theta: np.ndarray, targets: Sequence[int]) -> WindowArrays:
    """Set ``arrays.base`` from (N, H, T) raw Theta forecasts, or (N, H, T, C) raw comb and
    member forecasts (each channel scaled alike); an unknown one (a missing metric, NaN)
    becomes 0 like the unknown inputs and targets."""
    if theta.ndim == 4:
        channels = [scale_targets(theta[..., k], arrays, targets) for k in range(theta.shape[-1])]
        scaled = np.stack(channels, axis=-1)
    else:
        scaled = scale_targets(theta, arrays, targets)
    arrays.base = np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return arrays


def panel_context(panel: Panel, features: Sequence[int]) -> np.ndarray:
    """(M, len(features)): each month's median change across the repositories, in slog space
    (0 for month 0 and where no repository has both months). Month m reads months m - 1 and m
    only, and every repository shares the cutoffs, so a window's context ends at its cutoff."""
    logged = slog(panel.values[:, :, list(features)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a month no repository has: 0 below
        median = np.nanmedian(np.diff(logged, axis=1), axis=0)
    return np.pad(np.nan_to_num(median), ((1, 0), (0, 0)))


def build_windows(
    panel: Panel,
    pairs: np.ndarray,
    lookback: int,
    horizon: int,
    targets: Sequence[int],
    scaling: Scaling = "log",
    context: bool = False,
) -> WindowArrays:
    """``context``: each look-back month also carries :func:`panel_context` of the targets."""
    n, f = len(pairs), len(panel.features)
    history = np.full((n, lookback, f), np.nan)
    future = np.full((n, horizon, f), np.nan)
    for i, (r, c) in enumerate(pairs):
        start = c - lookback + 1
        lo = max(start, int(panel.first[r]), 0)
        history[i, lo - start :] = panel.values[r, lo : c + 1]
        ahead = panel.values[r, c + 1 : c + 1 + horizon]  # short at the corpus's end
        future[i, : len(ahead)] = ahead
    mean, std = fit_scale(history, scaling)
    if scaling == "mase":
        std = whole_history_scale(panel, pairs)
    scaled = apply_scale(history, mean, std, scaling)
    present = ~np.isnan(scaled)
    positions = pairs[:, 1:2] - np.arange(lookback)[::-1][None, :]  # grid months, (N, L)
    angle = 2 * np.pi * ((panel.month0 + positions) % 12) / 12
    channels = [
        np.where(present, scaled, 0.0),
        present.any(axis=2, keepdims=True),
        np.sin(angle)[..., None],
        np.cos(angle)[..., None],
    ]
    if context:
        table = panel_context(panel, targets)
        channels.append(np.where((positions >= 0)[..., None], table[positions.clip(0)], 0.0))
    x = np.concatenate(channels, axis=2)
    ty = apply_scale(future, mean, std, scaling)[:, :, list(targets)]
    known = ~np.isnan(ty)
    static = np.concatenate([slog(mean), np.log(std)], axis=1)
    return WindowArrays(
        pairs=pairs,
        x=x.astype(np.float32),
        static=static.astype(np.float32),
        y=np.where(known, ty, 0.0).astype(np.float32),
        y_mask=known.astype(np.float32),
        mean=mean,
        std=std,
        scaling=scaling,
    )

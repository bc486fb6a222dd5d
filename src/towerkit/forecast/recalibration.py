"""Recalibration from recent outcomes: at a forecast's cutoff, the model's own errors at the
latest cutoffs whose target months are known by then correct its median and band.

A model trained up to some month meets later months that move together: in a quarter when
activity falls across GitHub, most repositories land under the median it learned from busier
years. Only windows after the model's training data count (``trained_through``, the last month
any training target reached; windows it trained on would flatter it), and only those whose whole
horizon is known at the cutoff, so nothing a forecast could not have known goes into it. For
each horizon month and target, the median moves by the median of those windows' residuals (in
scaled units) and the band's ends are split-conformal again around the moved median, as in
rolling (sliding-window) conformal prediction; a cutoff with no such window keeps the band the
model was trained and calibrated with.

It helps only while a period's common error persists: on a replay of the test protocol 14
months earlier it lowered MASE 0.8 %, on the test it raised it 11 % (OpenDigger's raw 2021-10 is
a gap in the event data, and the errors then changed sign), so both recipes leave it off
(BENCHMARKS.md, "recalibration from recent outcomes").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from towerkit.forecast.calibration import conformal_shift
from towerkit.forecast.data import ForecastData, SplitWindows, predict_scaled
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.parse import month_index
from towerkit.forecast.text import TextMode

# fewer known windows than this (repositories x cutoffs, e.g. a one-repository corpus given to
# ``predict --corpus``) say too little about the period: the cutoff keeps the model's own band
MIN_WINDOWS = 50


@dataclass(frozen=True)
class Correction:
    """(H, T) median offsets and symmetric band shifts in scaled units, from ``cutoffs``."""

    offset: np.ndarray
    shift: np.ndarray
    cutoffs: tuple[int, ...]


@contextmanager
def band_as_trained(model: DualTowerForecaster) -> Iterator[DualTowerForecaster]:
    """The model without its calibrated band shifts, for as long as the block runs."""
    c = model.config
    saved = c.interval_shift, c.interval_shift_upper
    c.interval_shift, c.interval_shift_upper = None, None
    try:
        yield model
    finally:
        c.interval_shift, c.interval_shift_upper = saved


def first_unseen(model: DualTowerForecaster, data: ForecastData) -> int | None:
    """Grid position of the first cutoff whose windows the model never trained on (every
    target month after its training data), or None where the model does not record it."""
    label = model.config.trained_through
    if label is None:
        return None
    return month_index(label) - data.panel.month0


def recent_cutoffs(at: int, unseen: int, horizon: int, count: int) -> tuple[int, ...]:
    """The latest ``count`` cutoffs from ``unseen`` on whose ``horizon`` months are all known
    at cutoff ``at``."""
    last = at - horizon
    return tuple(range(max(unseen, last - count + 1), last + 1))


def correction(
    quantiles: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    levels: Sequence[float],
    cutoffs: tuple[int, ...] = (),
) -> Correction:
    """From windows' uncalibrated scaled quantiles (N, H, T, Q) at ``levels`` and their truths:
    the median offset (median residual per cell, 0 where none is known) and the band shift
    around the moved median that covers as much of them as p10..p90 should."""
    residual = np.where(known > 0, truth - quantiles[..., list(levels).index(0.5)], np.nan)
    cells = (known > 0).any(axis=0)
    offset = np.zeros(truth.shape[1:])
    offset[cells] = np.nanmedian(residual[:, cells], axis=0)
    moved = quantiles + offset[None, ..., None]
    shift = conformal_shift(moved, truth, known, levels[-1] - levels[0])
    return Correction(offset, shift, cutoffs)


def apply_band(
    quantiles: np.ndarray, offset: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Quantiles (..., H, T, Q) moved by ``offset`` (..., H, T), then the outermost ones out by
    ``lower`` / ``upper``, never past their neighbour (as the model applies its own shifts)."""
    out = quantiles + offset[..., None]
    out[..., 0] = np.minimum(out[..., 0] - lower, out[..., 1])
    out[..., -1] = np.maximum(out[..., -1] + upper, out[..., -2])
    return out


def corrections(
    quantiles: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    cutoffs: np.ndarray,
    at: Sequence[int],
    unseen: int,
    horizon: int,
    count: int,
    levels: Sequence[float],
    min_windows: int = MIN_WINDOWS,
) -> dict[int, Correction]:
    """The correction of each cutoff in ``at``, from the windows (uncalibrated ``quantiles``,
    ``truth``, ``known``, at ``cutoffs``) at its ``count`` latest cutoffs from ``unseen`` on
    whose targets are known by then; none for a cutoff with fewer than ``min_windows``."""
    found = {}
    for cutoff in at:
        chosen = recent_cutoffs(int(cutoff), unseen, horizon, count)
        rows = np.isin(cutoffs, chosen)
        if rows.sum() < max(min_windows, 1):
            continue
        used = tuple(sorted(set(cutoffs[rows].tolist())))
        found[int(cutoff)] = correction(quantiles[rows], truth[rows], known[rows], levels, used)
    return found


def recalibrate(
    model: DualTowerForecaster,
    data: ForecastData,
    windows: SplitWindows,
    count: int,
    pool: SplitWindows | None = None,
    min_windows: int = MIN_WINDOWS,
) -> tuple[np.ndarray, dict[int, Correction]]:
    """``windows``' scaled quantiles (N, H, T, Q), each cutoff's corrected by the model's errors
    at its ``count`` latest known cutoffs after the model's training (taken from ``windows``
    themselves and ``pool``, windows at other cutoffs); also the corrections by cutoff. Cutoffs
    with no such window, and every cutoff of a model without ``trained_through``, keep the model's
    own band, as do cutoffs with fewer than ``min_windows`` such windows."""
    calibrated = predict_scaled(model, windows)
    unseen = first_unseen(model, data)
    if unseen is None or count < 1:
        return calibrated, {}
    sets = [windows] if pool is None or not len(pool.arrays.pairs) else [windows, pool]
    with band_as_trained(model):
        plain = [predict_scaled(model, w) for w in sets]
    at_cutoffs = windows.arrays.pairs[:, 1]
    found = corrections(
        np.concatenate(plain),
        np.concatenate([w.arrays.y for w in sets]),
        np.concatenate([w.arrays.y_mask for w in sets]),
        np.concatenate([w.arrays.pairs[:, 1] for w in sets]),
        np.unique(at_cutoffs).tolist(),
        unseen,
        data.config.horizon,
        count,
        model.config.quantiles,
        min_windows,
    )
    out = calibrated.copy()
    for cutoff, fix in found.items():
        here = at_cutoffs == cutoff
        out[here] = apply_band(plain[0][here], fix.offset[None], fix.shift[None], fix.shift[None])
    return out, found


def recalibrated(
    model: DualTowerForecaster,
    data: ForecastData,
    windows: SplitWindows,
    count: int,
    mode: TextMode = "real",
) -> np.ndarray:
    """``windows``' scaled quantiles recalibrated as :func:`recalibrate` does (as the model gives
    them where ``count`` is 0 or its training months are unknown); the windows at the cutoffs it
    learns from that ``windows`` lack (the validation cutoffs before a test, the recent ones
    before a forecast) are built here, their texts in ``mode``."""
    unseen = first_unseen(model, data)
    if count < 1 or unseen is None:
        return predict_scaled(model, windows)
    own = sorted(set(windows.arrays.pairs[:, 1].tolist()))
    outside = [c for c in pool_cutoffs(own, unseen, data.config.horizon, count) if c not in own]
    pool = None
    if outside:
        arrays = data.windows(outside)
        pool = SplitWindows(arrays, data.text_for(arrays.pairs, mode, progress=False))
    # read at call time: a test may lower it
    scaled, _ = recalibrate(model, data, windows, count, pool, min_windows=MIN_WINDOWS)
    return scaled


def pool_cutoffs(
    at_cutoffs: Sequence[int], unseen: int | None, horizon: int, count: int
) -> list[int]:
    """Every cutoff some forecast at ``at_cutoffs`` recalibrates from, sorted."""
    if unseen is None or count < 1:
        return []
    chosen = {c for at in at_cutoffs for c in recent_cutoffs(int(at), unseen, horizon, count)}
    return sorted(chosen)

"""Split-conformal calibration of the forecast band (conformalized quantile regression).

Pinball loss fits p10 and p90, but nothing makes the p10..p90 band of a trained model cover
80 % of the months it has not seen: here it covered about 73 %. For each horizon month and
target, a validation window's conformity score is how far its truth lies outside the band
(negative inside), ``max(p10 - y, y - p90)`` in scaled units; moving both ends of the band out
by the ``ceil((n + 1) * 0.8)``-th smallest of the n scores makes it cover at least 80 % of new
windows exchangeable with those (Romano, Patterson and Candes, NeurIPS 2019). Windows of a time
series are not exchangeable across time, so on later cutoffs this is an estimate, measured in
BENCHMARKS.md. The scores come from the model selected on validation; the refitted model,
which trained on those windows, takes its shifts. With ``each_side`` each end of the band is
calibrated on its own misses: below p10 and above p90 at most 10 % each.
"""

from __future__ import annotations

import math

import numpy as np

from towerkit.forecast.data import SplitWindows, predict_scaled
from towerkit.forecast.model import DualTowerForecaster


def _conformal_rank(scores: np.ndarray, known: np.ndarray, level: float) -> np.ndarray:
    """(H, T): per cell, the ``ceil((n + 1) * level)``-th smallest of its n known (N, H, T)
    scores (the largest when that rank passes n); 0 where a cell has no known truth."""
    shift = np.zeros(scores.shape[1:])
    for h, t in np.ndindex(*shift.shape):
        cell = np.sort(scores[known[:, h, t] > 0, h, t])
        if len(cell):
            rank = min(math.ceil((len(cell) + 1) * level), len(cell))  # 1-based
            shift[h, t] = cell[rank - 1]
    return shift


def conformal_shift(
    quantiles: np.ndarray, truth: np.ndarray, known: np.ndarray, coverage: float
) -> np.ndarray:
    """(H, T) shifts of the outermost quantiles so that, on these windows, the band covers at
    least ``coverage`` of each (horizon month, target)'s known truths. ``quantiles`` (N, H, T, Q),
    ``truth`` and ``known`` (N, H, T); 0 where a cell has no known truth."""
    scores = np.maximum(quantiles[..., 0] - truth, truth - quantiles[..., -1])
    return _conformal_rank(scores, known, coverage)


def side_shifts(
    quantiles: np.ndarray, truth: np.ndarray, known: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """(H, T) shifts of the lower and of the upper end, each from its own side's scores, so that
    on these windows at most a share ``low`` of the known truths falls below the band and at most
    ``1 - high`` above it (CQR's asymmetric form): a band that misses mostly on one side moves
    on that side, where the symmetric shift would widen both ends alike."""
    below = _conformal_rank(quantiles[..., 0] - truth, known, 1.0 - low)
    above = _conformal_rank(truth - quantiles[..., -1], known, high)
    return below, above


def calibrate_band(
    model: DualTowerForecaster, windows: SplitWindows, each_side: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's (H, T) band shifts from these (validation) windows, in scaled units: the
    lower end's and the upper end's (``each_side``), or one for both ends and None."""
    levels = model.config.quantiles
    if len(levels) < 3:
        raise ValueError("calibrate: expected quantiles around the median (e.g. 0.1, 0.5, 0.9)")
    scaled = predict_scaled(model, windows)
    a = windows.arrays
    if each_side:
        return side_shifts(scaled, a.y, a.y_mask, levels[0], levels[-1])
    return conformal_shift(scaled, a.y, a.y_mask, levels[-1] - levels[0]), None

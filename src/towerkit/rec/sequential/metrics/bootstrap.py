"""Paired bootstrap confidence intervals for the difference between two models on the same users
(scipy.stats.bootstrap with ``paired=True``: users are resampled, each keeping both values)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from towerkit.core.errors import TowerkitError


@dataclass(frozen=True)
class PairedBootstrap:
    mean_a: float
    mean_b: float
    diff: float  # mean_b - mean_a
    diff_low: float
    diff_high: float
    relative: float  # mean_b / mean_a - 1
    relative_low: float
    relative_high: float
    p_value: float  # two-sided: share of resampled differences on the other side of 0, x2
    confidence: float
    n_users: int

    def describe(self, metric: str = "") -> str:
        label = f"{metric} " if metric else ""
        return (
            f"{label}{self.mean_a:.4f} -> {self.mean_b:.4f}: {self.diff:+.4f} "
            f"[{self.diff_low:+.4f}, {self.diff_high:+.4f}] ({self.relative:+.1%} "
            f"[{self.relative_low:+.1%}, {self.relative_high:+.1%}]), "
            f"{self.confidence:.0%} CI over {self.n_users} users, p={self.p_value:.3g}"
        )


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedBootstrap:
    """Percentile intervals of mean(b) - mean(a) and mean(b) / mean(a) - 1 over users."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise TowerkitError(
            f"paired_bootstrap: expected two 1-D arrays of the same users (>= 2), "
            f"got shapes {a.shape} and {b.shape}"
        )
    rng = np.random.default_rng(seed)

    def diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    def relative(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        base = np.mean(x, axis=axis)
        return np.mean(y, axis=axis) / np.where(base == 0, np.nan, base) - 1.0

    common = {
        "paired": True,
        "vectorized": True,
        "n_resamples": n_resamples,
        "confidence_level": confidence,
        "method": "percentile",
        "rng": rng,
    }
    d = stats.bootstrap((a, b), diff, **common)
    r = stats.bootstrap((a, b), relative, **common)
    resampled = d.bootstrap_distribution
    observed = float(b.mean() - a.mean())
    other_side = np.mean(resampled <= 0) if observed > 0 else np.mean(resampled >= 0)
    mean_a = float(a.mean())
    return PairedBootstrap(
        mean_a=mean_a,
        mean_b=float(b.mean()),
        diff=observed,
        diff_low=float(d.confidence_interval.low),
        diff_high=float(d.confidence_interval.high),
        relative=float(b.mean() / mean_a - 1.0) if mean_a else float("nan"),
        relative_low=float(r.confidence_interval.low),
        relative_high=float(r.confidence_interval.high),
        p_value=float(min(1.0, 2.0 * other_side)),
        confidence=confidence,
        n_users=len(a),
    )

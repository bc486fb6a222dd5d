"""The statistics of an A/B test, on statsmodels and scipy (no hand-written test statistics).

Every comparison is treatment minus control: a positive difference means the treatment is higher.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from towerkit.core.errors import TowerkitError

SRM_ALPHA = 0.001  # the usual SRM threshold: a real mismatch gives p far below it


@dataclass(frozen=True)
class Rate:
    """Successes out of n with a Wilson score interval."""

    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion z-test (pooled variance) and a Newcomb interval for the difference."""

    control: Rate
    treatment: Rate
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    z: float
    p_value: float

    @property
    def relative_lift(self) -> float:
        return self.diff / self.control.rate if self.control.rate > 0 else float("nan")


@dataclass(frozen=True)
class WelchTest:
    """Welch's unequal-variance t-test of the means with a confidence interval of the difference."""

    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    t: float
    df: float
    p_value: float


@dataclass(frozen=True)
class SrmCheck:
    """Chi-square goodness of fit of the exposure counts against the configured weights."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


@dataclass(frozen=True)
class CupedTest:
    """Welch test on CUPED-adjusted values: y - theta * (x - mean x), theta from pooled data."""

    theta: float
    variance_reduction: float  # 1 - var(adjusted) / var(raw), pooled over both groups
    raw: WelchTest
    adjusted: WelchTest


def wilson_rate(successes: int, n: int, alpha: float = 0.05) -> Rate:
    if n <= 0:
        raise TowerkitError("rate: expected at least one exposed user, got 0")
    if not 0 <= successes <= n:
        raise TowerkitError(f"rate: expected 0 <= successes <= n, got {successes} of {n}")
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return Rate(n, successes, successes / n, float(low), float(high))


def two_proportion_test(
    control: tuple[int, int], treatment: tuple[int, int], alpha: float = 0.05
) -> ProportionTest:
    """``control`` and ``treatment`` are (successes, n)."""
    rate_c, rate_t = wilson_rate(*control, alpha=alpha), wilson_rate(*treatment, alpha=alpha)
    if rate_c.successes + rate_t.successes in (0, rate_c.n + rate_t.n):
        z, p = 0.0, 1.0  # no variation at all: the pooled standard error is zero
    else:
        z_raw, p_raw = proportions_ztest([rate_t.successes, rate_c.successes], [rate_t.n, rate_c.n])
        z, p = float(z_raw), float(p_raw)
    low, high = confint_proportions_2indep(
        rate_t.successes, rate_t.n, rate_c.successes, rate_c.n, method="newcomb", alpha=alpha
    )
    return ProportionTest(rate_c, rate_t, rate_t.rate - rate_c.rate, float(low), float(high), z, p)


def _values(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size < 2:
        raise TowerkitError(f"{what}: expected at least 2 values, got {array.size}")
    if not np.isfinite(array).all():
        raise TowerkitError(f"{what}: expected finite values")
    return array


def welch_test(control: ArrayLike, treatment: ArrayLike, alpha: float = 0.05) -> WelchTest:
    c, t = _values(control, "control"), _values(treatment, "treatment")
    diff = float(t.mean() - c.mean())
    if c.var() == 0 and t.var() == 0:  # constant groups: the t statistic is undefined
        same = diff == 0
        t_stat = 0.0 if same else float(np.copysign(np.inf, diff))
        df = float(c.size + t.size - 2)
        return WelchTest(
            c.size,
            t.size,
            float(c.mean()),
            float(t.mean()),
            diff,
            diff,
            diff,
            t_stat,
            df,
            1.0 if same else 0.0,
        )
    with warnings.catch_warnings():
        # one constant group (e.g. every treated user converted) is legitimate input; scipy warns
        # about its zero moment, but the Welch statistic from the other group's variance is right
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        result = stats.ttest_ind(t, c, equal_var=False)
    ci = result.confidence_interval(confidence_level=1 - alpha)
    return WelchTest(
        c.size,
        t.size,
        float(c.mean()),
        float(t.mean()),
        diff,
        float(ci.low),
        float(ci.high),
        float(result.statistic),
        float(result.df),
        float(result.pvalue),
    )


def srm_check(counts: dict[str, int], weights: Sequence[float]) -> SrmCheck:
    """``counts`` in variant order; ``weights`` the configured split (normalised here)."""
    observed = np.asarray(list(counts.values()), dtype=np.float64)
    if len(weights) != observed.size:
        raise TowerkitError(f"srm: expected {observed.size} weights, got {len(weights)}")
    total = observed.sum()
    if total <= 0:
        raise TowerkitError("srm: expected at least one exposure, got 0")
    expected = np.asarray(weights, dtype=np.float64) / float(np.sum(weights)) * total
    chi2, p = stats.chisquare(observed, f_exp=expected)
    return SrmCheck(
        {k: int(v) for k, v in counts.items()},
        dict(zip(counts, (float(e) for e in expected), strict=True)),
        float(chi2),
        float(p),
    )


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """cov(x, y) / var(x) on the pooled data (Deng et al., WSDM 2013); 0 for a constant x."""
    var_x = float(np.var(x, ddof=1))
    return 0.0 if var_x == 0 else float(np.cov(x, y, ddof=1)[0, 1] / var_x)


def cuped_test(
    control: tuple[ArrayLike, ArrayLike],
    treatment: tuple[ArrayLike, ArrayLike],
    alpha: float = 0.05,
) -> CupedTest:
    """``control`` and ``treatment`` are (metric, pre-period covariate) per user."""
    y_c, x_c = _values(control[0], "control metric"), _values(control[1], "control covariate")
    y_t, x_t = _values(treatment[0], "treatment metric"), _values(treatment[1], "treatment cov.")
    if y_c.size != x_c.size or y_t.size != x_t.size:
        raise TowerkitError("cuped: expected one covariate value per metric value")
    y, x = np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t])
    theta = cuped_theta(y, x)
    mean_x = float(x.mean())
    adj_c, adj_t = y_c - theta * (x_c - mean_x), y_t - theta * (x_t - mean_x)
    var_raw = float(np.var(y, ddof=1))
    var_adj = float(np.var(np.concatenate([adj_c, adj_t]), ddof=1))
    reduction = 0.0 if var_raw == 0 else 1.0 - var_adj / var_raw
    return CupedTest(theta, reduction, welch_test(y_c, y_t, alpha), welch_test(adj_c, adj_t, alpha))

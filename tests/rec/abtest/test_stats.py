"""The statistics against published figures, hand computation, and simulated A/A tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.assign import Assigner
from towerkit.rec.abtest.stats import (
    cuped_test,
    srm_check,
    two_proportion_test,
    welch_test,
    wilson_rate,
)


def test_wilson_interval_matches_newcombe_1998() -> None:
    # Newcombe, Stat. Med. 17:857 (1998), Table I: 81/263 -> score interval 0.2553 to 0.3662
    rate = wilson_rate(81, 263)
    assert rate.rate == pytest.approx(81 / 263)
    assert (round(rate.ci_low, 4), round(rate.ci_high, 4)) == (0.2553, 0.3662)


def test_wilson_interval_matches_the_formula() -> None:
    x, n, z = 37, 120, stats.norm.ppf(0.975)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    rate = wilson_rate(x, n)
    assert rate.ci_low == pytest.approx(centre - half, abs=1e-12)
    assert rate.ci_high == pytest.approx(centre + half, abs=1e-12)


def test_two_proportion_z_by_hand_and_newcombe_difference_interval() -> None:
    # pooled z by hand: p = 450/2000, se = sqrt(p(1-p)(1/1000 + 1/1000))
    test = two_proportion_test((200, 1000), (250, 1000))
    pooled = 450 / 2000
    z = 0.05 / math.sqrt(pooled * (1 - pooled) * 2 / 1000)
    assert test.z == pytest.approx(z, rel=1e-12)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-9)
    assert test.diff == pytest.approx(0.05)
    assert test.relative_lift == pytest.approx(0.25)
    # Newcombe (1998b), Stat. Med. 17:873, example: 56/70 vs 48/80 -> method 10: 0.0524 to 0.3339
    newcombe = two_proportion_test((48, 80), (56, 70))
    assert (round(newcombe.diff_ci_low, 4), round(newcombe.diff_ci_high, 4)) == (0.0524, 0.3339)


def test_two_proportion_without_any_variation_is_not_significant() -> None:
    test = two_proportion_test((0, 10), (0, 12))
    assert (test.z, test.p_value, test.diff) == (0.0, 1.0, 0.0)


def test_welch_matches_the_wikipedia_example() -> None:
    # en.wikipedia.org/wiki/Welch%27s_t-test, example 1: t = -2.46, nu = 25.0, p = 0.021
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    test = welch_test(a1, a2)  # treatment - control = a2 - a1: the sign flips
    assert round(test.t, 2) == 2.46
    assert round(test.df, 1) == 25.0
    assert round(test.p_value, 3) == 0.021
    assert test.diff == pytest.approx(np.mean(a2) - np.mean(a1))
    assert test.diff_ci_low < test.diff < test.diff_ci_high
    assert test.diff_ci_low > 0  # p < 0.05: the 95% interval excludes zero


def test_welch_on_constant_groups() -> None:
    assert welch_test([1.0, 1.0], [1.0, 1.0, 1.0]).p_value == 1.0
    assert welch_test([0.0, 0.0], [1.0, 1.0]).p_value == 0.0


def test_srm_check_by_hand_and_on_a_skewed_split() -> None:
    check = srm_check({"a": 50_500, "b": 49_500}, [0.5, 0.5])
    assert check.chi2 == pytest.approx(10.0)  # 2 * 500^2 / 50000
    assert check.p_value == pytest.approx(stats.chi2.sf(10.0, 1))
    assert not check.mismatch  # p = 0.0016: suspicious, but above the 0.001 threshold
    assert srm_check({"a": 50_600, "b": 49_400}, [0.5, 0.5]).mismatch  # chi2 14.4
    fair = srm_check({"a": 50_100, "b": 49_900}, [0.5, 0.5])
    assert not fair.mismatch
    # 90/10 configured, but the exposure logging lost a third of B's users
    skewed = Assigner("srm", ("a", "b"), (0.9, 0.1)).assign_many([str(n) for n in range(20_000)])
    kept = [v for n, v in enumerate(skewed) if v == "a" or n % 3]
    counts = {"a": kept.count("a"), "b": kept.count("b")}
    assert srm_check(counts, [0.9, 0.1]).mismatch
    full = {"a": skewed.count("a"), "b": skewed.count("b")}
    assert not srm_check(full, [0.9, 0.1]).mismatch


def test_aa_p_values_are_roughly_uniform() -> None:
    rng = np.random.default_rng(7)
    users = [str(n) for n in range(2_000)]
    z_p, welch_p = [], []
    for run in range(200):
        variants = np.array(Assigner(f"aa-{run}", ("a", "b"), (0.5, 0.5)).assign_many(users))
        converted = rng.random(len(users)) < 0.3
        spend = rng.gamma(2.0, 5.0, len(users))
        a, b = variants == "a", variants == "b"
        z_p.append(
            two_proportion_test(
                (int(converted[a].sum()), int(a.sum())), (int(converted[b].sum()), int(b.sum()))
            ).p_value
        )
        welch_p.append(welch_test(spend[a], spend[b]).p_value)
    for p_values in (z_p, welch_p):
        assert stats.kstest(p_values, "uniform").pvalue > 0.01
        assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.09


def test_cuped_theta_reduction_and_unbiased_difference() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    x = rng.gamma(2.0, 10.0, n)  # pre-period activity
    group = rng.random(n) < 0.5
    y = 0.8 * x + rng.normal(0, 5, n) + np.where(group, 1.0, 0.0)  # true effect: +1.0
    result = cuped_test((y[~group], x[~group]), (y[group], x[group]))
    slope = np.polyfit(x, y, 1)[0]  # theta is the pooled OLS slope of y on x
    assert result.theta == pytest.approx(slope, rel=1e-9)
    expected_reduction = np.corrcoef(x, y)[0, 1] ** 2  # 1 - var(adj)/var(y) = rho^2
    assert result.variance_reduction == pytest.approx(expected_reduction, rel=1e-9)
    assert result.variance_reduction > 0.8
    adjusted, raw = result.adjusted, result.raw
    width = adjusted.diff_ci_high - adjusted.diff_ci_low
    assert width < 0.5 * (raw.diff_ci_high - raw.diff_ci_low)
    assert adjusted.diff_ci_low < 1.0 < adjusted.diff_ci_high
    assert adjusted.p_value < 1e-6 < raw.p_value


def test_cuped_with_a_constant_covariate_changes_nothing() -> None:
    y_c, y_t = np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 5.0])
    result = cuped_test((y_c, np.ones(3)), (y_t, np.ones(3)))
    assert (result.theta, result.variance_reduction) == (0.0, 0.0)
    assert result.adjusted == result.raw


def test_bad_inputs_are_one_clear_error() -> None:
    with pytest.raises(TowerkitError, match="at least one exposed user"):
        wilson_rate(0, 0)
    with pytest.raises(TowerkitError, match="successes"):
        wilson_rate(5, 3)
    with pytest.raises(TowerkitError, match="finite"):
        welch_test([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(TowerkitError, match="expected 2 weights"):
        srm_check({"a": 1, "b": 2}, [1.0])
    with pytest.raises(TowerkitError, match="one covariate value per metric value"):
        cuped_test(([1.0, 2.0], [1.0, 2.0, 3.0]), ([1.0, 2.0], [1.0, 2.0]))

"""An experiment's analysis: SRM check, per-variant rates and means, tests against the control."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from statsmodels.stats.weightstats import DescrStatsW

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.events import Experiment, ExperimentData
from towerkit.rec.abtest.stats import (
    CupedTest,
    ProportionTest,
    Rate,
    SrmCheck,
    WelchTest,
    cuped_test,
    srm_check,
    two_proportion_test,
    welch_test,
    wilson_rate,
)


@dataclass(frozen=True)
class Mean:
    """A per-variant mean with a t interval."""

    n: int
    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """One metric, treatment against control: the raw test and, with a covariate, CUPED."""

    metric: str
    kind: str
    control: str
    treatment: str
    proportion: ProportionTest | None
    welch: WelchTest | None
    cuped: CupedTest | None

    @property
    def headline(self) -> tuple[float, float, float, float]:
        """(difference, CI low, CI high, p): CUPED where available, else the raw test."""
        if self.cuped is not None:
            w = self.cuped.adjusted
            return w.diff, w.diff_ci_low, w.diff_ci_high, w.p_value
        if self.proportion is not None:
            p = self.proportion
            return p.diff, p.diff_ci_low, p.diff_ci_high, p.p_value
        assert self.welch is not None
        w = self.welch
        return w.diff, w.diff_ci_low, w.diff_ci_high, w.p_value


@dataclass(frozen=True)
class ExperimentReport:
    experiment: Experiment
    srm: SrmCheck
    rates: dict[str, dict[str, Rate]]  # binary metric -> variant -> rate
    means: dict[str, dict[str, Mean]]  # continuous metric (and covariate) -> variant -> mean
    comparisons: list[Comparison]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["experiment"] = {
            "name": self.experiment.name,
            "salt": self.experiment.salt,
            "variants": list(self.experiment.variants),
            "weights": list(self.experiment.weights),
            "metrics": dict(self.experiment.metrics),
            "models": dict(self.experiment.models),
        }
        data["srm"]["mismatch"] = self.srm.mismatch
        return data


def _mean(values: np.ndarray, alpha: float) -> Mean:
    if values.size < 2:  # no interval from fewer than 2 values
        mean = float(values.mean()) if values.size else float("nan")
        return Mean(int(values.size), mean, float("nan"), float("nan"))
    low, high = DescrStatsW(values).tconfint_mean(alpha=alpha)
    return Mean(int(values.size), float(values.mean()), float(low), float(high))


def _compare(
    experiment: Experiment, data: ExperimentData, metric: str, treatment: int, alpha: float
) -> Comparison:
    kind = experiment.metrics[metric]
    y = data.values[metric]
    in_c, in_t = data.variant_index == 0, data.variant_index == treatment
    proportion = welch = cuped = None
    if kind == "binary":
        proportion = two_proportion_test(
            (int(y[in_c].sum()), int(in_c.sum())), (int(y[in_t].sum()), int(in_t.sum())), alpha
        )
    else:
        welch = welch_test(y[in_c], y[in_t], alpha)
    covariate = experiment.covariate
    if covariate is not None:
        x = data.values[covariate]
        cuped = cuped_test((y[in_c], x[in_c]), (y[in_t], x[in_t]), alpha)
    return Comparison(
        metric,
        kind,
        experiment.variants[0],
        experiment.variants[treatment],
        proportion,
        welch,
        cuped,
    )


def analyse(experiment: Experiment, data: ExperimentData, alpha: float = 0.05) -> ExperimentReport:
    """Every treatment against the first variant, for every outcome metric."""
    if not 0 < alpha < 1:
        raise TowerkitError(f"alpha: expected a number between 0 and 1, got {alpha}")
    counts = data.counts(experiment.variants)
    empty = [v for v, n in counts.items() if n < 2]
    if empty:
        raise TowerkitError(
            f"experiment {experiment.name!r}: variant {empty[0]!r} has {counts[empty[0]]} "
            "exposed users; expected at least 2 per variant"
        )
    srm = srm_check(counts, experiment.weights)
    rates: dict[str, dict[str, Rate]] = {}
    means: dict[str, dict[str, Mean]] = {}
    for metric, kind in experiment.metrics.items():
        y = data.values[metric]
        per_variant = [y[data.variant_index == n] for n in range(len(experiment.variants))]
        if kind == "binary":
            rates[metric] = {
                v: wilson_rate(int(vals.sum()), vals.size, alpha)
                for v, vals in zip(experiment.variants, per_variant, strict=True)
            }
        else:
            means[metric] = {
                v: _mean(vals, alpha)
                for v, vals in zip(experiment.variants, per_variant, strict=True)
            }
    comparisons = [
        _compare(experiment, data, metric, treatment, alpha)
        for metric, kind in experiment.metrics.items()
        if kind != "covariate"
        for treatment in range(1, len(experiment.variants))
    ]
    return ExperimentReport(experiment, srm, rates, means, comparisons, alpha)

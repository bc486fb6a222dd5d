"""An experiment report as a Rich table (terminal) and as a PNG (matplotlib, Agg, atomic write)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from towerkit.core.io import atomic_path
from towerkit.rec.abtest.analysis import Comparison, ExperimentReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def variants_table(report: ExperimentReport) -> Table:
    level = round(100 * (1 - report.alpha))
    table = Table(title=f"{report.experiment.name}: per variant ({level}% intervals)")
    for column in ("metric", "variant", "n", "value", "interval"):
        table.add_column(column, justify="left" if column in ("metric", "variant") else "right")
    for metric, rates in report.rates.items():
        for variant, r in rates.items():
            table.add_row(metric, variant, str(r.n), f"{r.rate:.4f}",
                          f"[{r.ci_low:.4f}, {r.ci_high:.4f}] Wilson")  # fmt: skip
    for metric, means in report.means.items():
        kind = report.experiment.metrics[metric]
        for variant, m in means.items():
            label = f"{metric} ({kind})" if kind == "covariate" else metric
            table.add_row(label, variant, str(m.n), f"{m.mean:.4f}",
                          f"[{m.ci_low:.4f}, {m.ci_high:.4f}] t")  # fmt: skip
    return table


def _comparison_rows(c: Comparison, with_variant: bool) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    name = f"{c.metric} {c.treatment}" if with_variant else c.metric
    if c.proportion is not None:
        p = c.proportion
        rows.append((name, "z-test", f"{p.diff:+.4f}", _ci(p.diff_ci_low, p.diff_ci_high),
                     _p(p.p_value), f"lift {p.relative_lift:+.0%}"))  # fmt: skip
    if c.welch is not None:
        w = c.welch
        rows.append((name, "Welch", f"{w.diff:+.4f}", _ci(w.diff_ci_low, w.diff_ci_high),
                     _p(w.p_value), f"t={w.t:.2f}, df={w.df:.0f}"))  # fmt: skip
    if c.cuped is not None:
        a = c.cuped.adjusted
        rows.append((name, "CUPED", f"{a.diff:+.4f}", _ci(a.diff_ci_low, a.diff_ci_high),
                     _p(a.p_value), f"var -{c.cuped.variance_reduction:.1%}"))  # fmt: skip
    return rows


def _ci(low: float, high: float) -> str:
    return f"[{low:.4f}, {high:.4f}]"


def comparisons_table(report: ExperimentReport) -> Table:
    srm = report.srm
    verdict = "MISMATCH" if srm.mismatch else "ok"
    counts = ", ".join(f"{v}={n}" for v, n in srm.observed.items())
    control = report.experiment.variants[0]
    treatments = report.experiment.variants[1:]
    level = round(100 * (1 - report.alpha))
    table = Table(
        title=f"{'/'.join(treatments)} - {control}; SRM {verdict} ({counts}, "
        f"chi2={srm.chi2:.2f}, p={_p(srm.p_value)})"
    )
    for column in ("metric", "test", "diff", f"{level}% CI", "p", "note"):
        table.add_column(column, justify="left" if column in ("metric", "test") else "right")
    for comparison in report.comparisons:
        for row in _comparison_rows(comparison, len(treatments) > 1):
            table.add_row(*row)
    return table


def report_png(report: ExperimentReport, path: Path) -> Path:
    """Top: each metric per variant with its interval. Bottom: the difference with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m, kind in report.experiment.metrics.items() if kind != "covariate"]
    fig, axes = plt.subplots(2, len(metrics), figsize=(4.2 * len(metrics), 6.5), squeeze=False)
    for col, metric in enumerate(metrics):
        _plot_variants(axes[0][col], report, metric)
        mine = [c for c in report.comparisons if c.metric == metric]
        _plot_differences(axes[1][col], mine, report.alpha)
    srm = "SRM mismatch!" if report.srm.mismatch else f"SRM ok (p={_p(report.srm.p_value)})"
    fig.suptitle(f"A/B test {report.experiment.name}: {srm}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _plot_variants(ax: Axes, report: ExperimentReport, metric: str) -> None:
    if metric in report.rates:
        points = [(v, r.rate, r.ci_low, r.ci_high) for v, r in report.rates[metric].items()]
        label = "rate (Wilson CI)"
    else:
        points = [(v, m.mean, m.ci_low, m.ci_high) for v, m in report.means[metric].items()]
        label = "mean (t CI)"
    names = [p[0] for p in points]
    values = [p[1] for p in points]
    errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
    colours = ["#9aa5b1", "#3b7dd8", "#e39b2d", "#4caf50"]
    ax.bar(names, values, yerr=errors, capsize=6, color=colours[: len(names)])
    ax.set_title(f"{metric}: {label}")


def _plot_differences(ax: Axes, comparisons: list[Comparison], alpha: float) -> None:
    labels, diffs, lows, highs = [], [], [], []
    for c in comparisons:
        raw = c.proportion or c.welch
        assert raw is not None
        entries = [("raw", raw.diff, raw.diff_ci_low, raw.diff_ci_high)]
        if c.cuped is not None:
            a = c.cuped.adjusted
            entries.append(("CUPED", a.diff, a.diff_ci_low, a.diff_ci_high))
        for tag, d, lo, hi in entries:
            labels.append(f"{c.treatment}-{c.control}\n{tag}")
            diffs.append(d)
            lows.append(d - lo)
            highs.append(hi - d)
    y = list(range(len(labels)))
    for n, p_value in enumerate(p for c in comparisons for p in _p_values(c)):
        ax.annotate(f"p={_p(p_value)}", (diffs[n], n), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=8)  # fmt: skip
    ax.errorbar(diffs, y, xerr=[lows, highs], fmt="o", capsize=6, color="#3b7dd8")
    ax.axvline(0.0, color="#888", linestyle="--", linewidth=1)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_title(f"difference ({1 - alpha:.0%} CI)")


def _p_values(c: Comparison) -> list[float]:
    raw = c.proportion or c.welch
    assert raw is not None
    return [raw.p_value] + ([c.cuped.adjusted.p_value] if c.cuped is not None else [])

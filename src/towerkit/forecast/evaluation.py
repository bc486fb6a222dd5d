"""``evaluate``: the backtest table (Markdown + JSON) and a plot per target."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from towerkit.core.io import write_json_atomic, write_text_atomic
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    RatioInterval,
    baseline_forecasts,
    build_rows,
    by_scale,
    mase_by_cutoff,
    mase_by_repository,
    mase_ratio,
    model_forecast,
    per_horizon,
    score,
)
from towerkit.forecast.data import ForecastData, to_raw
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.plots import band_misses_png, mase_by_cutoff_png, mase_by_horizon_png
from towerkit.forecast.recalibration import recalibrated
from towerkit.forecast.recipe import ForecastRecipeConfig
from towerkit.forecast.text import TextMode

METRICS = ("mase", "smape", "mae", "pinball", "coverage", "below_p10", "above_p90")


@dataclass
class Backtest:
    rows: EvalRows
    forecasts: dict[str, MethodForecast]
    scores: dict[str, dict[str, dict[str, float]]]  # method -> group -> metric
    sample_scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    reference: str = ""  # the full-set baseline with the lowest overall MASE
    ratios: dict[str, RatioInterval] = field(default_factory=dict)  # model -> MASE / reference
    horizons: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> per h
    scales: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> by scale
    recalibrate: int = 0  # the dual tower's cutoffs recalibrated from this many known cutoffs
    cutoffs: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> month -> MASE
    # method -> repository -> MASE over its rows
    repositories: dict[str, dict[str, float]] = field(default_factory=dict)
    repository_rows: dict[str, int] = field(default_factory=dict)  # repo -> rows scored

    def overall(self, method: str) -> dict[str, float]:
        return self.scores[method]["overall"]


def _model_methods(
    model: DualTowerForecaster,
    data: ForecastData,
    rows: EvalRows,
    config: ForecastRecipeConfig,
    progress: bool,
) -> dict[str, MethodForecast]:
    name = "dual tower" if model.config.use_text else "dual tower, no text"
    ablations = config.eval.ablations and model.config.use_text
    modes: list[TextMode] = ["real", "blank", "shuffled"] if ablations else ["real"]
    out = {}
    for mode in modes:
        windows = data.test(mode, progress)
        scaled = recalibrated(model, data, windows, config.recalibrate, mode)
        raw = to_raw(scaled, windows.arrays, data.target_idx)
        label = name if mode == "real" else f"{name}, {mode} text"
        out[label] = model_forecast(label, rows, raw, model.config.quantiles)
    return out


def run_backtest(
    models: list[DualTowerForecaster],
    config: ForecastRecipeConfig,
    data: ForecastData,
    out_dir: Path,
    progress: bool = True,
) -> Backtest:
    """Score every model (and its text ablations) and the baselines on the test cutoffs."""
    test = data.test("real", progress)
    rows = build_rows(data.panel, test.arrays.pairs, data.target_idx, config.data.horizon)
    forecasts: dict[str, MethodForecast] = {}
    seconds = {}
    for model in models:
        started = time.perf_counter()
        forecasts.update(_model_methods(model, data, rows, config, progress))
        seconds["dual tower" if model.config.use_text else "no text"] = (
            time.perf_counter() - started
        )
    if config.eval.baselines:
        found, took = baseline_forecasts(
            data.panel, rows, config.eval.baselines, config.data.horizon, progress=progress
        )
        forecasts.update(found)
        seconds["baselines"] = took
    sample = None
    if config.eval.sample_baselines and config.eval.sample_size > 0:
        rng = np.random.default_rng(config.eval.seed)
        sample = np.sort(
            rng.choice(len(rows), min(config.eval.sample_size, len(rows)), replace=False)
        )
        found, took = baseline_forecasts(
            data.panel, rows, config.eval.sample_baselines, config.data.horizon, sample, progress
        )
        forecasts.update(found)
        seconds["sample_baselines"] = took
    targets = config.data.targets
    full = {n: f for n, f in forecasts.items() if not np.isnan(f.quantiles).any()}
    result = Backtest(rows, forecasts, {n: score(rows, f, targets) for n, f in full.items()})
    result.horizons = {n: per_horizon(rows, f) for n, f in full.items()}
    result.scales = {n: by_scale(rows, f) for n, f in full.items()}
    label = data.panel.label
    result.cutoffs = {
        n: {label(c): m for c, m in mase_by_cutoff(rows, f).items()} for n, f in full.items()
    }
    _add_repositories(result, data.panel.repos)
    if sample is not None:
        result.sample_scores = {n: score(rows, f, targets, sample) for n, f in forecasts.items()}
    _add_ratios(result, config.eval.baselines)
    result.seconds = seconds
    result.recalibrate = config.recalibrate
    result.files = write_report(result, data, targets, out_dir)
    return result


def _add_repositories(result: Backtest, names: list[str]) -> None:
    """Each full-set method's MASE per repository, and each repository's row count (the same
    rows for every method)."""
    repos, counts = np.unique(result.rows.pairs[result.rows.window, 0], return_counts=True)
    result.repository_rows = {names[r]: int(n) for r, n in zip(repos, counts, strict=True)}
    for method, forecast in result.forecasts.items():
        if method in result.scores:
            found = mase_by_repository(result.rows, forecast)
            result.repositories[method] = {names[r]: m for r, (_, m) in found.items()}


def _repository_csv(result: Backtest) -> str:
    """A row per repository: its row count and each method's MASE (best method first)."""
    methods = sorted(result.repositories, key=lambda n: result.overall(n)["mase"])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["repo", "rows", *methods])
    for repo, count in sorted(result.repository_rows.items()):
        writer.writerow([repo, count, *(f"{result.repositories[m][repo]:.6g}" for m in methods)])
    return text.getvalue()


def _repository_lines(result: Backtest, model: str = "dual tower", top: int = 5) -> list[str]:
    """The repositories that move the model's overall MASE most against the reference baseline:
    a repository's weight is its rows times its MASE difference."""
    ref = result.reference
    if not ref or model not in result.repositories:
        return []
    ours, theirs = result.repositories[model], result.repositories[ref]
    rows = result.repository_rows
    by_effect = sorted(rows, key=lambda r: rows[r] * (ours[r] - theirs[r]))
    header = [f"| repository | rows | {model} | {ref} | {model} / {ref} |", "|---|---|---|---|---|"]

    def line(repo: str) -> str:
        ratio = ours[repo] / theirs[repo] if theirs[repo] > 0 else float("nan")
        return f"| {repo} | {rows[repo]} | {ours[repo]:.3f} | {theirs[repo]:.3f} | {ratio:.3f} |"

    gains = [r for r in by_effect[:top] if ours[r] < theirs[r]]
    losses = [r for r in by_effect[::-1][:top] if ours[r] > theirs[r]]
    return [
        "",
        f"## Repositories that move the {model}'s MASE most against {ref}",
        "Gains most (rows x MASE difference; every repository is in per_repository.csv):",
        "",
        *header,
        *map(line, gains),
        "",
        "Loses most:",
        "",
        *header,
        *map(line, losses),
    ]


def _add_ratios(result: Backtest, baselines: list[str]) -> None:
    """Each model's overall MASE over the best full-set baseline's, with a bootstrap interval."""
    pool = [n for n in baselines if n in result.scores]
    if not pool:
        return
    result.reference = min(pool, key=lambda n: result.overall(n)["mase"])
    reference = result.forecasts[result.reference]
    for name in result.scores:
        if name.startswith("dual tower"):
            result.ratios[name] = mase_ratio(result.rows, result.forecasts[name], reference)


def _ratio_lines(result: Backtest) -> list[str]:
    if not result.ratios:
        return []
    interval = next(iter(result.ratios.values()))
    lines = [
        "",
        f"## MASE over the best baseline's ({result.reference}), {interval.level:.0%} BCa "
        f"bootstrap interval over the {interval.repositories} repositories",
        "| method | ratio | low | high |",
        "|---|---|---|---|",
    ]
    for name, r in sorted(result.ratios.items(), key=lambda kv: kv[1].ratio):
        lines.append(f"| {name} | {r.ratio:.4f} | {r.low:.4f} | {r.high:.4f} |")
    return lines


def _table(scores: dict[str, dict[str, dict[str, float]]], group: str) -> list[str]:
    lines = ["| method | " + " | ".join(METRICS) + " | rows |", "|---" * (len(METRICS) + 2) + "|"]
    for method, by_group in sorted(scores.items(), key=lambda kv: kv[1][group]["mase"]):
        m = by_group[group]
        cells = " | ".join(f"{m[k]:.4g}" for k in METRICS)
        lines.append(f"| {method} | {cells} | {int(m['n_series'])} |")
    return lines


def horizon_cells(by_month: dict[str, list[float]]) -> list[str]:
    """``MASE (coverage)`` of each horizon month."""
    pairs = zip(by_month["mase"], by_month["coverage"], strict=True)
    return [f"{mase:.3f} ({coverage:.3f})" for mase, coverage in pairs]


def _horizon_table(result: Backtest) -> list[str]:
    months = len(next(iter(result.horizons.values()))["mase"])
    lines = [
        "## MASE (p10..p90 coverage) per horizon month",
        "| method | " + " | ".join(f"month {h + 1}" for h in range(months)) + " |",
        "|---" * (months + 1) + "|",
    ]
    for method, by_h in sorted(result.horizons.items(), key=lambda kv: np.mean(kv[1]["mase"])):
        lines.append(f"| {method} | " + " | ".join(horizon_cells(by_h)) + " |")
    return lines


def scale_headers(groups: dict[str, list[float]]) -> list[str]:
    """``low..high (rows)`` of each group of :func:`~towerkit.forecast.backtest.by_scale`."""
    spans = zip(groups["scale_low"], groups["scale_high"], groups["rows"], strict=True)
    return [f"{low:.3g}..{high:.3g} ({int(rows)})" for low, high, rows in spans]


def scale_cells(groups: dict[str, list[float]]) -> list[str]:
    """``MASE / MAE`` of each group of rows by series scale."""
    return [f"{m:.3f} / {a:.4g}" for m, a in zip(groups["mase"], groups["mae"], strict=True)]


def _scale_table(result: Backtest) -> list[str]:
    """MASE / MAE per third of the rows by series scale: where the two rank methods apart."""
    methods = sorted(result.scales, key=lambda n: result.overall(n)["mase"])
    headers = scale_headers(result.scales[methods[0]])
    lines = [
        "## MASE / MAE by series scale (thirds of the rows by MASE's denominator, the mean "
        "absolute monthly change of the history; scale range and rows in each header)",
        "| method | " + " | ".join(headers) + " |",
        "|---" * (len(headers) + 1) + "|",
    ]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(scale_cells(result.scales[method])) + " |")
    return lines


def _cutoff_table(result: Backtest) -> list[str]:
    """A row per test cutoff: each method's MASE over its rows, where one month's data (say a
    gap in the source, or a turn in the trend) moves every method at once."""
    methods = sorted(result.cutoffs, key=lambda n: result.overall(n)["mase"])
    months = sorted(next(iter(result.cutoffs.values())))
    lines = [
        "## MASE per test cutoff (all targets)",
        "| cutoff | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for month in months:
        cells = " | ".join(f"{result.cutoffs[m][month]:.3f}" for m in methods)
        lines.append(f"| {month} | {cells} |")
    return lines


def _target_table(scores: dict[str, dict[str, dict[str, float]]], targets: list[str]) -> list[str]:
    lines = ["| method | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    for method, by_group in sorted(scores.items(), key=lambda kv: kv[1]["overall"]["mase"]):
        lines.append(
            f"| {method} | " + " | ".join(f"{by_group[t]['mase']:.3f}" for t in targets) + " |"
        )
    return lines


def recalibration_lines(count: int) -> list[str]:
    """How the dual tower's rows were made, where it is not the model's output as it stands."""
    if count < 1:
        return []
    return [
        f"The dual tower's median and band at each test cutoff are recalibrated from its own "
        f"errors at the latest {count} cutoffs whose target months are known by then and after "
        "its training (`recalibrate`); cutoffs with none keep its calibrated band. The baselines "
        "are statsforecast's as they stand.",
        "",
    ]


def write_report(
    result: Backtest, data: ForecastData, targets: list[str], out_dir: Path
) -> list[Path]:
    p, s = data.panel, data.splits
    lines = [
        f"# Backtest: {len(s.test)} test cutoffs {p.label(s.test[0])}..{p.label(s.test[-1])}, "
        f"horizon {s.horizon}, {len(result.rows)} rows (repository x target x cutoff)",
        "",
        *recalibration_lines(result.recalibrate),
        "## Overall (mean over rows; MASE scaled by the in-sample naive error)",
        *_table(result.scores, "overall"),
        "",
        "## MASE per target",
        *_target_table(result.scores, targets),
        "",
        *_horizon_table(result),
        "",
        *_scale_table(result),
        "",
        *_cutoff_table(result),
        *_repository_lines(result),
        *_ratio_lines(result),
    ]
    if result.sample_scores:
        n = int(next(iter(result.sample_scores.values()))["overall"]["n_series"])
        lines += [
            "",
            f"## Every method on the same random sample of {n} rows",
            *_table(result.sample_scores, "overall"),
        ]
    md, js = out_dir / "backtest.md", out_dir / "backtest.json"
    write_text_atomic(md, "\n".join(lines) + "\n")
    write_json_atomic(
        js,
        {
            "scores": result.scores,
            "sample_scores": result.sample_scores,
            "seconds": result.seconds,
            "reference": result.reference,
            "ratios": {n: asdict(r) for n, r in result.ratios.items()},
            "per_horizon": result.horizons,
            "by_scale": result.scales,
            "recalibrate": result.recalibrate,
            "per_cutoff": result.cutoffs,
            "per_repository": result.repositories,
            "repository_rows": result.repository_rows,
        },
    )
    repos_csv = out_dir / "per_repository.csv"
    write_text_atomic(repos_csv, _repository_csv(result))
    plots = [
        mase_by_cutoff_png(
            result.rows, result.forecasts, t, name, p, out_dir / "plots" / f"mase_{name}.png"
        )
        for t, name in enumerate(targets)
    ]
    horizon_png = mase_by_horizon_png(result.horizons, out_dir / "plots" / "mase_by_horizon.png")
    misses_png = band_misses_png(
        result.scores, [*targets, "overall"], out_dir / "plots" / "band_misses.png"
    )
    return [md, js, repos_csv, *plots, horizon_png, misses_png]

"""Forecast benchmark: the dual tower against statsforecast on the same series and cutoffs.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/forecast.py --cold [--threads 2] [--jobs 2] [--config configs/forecast/full.yaml] [key=value ...]

Trains the full recipe twice (with the text tower and without it: the no-text ablation) on
every repository of ../shared/data/opendigger, then runs the rolling-origin backtest over the
last 12 cutoffs: the dual tower, its blank- and shuffled-text ablations, the no-text model and
the statsforecast baselines, scored on the same rows. Checks the issue's goals (overall MASE
<= 0.9 x the best baseline, p10..p90 coverage in 70..90 %, training <= 15 min on 2 cores) and
writes the "## Forecast" section of BENCHMARKS.md plus runs/bench/forecast/results.json.

The training time of the goal is the text model's whole run from the corpus: preparing the data
(the Parquet table, every window's statsforecast base forecasts and the text embeddings) and
training the network. Those preparations are cached under TOWERKIT_HOME, so only a run with
``--cold`` (a fresh, empty TOWERKIT_HOME) measures them; without it the goal is reported as not
measured.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from towerkit.core.io import write_json_atomic
from towerkit.forecast.backtest import mase_ratio
from towerkit.forecast.evaluation import METRICS, Backtest, run_backtest
from towerkit.forecast.recipe import default_config_path, load_recipe, train

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Forecast"


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, torch {torch.__version__}"


def _recalibrate_text(count: int) -> str:
    if count < 1:
        return "recalibrate=0 (no correction from the model's recent errors)"
    return (
        f"recalibrate={count} (at each test cutoff, the dual tower's median and band corrected "
        "by its own errors at the latest that many cutoffs whose target months are known by "
        "then and after its training; the first 3 test cutoffs have none)"
    )


def write_section(markdown: str) -> None:
    """Replace (or add) this benchmark's section; other sections stay as they are."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.is_file() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start == -1:
        text = text.rstrip() + "\n\n" + markdown
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + markdown + (text[end + 1 :] if end != -1 else "")
    BENCHMARKS_MD.write_text(text.rstrip() + "\n")


def table(scores: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = ["| method | " + " | ".join(METRICS) + " | rows |", "|---" * (len(METRICS) + 2) + "|"]
    for method, groups in sorted(scores.items(), key=lambda kv: kv[1]["overall"]["mase"]):
        m = groups["overall"]
        lines.append(
            f"| {method} | "
            + " | ".join(f"{m[k]:.4g}" for k in METRICS)
            + f" | {int(m['n_series'])} |"
        )
    return lines


def training_goal(metrics: dict[str, float], cold: bool) -> str:
    prepare, network = metrics["prepare_seconds"], metrics["train_seconds"]
    total = prepare + network
    setting = (
        f"{torch.get_num_threads()} torch thread(s), "
        f"{os.environ['TOWERKIT_FORECAST_JOBS']} statsforecast process(es)"
    )
    if not cold:
        return (
            f"- training (text model): network {network / 60:.1f} min, data {prepare / 60:.1f} "
            f"min from warm caches, {setting} (goal <= 15 min on 2 cores: not measured, the "
            "base forecasts and text embeddings came from TOWERKIT_HOME; run with --cold)"
        )
    return (
        f"- training (text model) from the corpus with empty caches: **{total / 60:.1f} min** "
        f"= data {prepare / 60:.1f} min (table, base forecasts of every training and validation "
        f"window, text embeddings) + network {network / 60:.1f} min, {setting} (goal <= 15 min "
        f"on 2 cores: {'met' if total <= 900 else 'NOT met'})"
    )


def goals(result: Backtest, baselines: list[str], training: str) -> list[str]:
    ours = result.overall("dual tower")
    pool = {n: result.scores[n]["overall"]["mase"] for n in baselines if n in result.scores}
    best = min(pool, key=pool.__getitem__)
    ratio = result.ratios["dual tower"]
    lines = [
        f"- MASE: dual tower {ours['mase']:.3f} vs best full-set baseline {best} {pool[best]:.3f}: "
        f"ratio **{ours['mase'] / pool[best]:.3f}** (goal <= 0.9: "
        f"{'met' if ours['mase'] <= 0.9 * pool[best] else 'NOT met'}); "
        f"{ratio.level:.0%} BCa bootstrap interval over the {ratio.repositories} repositories "
        f"{ratio.low:.3f}..{ratio.high:.3f}",
        f"- p10..p90 coverage: **{ours['coverage']:.3f}** (goal 0.70..0.90: "
        f"{'met' if 0.7 <= ours['coverage'] <= 0.9 else 'NOT met'})",
        training,
    ]
    if result.sample_scores:
        sample = {n: s["overall"]["mase"] for n, s in result.sample_scores.items()}
        others = {n: v for n, v in sample.items() if not n.startswith("dual tower")}
        best_s = min(others, key=others.__getitem__)
        forecasts = result.forecasts
        known = [~np.isnan(f.quantiles).any(axis=(1, 2)) for f in forecasts.values()]
        rows = np.flatnonzero(np.all(known, axis=0))  # the sample: every method forecast it
        on_sample = mase_ratio(result.rows, forecasts["dual tower"], forecasts[best_s], rows)
        lines.append(
            f"- on the sample where every baseline ran: dual tower {sample['dual tower']:.3f} vs best "
            f"{best_s} {others[best_s]:.3f}: ratio **{on_sample}**"
        )
    return lines


def ablation(result: Backtest) -> list[str]:
    ours = result.overall("dual tower")["mase"]
    lines = []
    for method in ("dual tower, blank text", "dual tower, shuffled text", "dual tower, no text"):
        if method in result.scores:
            other = result.overall(method)["mase"]
            paired = mase_ratio(
                result.rows, result.forecasts[method], result.forecasts["dual tower"]
            )
            lines.append(
                f"- {method}: MASE {other:.4f} ({(other - ours) / ours * 100:+.2f} % vs real text; "
                f"ratio to real text {paired})"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 on a machine others share)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="statsforecast worker processes (TOWERKIT_FORECAST_JOBS)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="a fresh TOWERKIT_HOME: time the data preparation too"
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["TOWERKIT_FORECAST_JOBS"] = str(args.jobs)
    if args.cold:
        home = tempfile.mkdtemp(prefix="towerkit-home-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ["TOWERKIT_HOME"] = home
    started = time.perf_counter()
    config = load_recipe(args.config, args.overrides)
    runs = ROOT / "runs" / "bench"
    with_text = train(config, runs_root=runs)
    no_text = train(
        load_recipe(args.config, [*args.overrides, "model.use_text=false"]), runs_root=runs
    )
    out = with_text.run_dir / "backtest"
    result = run_backtest([with_text.model, no_text.model], config, with_text.data, out)
    total = time.perf_counter() - started
    command = " ".join(
        [
            f"OMP_NUM_THREADS={args.threads}",
            ".venv/bin/python",
            "benchmarks/forecast.py",
            *map(shlex.quote, sys.argv[1:]),
        ]
    )
    lines = [
        SECTION,
        "",
        f"`{command}` — {dt.date.today().isoformat()}, {machine()}; {total / 60:.1f} min in all.",
        "",
        f"Data: {with_text.data.description}. One global model; model selection (early stopping) "
        "on the validation cutoffs only; the test cutoffs are scored once, here. "
        f"Recipe: data.lookback={config.data.lookback} (months each window reads), "
        f"model.base={config.model.base} (the median is that forecast + the network's "
        f"offset), refit={str(config.refit).lower()} (after early stopping, a fresh model trained "
        "on training + validation windows for the chosen epochs is the one scored), "
        f"ensemble={config.ensemble} (the mean of that many such models' quantiles), "
        f"model.per_target={str(config.model.per_target).lower()} (one network per target), "
        f"calibrate={str(config.calibrate).lower()} (the p10..p90 band moved to cover 80 % of "
        "the validation windows, split conformal), "
        f"data.recency_halflife={config.data.recency_halflife:g} (a training window's weight in "
        "the loss halves every that many months back from the latest; 0: all alike), "
        + _recalibrate_text(config.recalibrate)
        + ". Rows are "
        "(repository, target, cutoff) with a known, non-constant history; every method is "
        "scored on the same rows. Baseline intervals are statsforecast's 80 % intervals.",
        "",
        *table(result.scores),
        "",
    ]
    if result.sample_scores:
        n = int(result.sample_scores["dual tower"]["overall"]["n_series"])
        lines += [
            f"Every method on the same random sample of {n} rows (the slow baselines ran only there):",
            "",
            *table(result.sample_scores),
            "",
        ]
    lines += [
        "Goals:",
        "",
        *goals(result, config.eval.baselines, training_goal(with_text.metrics, args.cold)),
        "",
    ]
    lines += ["Text ablation (overall MASE on the test rows):", "", *ablation(result), ""]
    lines += [
        f"Training: text model {with_text.metrics['train_seconds']:.0f} s "
        f"({int(with_text.metrics['train_steps'])} steps, after "
        f"{with_text.metrics['prepare_seconds']:.0f} s of data preparation), no-text model "
        f"{no_text.metrics['train_seconds']:.0f} s; backtest "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
        + f". Per-target MASE and plots: `{out.relative_to(ROOT)}/`.",
    ]
    markdown = "\n".join(lines) + "\n\n"  # a blank line before the next section
    write_json_atomic(
        runs / "forecast-results.json",
        {
            "scores": result.scores,
            "sample_scores": result.sample_scores,
            "seconds": result.seconds,
            "reference": result.reference,
            "ratios": {n: dataclasses.asdict(r) for n, r in result.ratios.items()},
            "train": {"text": with_text.metrics, "no_text": no_text.metrics},
            "markdown": markdown,
        },
    )
    print(markdown)
    if not args.no_write:
        write_section(markdown)


if __name__ == "__main__":
    main()

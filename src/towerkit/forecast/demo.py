"""The forecast part of ``towerkit demo``: the quick recipe trained, backtested and used.

One section: validation and test metrics of the dual tower beside Naive and SeasonalNaive (and
the blank/shuffled text ablations), its MASE over the best baseline's with a bootstrap interval,
the per-target MASE plots, a forecast PNG of one repository.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.core.report import DemoSection


def run_demo(out_dir: Path) -> list[DemoSection]:
    started = time.perf_counter()
    try:
        from towerkit.forecast.evaluation import run_backtest
        from towerkit.forecast.predict import forecast_repo
        from towerkit.forecast.recipe import load_recipe, train
    except ImportError as exc:  # the forecast extra is not installed
        return [DemoSection("forecast", "forecast dual tower", notes=[f"skipped: {exc}"])]
    try:
        result = train(load_recipe(None, ["trainer.progress=true"]), runs_root=out_dir / "runs")
    except TowerkitError as exc:  # e.g. the OpenDigger corpus is absent here
        return [DemoSection("forecast", "forecast dual tower", notes=[f"skipped: {exc}"])]
    backtest = run_backtest([result.model], result.config, result.data, result.run_dir / "backtest")
    metrics = {f"test_{k}": v for k, v in backtest.overall("dual tower").items() if k != "n_series"}
    for method, scores in backtest.scores.items():
        if method != "dual tower":
            slug = method.replace("dual tower, ", "").replace(" ", "_")
            metrics[f"test_mase_{slug}"] = scores["overall"]["mase"]  # no [..]: Rich markup
    metrics.update({k: v for k, v in result.metrics.items() if k.startswith(("val_", "train_"))})
    panel = result.data.panel
    history = panel.end - panel.first + 1
    activity = panel.values[:, panel.end, panel.features.index("activity")]
    busiest = max(
        np.flatnonzero(history >= result.config.data.min_history), key=lambda r: activity[r]
    )
    repo = panel.repos[int(busiest)]
    png = result.run_dir / "predict" / "example.png"
    forecast_repo(result.model, result.data, repo, png, result.config.recalibrate)
    notes = [f"data: {result.data.description}", f"backtest table: {backtest.files[0]}"]
    if "dual tower" in backtest.ratios:
        ratio = backtest.ratios["dual tower"]
        metrics[f"test_mase_ratio_to_{backtest.reference}"] = ratio.ratio
        notes.append(
            f"MASE of the dual tower over the best baseline's ({backtest.reference}): {ratio}"
        )
    if result.version is not None:
        notes.append(f"registered as {result.version.uri}")
    notes.append(f"forecast of {repo} for the 3 months after the corpus: {png.name}")
    return [
        DemoSection(
            domain="forecast",
            title="dual tower (LSTM + MiniLM text) vs statsforecast baselines",
            metrics=metrics,
            plots=[*result.plots, *[p for p in backtest.files if p.suffix == ".png"], png],
            notes=notes,
            run_dir=result.run_dir,
            seconds=time.perf_counter() - started,
        )
    ]

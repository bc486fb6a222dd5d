"""A third anchor for the forecast goal: N-HiTS and N-BEATS (Nixtla's neuralforecast) on the same rows.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/forecast_neuralforecast.py [--seeds 3]

needs neuralforecast (``.venv/bin/pip install -e '.[bench]'``).

The issue's goal asks the dual tower for overall MASE <= 0.9 x the best statsforecast baseline
(Theta). N-BEATS beat the M4 competition's winner and its statistical benchmarks with no
hand-made features (Oreshkin et al. 2020), and N-HiTS is its faster successor: the deep global forecasters a
practitioner would try first. Each is one network for every (repository, target) series,
trained on windows of the series with quantile (p10, p50, p90) outputs (``MQLoss``) and a
per-window scaling (``scaler_type``).

1. Selection, validation cutoffs only: each configuration of ``CANDIDATES`` (seed 0) is fitted on
   every series up to the first validation cutoff and forecasts the 6 validation cutoffs from
   each series' history up to that cutoff; the lowest overall MASE is taken. No test month is
   in any of these fits.
2. Test, read once with the chosen configuration: ``--seeds`` networks (the mean of their
   quantiles, as the recipe's dual tower averages its 3 seeds) fitted on every series up to the
   first test cutoff, where the dual tower's refit ends its targets, forecast the 12 test
   cutoffs from each series' history up to the cutoff. The full recipe's dual tower is trained
   and Theta fitted in the same run, all scored on the same rows by the backtest's own
   ``score`` and ``mase_ratio`` (bootstrap over repositories).

Prints Markdown tables; writes runs/bench/forecast-neuralforecast.json. Runs and a private
registry go to runs/bench/forecast-neuralforecast/.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast_anchor import (  # benchmarks/ is sys.path[0] when run
    KEYS,
    LEVELS,
    compare,
    forecast_rows,
    long_frame,
    markdown,
    print_test,
    run_facts,
    theta_scores,
    train_dual_tower,
    validation_rows,
)
from towerkit.core.io import write_json_atomic
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    score,
)
from towerkit.forecast.dataset import Panel
from towerkit.forecast.evaluation import run_backtest
from towerkit.forecast.recipe import default_config_path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "forecast-neuralforecast"


@dataclass(frozen=True)
class Candidate:
    """One neuralforecast configuration; the rest are the library's defaults."""

    model: str  # "NHITS" or "NBEATS"
    input_size: int  # months of look-back
    max_steps: int  # optimizer steps (batches of windows)
    scaler_type: str  # per-window scaling: "robust" (median, MAD) or "standard"

    @property
    def label(self) -> str:
        return f"{self.model}, {self.input_size} months, {self.max_steps} steps, {self.scaler_type}"


CANDIDATES = [
    Candidate("NHITS", 24, 500, "robust"),
    Candidate("NHITS", 36, 500, "robust"),
    Candidate("NHITS", 24, 500, "standard"),
    Candidate("NHITS", 24, 1500, "robust"),
    Candidate("NBEATS", 24, 500, "robust"),
]


class Anchor:
    """Fitted neuralforecast networks (one per seed) with mlforecast's ``predict(h, new_df)``:
    the mean of the networks' p10, p50 and p90, from each series' history in ``new_df``."""

    def __init__(self, candidate: Candidate, seeds: list[int], horizon: int, threads: int) -> None:
        self.candidate, self.seeds, self.horizon, self.threads = candidate, seeds, horizon, threads
        self.fitted: list[Any] = []

    def build(self, seed: int) -> Any:
        from neuralforecast import NeuralForecast, models
        from neuralforecast.losses.pytorch import MQLoss

        network = getattr(models, self.candidate.model)(
            h=self.horizon,
            input_size=self.candidate.input_size,
            loss=MQLoss(quantiles=list(LEVELS.values())),
            max_steps=self.candidate.max_steps,
            scaler_type=self.candidate.scaler_type,
            start_padding_enabled=True,  # series shorter than the look-back are padded, not dropped
            random_seed=seed,
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=False,
        )
        return NeuralForecast(models=[network], freq="MS")

    def fit(self, panel: Panel, target_idx: list[int], names: list[str], end: int) -> Anchor:
        """Fitted on every series up to grid position ``end``: no target month after it."""
        import torch

        torch.set_num_threads(self.threads)
        frame = long_frame(panel, target_idx, names, end).drop(columns="metric")
        self.fitted = []
        for seed in self.seeds:
            engine = self.build(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                engine.fit(df=frame)
            self.fitted.append(engine)
        return self

    def predict(self, h: int, new_df: pd.DataFrame) -> pd.DataFrame:
        assert h == self.horizon and self.fitted, "fit first, with the same horizon"
        history = new_df.drop(columns="metric")
        alias = self.candidate.model
        columns = [f"{alias}-lo-80.0", f"{alias}-median", f"{alias}-hi-80.0"]  # p10, p50, p90
        found = []
        for engine in self.fitted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = engine.predict(df=history)
            found.append(frame.sort_values(["unique_id", "ds"]).reset_index(drop=True))
        out = found[0][["unique_id", "ds"]].copy()
        for level, column in zip(LEVELS, columns, strict=True):
            out[level] = np.mean([f[column].to_numpy(np.float64) for f in found], axis=0)
        return out


def select(config: Any, data: Any, threads: int) -> tuple[Candidate, list[dict[str, Any]]]:
    """Validation windows only: every candidate (seed 0); the lowest overall MASE wins.
    Theta's on the same rows for reference."""
    panel, splits, names, h = data.panel, data.splits, config.data.targets, config.data.horizon
    rows = validation_rows(config, data)
    table: list[dict[str, Any]] = []

    def judge(candidate: Candidate) -> float:
        started = time.perf_counter()
        fitted = Anchor(candidate, [0], h, threads)
        fitted.fit(panel, data.target_idx, names, splits.val[0])
        found = forecast_rows(
            lambda _: fitted, panel, rows, data.target_idx, names, h, candidate.label
        )
        overall = score(rows, found, names)["overall"]
        seconds = time.perf_counter() - started
        table.append({"method": candidate.label, "seconds": seconds, **overall})
        print(f"validation, {candidate.label}: MASE {overall['mase']:.4f} ({seconds:.0f} s)")
        return float(overall["mase"])

    found = {candidate: judge(candidate) for candidate in CANDIDATES}
    reference = theta_scores(data, rows, names)
    table.append({"method": "(Theta, for reference)", "seconds": 0.0, **reference})
    return min(found, key=found.__getitem__), table


def test_read(
    config: Any, trained: Any, anchor: Anchor
) -> tuple[EvalRows, dict[str, MethodForecast]]:
    """The dual tower, Theta and the chosen anchor on the test rows, read once; the anchor
    trained where the dual tower's refit ends its targets (the first test cutoff)."""
    data, names, h = trained.data, config.data.targets, config.data.horizon
    backtest = run_backtest([trained.model], config, data, OUT / "backtest", progress=False)
    rows, panel, idx = backtest.rows, data.panel, data.target_idx
    anchor.fit(panel, idx, names, data.splits.test[0])
    name = f"{anchor.candidate.model} (neuralforecast)"
    found = forecast_rows(lambda _: anchor, panel, rows, idx, names, h, name=name)
    forecasts = backtest.forecasts
    return rows, {"dual tower": forecasts["dual tower"], name: found, "Theta": forecasts["Theta"]}


def report(result: dict[str, Any], names: list[str]) -> None:
    body = [
        [r["method"], *(f"{r[k]:.4g}" for k in KEYS), f"{r['seconds']:.0f}"]
        for r in result["validation"]
    ]
    print(markdown(["method (validation)", *KEYS, "fit + forecast s"], body) + "\n")
    print_test(result, names)
    minutes = result["seconds"] / 60
    print(f"\n{result['rows']} rows; chosen: {result['chosen']}; {minutes:.1f} min")


def parse_args(argv: list[str] | None = None, doc: str | None = __doc__) -> argparse.Namespace:
    """The arguments of this script, or of another that fits N-BEATS (its docstring ``doc``)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="networks averaged on the test")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.threads < 1:
        parser.error(f"--seeds, --threads: expected >= 1, got {args.seeds}, {args.threads}")
    return args


def load_neuralforecast(script: str) -> str:
    """neuralforecast's version, with Lightning's logging quietened; a clear exit without it."""
    try:
        import neuralforecast
    except ImportError as missing:
        raise SystemExit(
            f"{script}: needs neuralforecast: .venv/bin/pip install -e '.[bench]'"
        ) from missing
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return str(neuralforecast.__version__)


def main() -> None:
    args = parse_args()
    version = load_neuralforecast("forecast_neuralforecast")
    started, facts = time.perf_counter(), run_facts()
    config, trained = train_dual_tower(args.config, OUT)
    chosen, validation = select(config, trained.data, args.threads)
    anchor = Anchor(chosen, list(range(args.seeds)), config.data.horizon, args.threads)
    rows, methods = test_read(config, trained, anchor)
    result = {
        **facts,
        "neuralforecast": version,
        "chosen": f"{chosen.label}, mean of {args.seeds} seed(s)",
        "validation": validation,
        **compare(rows, methods, config.data.targets),
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(ROOT / "runs" / "bench" / "forecast-neuralforecast.json", result)
    report(result, config.data.targets)


if __name__ == "__main__":
    main()

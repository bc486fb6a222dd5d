"""A second anchor for the forecast goal: a global LightGBM (Nixtla's mlforecast) on the same rows.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/forecast_mlforecast.py [--threads 2]

needs the ``bench`` extra (``.venv/bin/pip install -e '.[bench]'``: mlforecast).

The issue's goal asks the dual tower for overall MASE <= 0.9 x the best statsforecast baseline
(Theta). Is that a bar a strong model of another family reaches on this data? mlforecast with
LightGBM is what practitioners reach for when one global model should learn from many series:
lags 1..12, rolling means of the last 3, 6 and 12 months, the calendar month and the metric as
features, a per-series target scaling, and one direct model per horizon month and quantile
(p10, p50, p90; pinball objective).

1. Selection, validation cutoffs only: each scaling in ``scalings()`` with the default LightGBM
   setting, then each setting in ``SETTINGS`` with the best scaling, is fitted on every series up
   to the first validation cutoff (the dual tower's training windows end their targets there)
   and forecasts the 6 validation cutoffs from each series' history up to that cutoff; the
   lowest overall MASE is taken. No test month is in any of these fits.
2. Test, read once with the chosen configuration: fitted once on every series up to the first
   test cutoff (where the dual tower's refit ends), as the dual tower is; and refitted at every
   test cutoff on all it knows then, as the statsforecast baselines are. Each forecasts the 12
   test cutoffs from each series' history up to the cutoff. The full recipe's dual tower is
   trained and Theta fitted in the same run, all scored on the same rows by the backtest's own
   ``score`` and ``mase_ratio`` (bootstrap over repositories).

Prints Markdown tables; writes runs/bench/forecast-mlforecast.json. Runs and a private
registry go to runs/bench/forecast-mlforecast/.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from collections.abc import Callable
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
OUT = ROOT / "runs" / "bench" / "forecast-mlforecast"
NAME = "mlforecast LightGBM"


class MaseScaler:
    """Centre each series on its mean and divide by its mean absolute monthly change (MASE's
    own denominator), fitted on whatever history it is given; exact inverse."""

    def __init__(self) -> None:
        self.stats: pd.DataFrame | None = None

    def set_column_names(self, id_col: str, time_col: str, target_col: str) -> None:
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col

    def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        by = df.groupby(self.id_col, observed=True)[self.target_col]
        change = by.diff().abs().groupby(df[self.id_col], observed=True).mean()
        stats = pd.DataFrame({"centre": by.mean(), "scale": change})
        stats["scale"] = stats["scale"].where(stats["scale"] > 0, 1.0).fillna(1.0)
        self.stats = stats
        out = df.copy()
        joined = stats.loc[df[self.id_col]].to_numpy()
        out[self.target_col] = (df[self.target_col].to_numpy() - joined[:, 0]) / joined[:, 1]
        return out

    def inverse_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        assert self.stats is not None
        out = df.copy()
        joined = self.stats.loc[df[self.id_col]].to_numpy()
        for column in df.columns:
            if column not in (self.id_col, self.time_col):
                out[column] = df[column].to_numpy() * joined[:, 1] + joined[:, 0]
        return out

    def update(self, df: pd.DataFrame) -> pd.DataFrame:
        # MLForecast.update (new observations for the stored series) is not used here:
        # predict(new_df=...) fits the scaler afresh on each cutoff's history
        raise TypeError("MaseScaler: MLForecast.update is not supported; predict with new_df")


def scalings() -> dict[str, Callable[[], list[Any]]]:
    from mlforecast.target_transforms import (
        Differences,
        GlobalSklearnTransformer,
        LocalRobustScaler,
        LocalStandardScaler,
    )
    from sklearn.preprocessing import FunctionTransformer

    def log1p() -> Any:
        return GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))

    return {
        "standard": lambda: [LocalStandardScaler()],
        "robust (median, MAD)": lambda: [LocalRobustScaler(scale="mad")],
        "mase (mean, mean |change|)": lambda: [MaseScaler()],
        "log1p + standard": lambda: [log1p(), LocalStandardScaler()],
        "changes (differences), mase": lambda: [Differences([1]), MaseScaler()],
    }


# LightGBM settings tried on validation with the best scaling; the first is the default
SETTINGS: dict[str, dict[str, Any]] = {
    "400 trees, lr 0.05, 31 leaves, lags 1..12": {},
    "1000 trees, lr 0.02": {"n_estimators": 1000, "learning_rate": 0.02},
    "63 leaves": {"num_leaves": 63},
    "15 leaves, 50 rows a leaf": {"num_leaves": 15, "min_child_samples": 50},
    "lags 1..24": {"lags": 24},
}
DEFAULT = next(iter(SETTINGS))


@dataclass(frozen=True)
class Anchor:
    """One mlforecast configuration: a scaling of ``scalings()`` and a setting of SETTINGS."""

    scaling: str
    setting: str
    threads: int
    seed: int
    horizon: int

    def build(self) -> Any:
        from lightgbm import LGBMRegressor
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean

        params = {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "n_jobs": self.threads,
            "random_state": self.seed,
            "verbosity": -1,
            **SETTINGS[self.setting],
        }
        lags = params.pop("lags", 12)
        return MLForecast(
            models={
                name: LGBMRegressor(objective="quantile", alpha=alpha, **params)
                for name, alpha in LEVELS.items()
            },
            freq="MS",
            lags=list(range(1, lags + 1)),
            lag_transforms={1: [RollingMean(3), RollingMean(6), RollingMean(12)]},
            date_features=["month"],
            target_transforms=scalings()[self.scaling](),
            num_threads=self.threads,
        )

    def fit(self, panel: Panel, target_idx: list[int], names: list[str], end: int) -> Any:
        """Fitted on every series up to grid position ``end``: no target month after it."""
        model = self.build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = long_frame(panel, target_idx, names, end)
            model.fit(frame, static_features=["metric"], max_horizon=self.horizon)
        return model


def select(config: Any, data: Any, threads: int, seed: int) -> tuple[Anchor, list[dict[str, Any]]]:
    """Validation windows only: every scaling with the default setting, then every setting with
    the best scaling; the lowest overall MASE wins. Theta's on the same rows for reference."""
    panel, splits, names, h = data.panel, data.splits, config.data.targets, config.data.horizon
    rows = validation_rows(config, data)
    table: list[dict[str, Any]] = []

    def judge(anchor: Anchor) -> float:
        started = time.perf_counter()
        model = anchor.fit(panel, data.target_idx, names, splits.val[0])
        found = forecast_rows(lambda _: model, panel, rows, data.target_idx, names, h, NAME)
        overall = score(rows, found, names)["overall"]
        seconds = time.perf_counter() - started
        table.append({"scaling": anchor.scaling, "setting": anchor.setting, **overall})
        print(
            f"validation, {anchor.scaling}, {anchor.setting}: MASE {overall['mase']:.4f} "
            f"({seconds:.0f} s)",
            flush=True,
        )
        return float(overall["mase"])

    first = {a: judge(a) for a in (Anchor(n, DEFAULT, threads, seed, h) for n in scalings())}
    best = min(first, key=first.__getitem__)
    more = (dataclasses.replace(best, setting=n) for n in SETTINGS if n != DEFAULT)
    second = {best: first[best], **{a: judge(a) for a in more}}
    best = min(second, key=second.__getitem__)
    reference = theta_scores(data, rows, names)
    table.append({"scaling": "(Theta, for reference)", "setting": "", **reference})
    return best, table


def test_read(
    config: Any, trained: Any, anchor: Anchor
) -> tuple[EvalRows, dict[str, MethodForecast]]:
    """The dual tower, Theta and the chosen anchor on the test rows, read once: the anchor
    trained once where the dual tower's refit ends its targets (the first test cutoff), and
    refitted at every test cutoff on all it knows then, as the statsforecast baselines are."""
    data, names, h = trained.data, config.data.targets, config.data.horizon
    backtest = run_backtest([trained.model], config, data, OUT / "backtest", progress=False)
    rows = backtest.rows
    panel, idx = data.panel, data.target_idx
    once = anchor.fit(panel, idx, names, data.splits.test[0])
    trained_once = forecast_rows(lambda _: once, panel, rows, idx, names, h, NAME)
    refit = forecast_rows(
        lambda c: anchor.fit(panel, idx, names, c), panel, rows, idx, names, h, NAME
    )
    forecasts = backtest.forecasts
    return rows, {
        "dual tower": forecasts["dual tower"],
        f"{NAME}, trained once": trained_once,
        f"{NAME}, refitted every cutoff": refit,
        "Theta": forecasts["Theta"],
    }


def report(result: dict[str, Any], names: list[str]) -> None:
    body = [
        [r["scaling"], r["setting"], *(f"{r[k]:.4g}" for k in KEYS)] for r in result["validation"]
    ]
    print(markdown(["scaling (validation)", "LightGBM", *KEYS], body) + "\n")
    print_test(result, names)
    chosen, minutes = result["chosen"], result["seconds"] / 60
    print(
        f"\n{result['rows']} rows; chosen: {chosen['scaling']}, {chosen['setting']}; {minutes:.1f} min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import mlforecast
    except ImportError as missing:
        raise SystemExit(
            "forecast_mlforecast: needs mlforecast: .venv/bin/pip install -e '.[bench]'"
        ) from missing
    started, facts = time.perf_counter(), run_facts()
    config, trained = train_dual_tower(args.config, OUT)
    chosen, validation = select(config, trained.data, args.threads, args.seed)
    rows, methods = test_read(config, trained, chosen)
    result = {
        **facts,
        "mlforecast": mlforecast.__version__,
        "chosen": {"scaling": chosen.scaling, "setting": chosen.setting},
        "validation": validation,
        **compare(rows, methods, config.data.targets),
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(ROOT / "runs" / "bench" / "forecast-mlforecast.json", result)
    report(result, config.data.targets)


if __name__ == "__main__":
    main()

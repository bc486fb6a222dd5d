"""statsforecast baselines on the same cutoffs and series as the dual tower.

At each cutoff every model is fitted afresh on each series' history up to the cutoff (raw
values, as a user of these baselines would) and forecasts the horizon with an 80% interval,
whose bounds are the p10 and p90 the dual tower is compared with.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from towerkit.core.errors import ConfigError, TowerkitError

BASELINES = ("Naive", "SeasonalNaive", "AutoETS", "AutoARIMA", "Theta")
# the rest of statsforecast's Theta family (Fiorucci et al. 2016), for `eval.baselines` beside
# the five: optimised theta, dynamic (updated) trend, and both
THETA_VARIANTS = ("OptimizedTheta", "DynamicTheta", "DynamicOptimizedTheta")
JOBS_VARIABLE = "TOWERKIT_FORECAST_JOBS"
MIN_SERIES_PER_JOB = 500  # below this a worker process costs more than its share of the fits


def check_names(names: Sequence[str], key: str = "baselines") -> None:
    """Refuse a name that is not a baseline here, naming ``key`` and the names known."""
    known = BASELINES + THETA_VARIANTS
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{key}: unknown model {unknown[0]!r}; expected some of {list(known)}")


def make_models(names: Sequence[str], season: int = 12) -> list[object]:
    from statsforecast import models

    check_names(names)
    seasonless = {"Naive"}
    return [
        getattr(models, n)() if n in seasonless else getattr(models, n)(season_length=season)
        for n in names
    ]


def forecast_cutoff(
    histories: Sequence[np.ndarray], names: Sequence[str], horizon: int, month0: pd.Timestamp
) -> tuple[dict[str, np.ndarray], float]:
    """Forecast each history (all ending at the same cutoff) with every model.

    Returns ``{model: (S, horizon, 3)}`` (p10, mean, p90) and the seconds it took. ``month0``
    is the timestamp of each history's last month (only the calendar matters to the models).
    """
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    frames = []
    for i, history in enumerate(histories):
        ds = pd.date_range(end=month0, periods=len(history), freq="MS")
        frames.append(pd.DataFrame({"unique_id": i, "ds": ds, "y": history.astype(np.float64)}))
    df = pd.concat(frames, ignore_index=True)
    # a model that fails on a series (too short, degenerate) falls back to Naive for it
    engine = StatsForecast(
        models=make_models(names),
        freq="MS",
        n_jobs=forecast_jobs(len(histories)),
        fallback_model=Naive(),
    )
    started = time.perf_counter()
    with warnings.catch_warnings():  # worker processes start inside, with this filter
        warnings.simplefilter("ignore", RuntimeWarning)  # ETS's 0 / 0 on flat series
        found = engine.forecast(df=df, h=horizon, level=[80])
    out = pd.DataFrame(found).sort_values(["unique_id", "ds"])
    seconds = time.perf_counter() - started
    result = {}
    for name in names:
        columns = [f"{name}-lo-80", name, f"{name}-hi-80"]
        values = out[columns].to_numpy(dtype=np.float64).reshape(len(histories), horizon, 3)
        result[name] = np.sort(values, axis=-1)
    return result, seconds


def forecast_jobs(n_series: int) -> int:
    """Worker processes for a statsforecast batch of ``n_series`` series: TOWERKIT_FORECAST_JOBS,
    by default every CPU this process may use, and one for a small batch. The forecasts do not
    depend on it (each series is fitted on its own)."""
    return max(1, min(configured_jobs(), n_series // MIN_SERIES_PER_JOB))


def configured_jobs() -> int:
    """TOWERKIT_FORECAST_JOBS, by default every CPU this process may use."""
    raw = os.environ.get(JOBS_VARIABLE)
    if raw is None:
        return len(os.sched_getaffinity(0))
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    raise TowerkitError(f"{JOBS_VARIABLE}: expected a whole number >= 1, got {raw!r}")

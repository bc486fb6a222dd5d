"""How much headroom the forecast goal (overall MASE <= 0.9 x Theta) has, on validation only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_headroom.py [--seeds 0,1,2] [--jobs 1]

Could choosing or blending the forecasts at hand reach the goal? On the rows that
benchmarks/forecast_variants.py scores (the recipe's validation cutoffs, ``refit=false``; no
test cutoff is built or scored) this trains the dual tower once per seed as that benchmark
trains "base theta" (``ensemble=1``; the mean of seeds 0, 1, 2 is the recipe's ensemble of 3),
forecasts Naive, Theta and AutoETS with the backtest's own baseline function, and prints
Markdown tables: each method's MASE; per-row oracles (each row's best member, picked knowing
its truth: a bound, not a method); the best fixed convex blends (weights tuned on these same
rows, so in-sample and optimistic); an honest selector that takes, per repository and target,
the method that was best one horizon earlier ("last winner"); how much of the total the worst
rows carry, and the ratios without them; and the same per target. Runs and a private registry
go to runs/bench/forecast-headroom/; the tables to runs/bench/forecast-headroom.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from forecast_variants import VARIANTS, scored_windows  # benchmarks/ is sys.path[0] when run
from towerkit.core.io import write_json_atomic
from towerkit.core.registry import ModelRegistry
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    baseline_forecasts,
    build_rows,
    model_forecast,
    naive_scales,
    score,
)
from towerkit.forecast.data import ForecastData, predict_scaled, theta_cache_dir, to_raw
from towerkit.forecast.dataset import Panel
from towerkit.forecast.recipe import default_config_path, load_recipe, train
from towerkit.forecast.theta import theta_forecasts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "forecast-headroom"
BASELINES = ["Naive", "Theta", "AutoETS"]
DUAL = "dual tower"
FOUR = [*BASELINES, DUAL]
ALL = slice(None)
# the per-row oracles' member sets; two more take each seed as a member of its own
ORACLES = [["Naive", "Theta"], ["Theta", DUAL], BASELINES, ["Naive", "Theta", DUAL], FOUR]
BLENDS = [
    (["Theta", DUAL], 0.01),
    (["Naive", DUAL], 0.01),
    (["Naive", "Theta"], 0.01),
    (["AutoETS", DUAL], 0.01),
    (["Naive", "Theta", DUAL], 0.01),
    (FOUR, 0.02),  # 0.01 would be 176,851 weightings
]
PER_TARGET = "target,rows,Theta MASE,Naive,AutoETS,dual,oracle(4),share of Theta's total,"
PER_TARGET += "rows in Theta's top 1 %"


def train_seed(config_path: Path, seed: int) -> tuple[ForecastData, np.ndarray, list[float]]:
    """The dual tower of one seed: its data and raw-scale quantiles on the validation windows."""
    overrides = [*VARIANTS["base theta"], "refit=false", "ensemble=1", f"trainer.seed={seed}"]
    config = load_recipe(config_path, overrides)
    config.trainer.progress = False
    result = train(
        config, registry=ModelRegistry(OUT / "registry.db"), runs_root=OUT, progress=False
    )
    scored = scored_windows(result.data, inner=False)
    raw = to_raw(predict_scaled(result.model, scored), scored.arrays, result.data.target_idx)
    return result.data, raw, list(result.model.config.quantiles)


def check_validation_only(data: ForecastData, pairs: np.ndarray) -> None:
    splits = data.splits
    assert set(np.unique(pairs[:, 1]).tolist()) <= set(splits.val)
    # no scored window reaches the first test cutoff: its last truth month is at most that month
    assert pairs[:, 1].max() + splits.horizon <= min(splits.test)


def dual_tower(config: Path, seeds: list[int]) -> tuple[ForecastData, EvalRows, list[np.ndarray]]:
    """The validation rows (built as benchmarks/forecast_variants.py builds them) and each seed's
    (S, H, 3) quantiles on them."""
    data, rows, quantiles = None, None, []
    for seed in seeds:
        got, raw, levels = train_seed(config, seed)
        if rows is None:
            data, pairs = got, got.val.arrays.pairs
            check_validation_only(data, pairs)
            rows = build_rows(data.panel, pairs, data.target_idx, data.splits.horizon)
        assert np.array_equal(got.val.arrays.pairs, rows.pairs), "the seeds' windows differ"
        quantiles.append(model_forecast(DUAL, rows, raw, levels).quantiles)
        print(f"dual tower, seed {seed}: trained", flush=True)
    assert data is not None and rows is not None
    return data, rows, quantiles


@dataclass
class Scored:
    """Every method's MASE per row (checked against the backtest's ``score``)."""

    rows: EvalRows
    panel: Panel
    targets: list[str]
    points: dict[str, np.ndarray]  # (S, H) point forecasts
    scales: np.ndarray = field(init=False)  # MASE's denominator per row
    mase: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.scales = naive_scales(self.rows)
        self.mase = {name: self.row_mase(p) for name, p in self.points.items()}
        for name, p in self.points.items():
            q = MethodForecast(name, np.repeat(p[..., None], 3, axis=2))
            want = score(self.rows, q, self.targets)["overall"]["mase"]
            assert np.isclose(self.mase[name].mean(), want, rtol=1e-12), (name, want)

    def row_mase(self, point: np.ndarray) -> np.ndarray:
        return np.abs(self.rows.truth - point).mean(axis=1) / self.scales

    def best_of(self, members: list[str], subset: np.ndarray | slice = ALL) -> np.ndarray:
        """Each row's lowest MASE among ``members`` (the per-row oracle)."""
        return np.stack([self.mase[k][subset] for k in members], axis=1).min(axis=1)


def simplex(k: int, step: float) -> Iterator[np.ndarray]:
    n = round(1 / step)
    for head in itertools.product(range(n + 1), repeat=k - 1):
        if sum(head) <= n:
            yield np.array([*head, n - sum(head)]) / n


def best_blend(
    s: Scored, members: list[str], step: float, subset: np.ndarray | slice = ALL
) -> tuple[float, np.ndarray]:
    """The convex weights on a grid of ``step`` with the lowest mean MASE over ``subset``."""
    stacked = np.stack([s.points[k][subset] for k in members], axis=-1)
    truth, scales = s.rows.truth[subset], s.scales[subset]
    best = (np.inf, np.zeros(0))
    for w in simplex(len(members), step):
        value = float((np.abs(truth - stacked @ w).mean(axis=1) / scales).mean())
        if value < best[0]:
            best = (value, w)
    return best


def earlier_rows(rows: EvalRows, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows that have a row of the same repository and target one horizon earlier (its
    truth ends at this cutoff, so it is known), and that row."""
    repo, cutoff = rows.pairs[rows.window, 0], rows.cutoffs()
    keys = list(zip(repo.tolist(), rows.target.tolist(), cutoff.tolist(), strict=True))
    index = {k: i for i, k in enumerate(keys)}
    found = [(i, index.get((r, t, c - horizon))) for i, (r, t, c) in enumerate(keys)]
    pairs = np.array([(i, j) for i, j in found if j is not None])
    return pairs[:, 0], pairs[:, 1]


def top_count(n: int, percent: float) -> int:
    return int(np.ceil(n * percent / 100))


def table(title: str, header: str, body: list[list[str]]) -> list[str]:
    """A Markdown table under ``title``; ``header``'s columns are separated by commas."""
    columns = header.split(",")
    rule = "|---|" + "---:|" * (len(columns) - 1)
    return ["", title, "", "| " + " | ".join(columns) + " |", rule] + [
        "| " + " | ".join(cells) + " |" for cells in body
    ]


def ratio_cells(value: float, theta: float) -> list[str]:
    return [f"{value:.4f}", f"{value / theta:.3f}"]


def methods_table(s: Scored, theta: float) -> list[str]:
    body = [[k, *ratio_cells(v.mean(), theta)] for k, v in s.mase.items()]
    beats = np.mean(s.mase[DUAL] < s.mase["Theta"])
    title = f"Methods (the dual tower beats Theta on {beats:.1%} of the rows):"
    return table(title, "method,MASE,/ Theta", body)


def oracle_table(s: Scored, theta: float, seeds: list[str]) -> list[str]:
    body = []
    for members in [*ORACLES, [*BASELINES, *seeds], seeds]:
        m = np.stack([s.mase[k] for k in members], axis=1)
        picked = np.bincount(m.argmin(axis=1), minlength=len(members)) / len(m)
        share = ", ".join(f"{k} {p:.0%}" for k, p in zip(members, picked, strict=True))
        body.append([", ".join(members), *ratio_cells(m.min(axis=1).mean(), theta), share])
    a, b = s.points[DUAL], s.points["Theta"]
    per_w = np.stack([s.row_mase(w * a + (1 - w) * b) for w in np.linspace(0, 1, 101)])
    name = "w x dual + (1 - w) x Theta, w per row (step 0.01)"
    body.append([name, *ratio_cells(per_w.min(axis=0).mean(), theta), ""])
    title = "Per-row oracles (each row's best member, picked knowing its truth):"
    return table(title, "oracle over,MASE,/ Theta,rows picked", body)


def blend_table(s: Scored, theta: float) -> list[str]:
    body = []
    for members, step in BLENDS:
        value, w = best_blend(s, members, step)
        text = ", ".join(f"{k} {x:.2f}" for k, x in zip(members, w, strict=True))
        body.append([" + ".join(members), text, *ratio_cells(value, theta)])
    members, total = ["Naive", "Theta", DUAL], 0.0
    for t in range(len(s.targets)):
        subset = np.flatnonzero(s.rows.target == t)
        total += best_blend(s, members, 0.02, subset)[0] * len(subset)
    value = total / len(s.rows)
    body.append([" + ".join(members), "per target (step 0.02)", *ratio_cells(value, theta)])
    title = "Best fixed convex blends (weights tuned on these same rows: in-sample):"
    return table(title, "blend of,weights,MASE,/ Theta", body)


def selector_table(s: Scored) -> list[str]:
    now, before = earlier_rows(s.rows, s.rows.truth.shape[1])
    theta = s.mase["Theta"][now].mean()
    body = [[k, *ratio_cells(s.mase[k][now].mean(), theta)] for k in ["Theta", DUAL]]
    for members in [FOUR, ["Theta", DUAL]]:
        m = np.stack([s.mase[k] for k in members], axis=1)
        value = m[now, m[before].argmin(axis=1)].mean()
        body.append([f"last winner of {', '.join(members)}", *ratio_cells(value, theta)])
    value = s.best_of(FOUR, now).mean()
    body.append([f"oracle over {', '.join(FOUR)}", *ratio_cells(value, theta)])
    labels = ", ".join(s.panel.label(int(c)) for c in np.unique(s.rows.cutoffs()[now]))
    title = (
        f"Last winner: per repository and target, the method that was best at the cutoff one "
        f"horizon earlier ({len(now)} rows, cutoffs {labels}):"
    )
    return table(title, "method,MASE,/ Theta", body)


def concentration_tables(s: Scored) -> list[str]:
    n, body = len(s.rows), []
    for name in ["Theta", DUAL, "Naive", "AutoETS"]:
        desc = np.sort(s.mase[name])[::-1]
        shares = [f"{desc[: top_count(n, p)].sum() / desc.sum():.3f}" for p in (1, 5, 10)]
        body.append([name, *shares, f"{np.median(desc):.3f}", f"{desc[0]:.1f}"])
    title = "Share of each method's total MASE carried by its worst rows:"
    out = table(title, "method,top 1 %,top 5 %,top 10 %,median row,max row", body)
    order, body = np.argsort(-s.mase["Theta"]), []
    for p in (0, 1, 5):
        keep = np.sort(order[top_count(n, p) :])
        theta = s.mase["Theta"][keep].mean()
        label = f"without the top {p} % by Theta" if p else "all"
        cells = [f"{s.mase[k][keep].mean():.4f}" for k in FOUR]
        ratios = [s.mase[DUAL][keep].mean() / theta, s.best_of(FOUR, keep).mean() / theta]
        body.append([f"{label} ({len(keep)})", *cells, *(f"{x:.3f}" for x in ratios)])
    header = ",".join(["rows", *FOUR, "dual / Theta", "oracle(4) / Theta"])
    return out + table("Leaving out the worst rows by Theta's MASE:", header, body)


def per_target_table(s: Scored) -> list[str]:
    top, body = np.argsort(-s.mase["Theta"])[: top_count(len(s.rows), 1)], []
    total = s.mase["Theta"].sum()
    for t, name in enumerate(s.targets):
        idx = np.flatnonzero(s.rows.target == t)
        theta = s.mase["Theta"][idx].mean()
        ratios = [s.mase[k][idx].mean() / theta for k in ["Naive", "AutoETS", DUAL]]
        ratios += [s.best_of(FOUR, idx).mean() / theta, s.mase["Theta"][idx].sum() / total]
        cells = [name, str(len(idx)), f"{theta:.3f}", *(f"{x:.3f}" for x in ratios)]
        body.append([*cells, str(int(np.isin(top, idx).sum()))])
    return table("Per target (MASE over Theta's on the target's rows):", PER_TARGET, body)


def tables(s: Scored, seeds: list[str]) -> list[str]:
    theta = s.mase["Theta"].mean()
    return [
        *methods_table(s, theta),
        *oracle_table(s, theta, seeds),
        *blend_table(s, theta),
        *selector_table(s),
        *concentration_tables(s),
        *per_target_table(s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=1, help="statsforecast processes")
    args = parser.parse_args()
    os.environ["TOWERKIT_FORECAST_JOBS"] = str(args.jobs)
    torch.set_num_threads(1)
    started, begun = time.perf_counter(), dt.datetime.now(dt.UTC)
    seeds = [int(x) for x in args.seeds.split(",")]
    data, rows, quantiles = dual_tower(args.config, seeds)
    pairs, horizon = rows.pairs, data.splits.horizon
    trained_seconds = time.perf_counter() - started
    found, base_seconds = baseline_forecasts(data.panel, rows, BASELINES, horizon)
    points = {k: f.point for k, f in found.items()}
    points[DUAL] = np.mean(quantiles, axis=0)[..., 1]  # the recipe's seed ensemble
    points.update({f"dual seed {k}": q[..., 1] for k, q in zip(seeds, quantiles, strict=True)})
    # the Theta baseline should be the dual tower's own base (statsforecast Theta, cached)
    base = theta_forecasts(
        data.panel, pairs, data.target_idx, horizon, theta_cache_dir(data.config)
    )
    drift = np.abs(np.clip(base[rows.window, :, rows.target], 0.0, None) - points["Theta"]).max()
    scored = Scored(rows, data.panel, list(data.config.targets), points)
    stamp = (
        f"{begun:%Y-%m-%d %H:%M}-{dt.datetime.now(dt.UTC):%H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, 1 thread"
    )
    cutoffs = ", ".join(data.panel.label(c) for c in data.splits.val)
    lines = [
        f"validation rows: {len(rows)} (cutoffs {cutoffs}; the test cutoffs, from "
        f"{data.panel.label(min(data.splits.test))}, are not read); seeds {args.seeds}; {stamp}",
        f"dual tower {trained_seconds:.0f} s, baselines {base_seconds:.0f} s; Theta baseline vs "
        f"the dual tower's Theta base: max |difference| {drift:.2g}",
        *tables(scored, [f"dual seed {k}" for k in seeds]),
        "",
        f"total {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(lines))
    write_json_atomic(
        ROOT / "runs" / "bench" / "forecast-headroom.json",
        {"stamp": stamp, "seeds": seeds, "rows": len(rows), "table": lines},
    )


if __name__ == "__main__":
    main()

"""The forecast band and median after training: as trained, calibrated on validation (one shift
for both ends, or each end on its own side), and recalibrated at each cutoff from the model's
errors at the latest known cutoffs, on a replay of the test protocol that never reads the test.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_recalibration.py [--seeds 2] [--back 14]

Every split moves ``--back`` months earlier (``data.n_test_cutoffs`` = 12 + back), so the
replayed test is 12 monthly cutoffs whose target months all end before the real first test
cutoff (asserted), with validation and training before them as in the recipe. Each seed trains
the recipe (``ensemble=1``) twice, with ``calibrate_each_side`` off and on (the same seed gives
the same networks, only the band's shifts differ), and scores the replayed cutoffs. "Theta +
recalibration" moves Theta's own forecast by the same rolling median correction, to show how
much of the gain any forecast would get from it. Runs and a private registry go to
runs/bench/forecast-recalibration/; the numbers to runs/bench/forecast-recalibration.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from pathlib import Path

import numpy as np
import torch

from towerkit.core.io import write_json_atomic
from towerkit.core.registry import ModelRegistry
from towerkit.forecast.backtest import (
    EvalRows,
    MethodForecast,
    build_rows,
    model_forecast,
    score,
)
from towerkit.forecast.data import ForecastData, SplitWindows, predict_scaled, to_raw
from towerkit.forecast.recalibration import (
    band_as_trained,
    corrections,
    first_unseen,
    recalibrate,
)
from towerkit.forecast.recipe import default_config_path, load_recipe, train
from towerkit.forecast.windows import WindowArrays

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("mase", "pinball", "coverage", "below_p10", "above_p90")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=default_config_path("full"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--back", type=int, default=14, help="months the splits move back")
    parser.add_argument("--counts", default="3,6", help="recalibration cutoff counts to score")
    args = parser.parse_args()
    torch.set_num_threads(1)
    counts = [int(c) for c in args.counts.split(",")]
    real = load_recipe(args.config).data
    out_root = ROOT / "runs" / "bench" / "forecast-recalibration"
    registry = ModelRegistry(out_root / "registry.db")
    results: dict[str, list[dict[str, float]]] = {}
    for seed in range(args.seeds):
        for each_side in (False, True):
            overrides = [
                f"data.n_test_cutoffs={real.n_test_cutoffs + args.back}",
                "ensemble=1",
                f"trainer.seed={seed}",
                f"calibrate_each_side={str(each_side).lower()}",
            ]
            config = load_recipe(args.config, overrides)
            config.trainer.progress = False
            trained = train(config, registry=registry, runs_root=out_root, progress=False)
            data, model = trained.data, trained.model
            replay = data.splits.test[: real.n_test_cutoffs]
            real_first = data.panel.end - real.horizon - real.n_test_cutoffs + 1
            assert replay[-1] + real.horizon <= real_first, "a replayed target reaches the test"
            arrays = data.windows(replay)
            windows = SplitWindows(arrays, data.text_for(arrays.pairs, progress=False))
            rows = build_rows(data.panel, arrays.pairs, data.target_idx, real.horizon)
            targets, levels = list(real.targets), model.config.quantiles

            def scores(scaled: np.ndarray) -> dict[str, float]:
                raw = to_raw(scaled, arrays, data.target_idx)  # noqa: B023
                overall = score(rows, model_forecast("m", rows, raw, levels), targets)["overall"]  # noqa: B023
                return {k: overall[k] for k in KEYS}

            found: dict[str, dict[str, float]] = {}
            if each_side:
                found["calibrated, each side"] = scores(predict_scaled(model, windows))
            else:
                with band_as_trained(model):
                    found["as trained"] = scores(predict_scaled(model, windows))
                found["calibrated"] = scores(predict_scaled(model, windows))
                for count in counts:
                    scaled, _ = recalibrate(model, data, windows, count)
                    found[f"recalibrated, {count} cutoffs"] = scores(scaled)
                found["Theta"] = _theta_scores(rows, arrays, data, targets, None)
                unseen = first_unseen(model, data)
                assert unseen is not None
                for count in counts:
                    found[f"Theta + recalibration, {count} cutoffs"] = _theta_scores(
                        rows, arrays, data, targets, (unseen, count)
                    )
            for name, value in found.items():
                results.setdefault(name, []).append(value)
                print(f"seed {seed} {name}: {value}", flush=True)
    _report(results, args, out_root.parent)


def _theta_scores(
    rows: EvalRows,
    arrays: WindowArrays,
    data: ForecastData,
    targets: list[str],
    rolling: tuple[int, int] | None,
) -> dict[str, float]:
    """Theta's point forecast (the windows' scaled base), moved by the rolling median
    correction of the latest ``count`` cutoffs from ``unseen`` on (``rolling``)."""
    assert arrays.base is not None, "the recipe's base must be theta"
    point = np.repeat(arrays.base[..., None], 3, axis=-1)  # p10 = p50 = p90
    if rolling is not None:
        unseen, count = rolling
        cutoffs = arrays.pairs[:, 1]
        found = corrections(
            point, arrays.y, arrays.y_mask, cutoffs, np.unique(cutoffs).tolist(),
            unseen, data.config.horizon, count, [0.1, 0.5, 0.9], min_windows=1,
        )  # fmt: skip
        point = point.copy()
        for cutoff, fix in found.items():
            point[cutoffs == cutoff] += fix.offset[None, ..., None]
    raw = to_raw(point, arrays, data.target_idx)
    forecast = MethodForecast("Theta", np.clip(raw[rows.window, :, rows.target], 0.0, None))
    overall = score(rows, forecast, targets)["overall"]
    return {k: overall[k] for k in KEYS}


def _report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, out: Path
) -> None:
    stamp = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, 1 thread"
    )
    lines = [
        f"{stamp}; splits {args.back} months back, {args.seeds} seeds (mean; each in the JSON)",
        "",
        "| forecast | MASE | pinball | coverage | below p10 | above p90 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, per_seed in results.items():
        mean = {k: float(np.mean([s[k] for s in per_seed])) for k in KEYS}
        lines.append(
            f"| {name} | {mean['mase']:.4f} | {mean['pinball']:.3f} | {mean['coverage']:.3f} | "
            f"{mean['below_p10']:.3f} | {mean['above_p90']:.3f} |"
        )
    print("\n".join(lines))
    write_json_atomic(
        out / "forecast-recalibration.json", {"stamp": stamp, "results": results, "table": lines}
    )


if __name__ == "__main__":
    main()

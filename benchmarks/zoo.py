"""Zoo benchmark: every family's full recipe(s) beside its non-neural baselines.

    .venv/bin/python benchmarks/zoo.py [--families vision,audio] [--loso] [--threads 0]

For each ``configs/zoo/<family>-*.yaml`` except ``-quick`` (e.g. vision-full, text-pretrained) a
fresh subprocess trains the recipe (so CPU time and peak memory are that recipe's alone), scores
it on the test split, runs the family's baselines on the same split, and times inference with
PyTorch and ONNX Runtime at batch 1 and 64 (p50/p99 over 100 calls after 10 warm-up calls).
``--loso`` adds FSDD leave-one-speaker-out (one training per speaker, baseline beside it).
Results go to ``runs/bench/zoo.json`` (a run with ``--families`` replaces only those recipes'
entries there) and the whole "## Zoo" section of BENCHMARKS.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "runs" / "bench" / "zoo.json"
SECTION = "## Zoo"
BATCHES = (1, 64)
NOTE = (
    "Each recipe runs in its own process: wall and CPU seconds, examples/s and peak RSS are that "
    "recipe's alone (peak RSS includes the ONNX export). On a shared machine the wall time "
    "stretches with the load while the CPU time barely moves, so read both. The test split is "
    "touched once, after training; early stopping and best-checkpoint choice use the validation "
    "split carved from the training data."
)
# recipe -> (metric, at least, within wall seconds of the whole recipe or None): the goals
GOALS: dict[str, tuple[str, float, float | None]] = {
    "vision-full": ("test_accuracy", 0.92, 600.0),
    "audio-full": ("test_accuracy", 0.97, None),
    "concept-full": ("test_speech_to_image_top1", 0.90, None),
}


# --- one recipe, in its own process ----------------------------------------------------------


def resize_batch(case: tuple[torch.Tensor, ...], size: int) -> tuple[torch.Tensor, ...]:
    """Rows of a parity case repeated or cut to ``size`` (every zoo input has batch on axis 0)."""
    reps = math.ceil(size / case[0].shape[0])
    return tuple(torch.cat([t] * reps)[:size] for t in case)


def latencies(family: Any, model: Any, data: Any, export_dir: Path) -> list[dict[str, Any]]:
    from towerkit.core.export import OnnxPredictor, measure_latency

    rows = []
    model.eval()
    for spec in family.export_specs(model, data):
        largest = max(spec.cases, key=lambda case: case[0].shape[0])
        onnx = OnnxPredictor(export_dir / f"{spec.name}.onnx")
        for size in BATCHES:
            inputs = resize_batch(largest, size)
            feed = {n: t.numpy() for n, t in zip(spec.input_names, inputs, strict=True)}
            with torch.no_grad():
                torch_ms = measure_latency(
                    lambda module=spec.module, inputs=inputs: module(*inputs), 10, 100
                )
            ort_ms = measure_latency(lambda session=onnx, feed=feed: session(**feed), 10, 100)
            shape = "x".join(str(d) for d in inputs[0].shape)
            rows.append(
                {
                    "graph": spec.name,
                    "batch": size,
                    "shape": shape,
                    "torch": torch_ms,
                    "onnx": ort_ms,
                }
            )
    return rows


def run_one(
    family_name: str, config_path: Path, overrides: list[str], with_latency: bool
) -> dict[str, Any]:
    from towerkit.zoo.families import get_family
    from towerkit.zoo.recipe import load_recipe_config, train

    started = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}"
    wall, cpu = time.perf_counter(), time.process_time()
    runs = Path(tempfile.mkdtemp(prefix="zoo-bench-", dir=ROOT / "runs" / "bench"))
    result = train(
        family_name, config_path, overrides, promote="never", export=with_latency, runs_root=runs
    )
    out: dict[str, Any] = {
        "family": family_name,
        "recipe": config_path.stem,
        "started": started,
        "overrides": overrides,
        "data": result.data_description,
        "metrics": result.metrics,
        "run_dir": str(result.run_dir),
        "version": result.version.uri if result.version else None,
        "recipe_wall_s": time.perf_counter() - wall,
        "recipe_cpu_s": time.process_time() - cpu,
        "onnx": [
            {"name": e.name, "max_abs_diff": e.max_abs_diff, "cases": e.cases}
            for e in result.exports
        ],
    }
    family = get_family(family_name)
    config = load_recipe_config(family, config_path, overrides)
    data = family.build_data(config)
    out["baselines"] = [
        {"name": b.name, "metrics": b.metrics, "train_seconds": b.train_seconds}
        for b in family.baselines(config, data)
    ]
    if with_latency:
        from towerkit.core.model import BaseModel

        model = BaseModel.from_pretrained(result.run_dir / "model")
        out["latency"] = latencies(family, model, data, result.run_dir / "export")
    out["headline"] = f"test_{family.headline_metric()}"
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def worker_main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_one(args.family, Path(args.config), args.override or [], not args.no_latency)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))


# --- the driver ------------------------------------------------------------------------------


def spawn(
    family: str, config: Path, overrides: list[str], threads: int, latency: bool
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, __file__, "--worker", "--family", family, "--config", str(config)]
    cmd += ["--out", str(out), "--threads", str(threads)]
    cmd += [f"--override={o}" for o in overrides] + ([] if latency else ["--no-latency"])
    print("$", shlex.join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def recipes_of(family: str) -> list[Path]:
    return sorted(
        p
        for p in (ROOT / "configs" / "zoo").glob(f"{family}-*.yaml")
        if not p.stem.endswith("-quick")
    )


def loso(threads: int) -> list[dict[str, Any]]:
    """FSDD leave-one-speaker-out with the audio-full recipe, one fold per speaker."""
    from towerkit.zoo.audio_family import fsdd_clips

    speakers = sorted({c.speaker for c in fsdd_clips()})
    config = ROOT / "configs" / "zoo" / "audio-full.yaml"
    return [
        spawn(
            "audio",
            config,
            ["data.split=speaker", f"data.test_speaker={s}", "trainer.progress=false"],
            threads,
            False,
        )
        for s in speakers
    ]


def machine(threads: int) -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
        f"{platform.system()} {platform.release()}; torch {torch.__version__}, "
        f"{threads or torch.get_num_threads()} torch thread(s) per recipe; 1-minute load average "
        f"at start {load:.1f} (a shared machine: other jobs may run alongside)"
    )


def fmt_ms(stats: dict[str, float]) -> str:
    return f"{stats['p50_ms']:.2f} / {stats['p99_ms']:.2f}"


def markdown(
    results: list[dict[str, Any]], folds: list[dict[str, Any]], header: str, command: str
) -> str:
    lines = [SECTION, "", header, "", NOTE, ""]
    lines += [
        "| recipe | data | test metric | baselines (same split) | train s (wall / CPU) "
        "| train examples/s | peak RSS MiB | run at (1-min load) |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        m = r["metrics"]
        base = "; ".join(
            f"{b['name']}: {b['metrics'].get('accuracy', float('nan')):.4f}" for b in r["baselines"]
        )
        lines.append(
            f"| {r['recipe']} | {r['data']} | {r['headline'].removeprefix('test_')} "
            f"**{m.get(r['headline'], float('nan')):.4f}** | {base or '-'} | "
            f"{m['train_seconds']:.0f} / {r['recipe_cpu_s']:.0f} | "
            f"{m['train_examples_per_second']:,.0f} | {r['peak_rss_mib']:,.0f} | "
            f"{r.get('started', '?')} |"
        )
    lines += ["", *goal_lines(results), ""]
    lines += [
        "Inference latency, ms p50 / p99 (100 calls after 10 warm-up; PyTorch with the torch threads above, ONNX Runtime with its default thread pool; ONNX parity max |diff| in brackets):",
        "",
    ]
    lines += [
        "| recipe | graph | batch (input shape) | PyTorch | ONNX Runtime |",
        "|---|---|---|---:|---:|",
    ]
    for r in results:
        diffs = {e["name"]: e["max_abs_diff"] for e in r["onnx"]}
        for row in r.get("latency", []):
            lines.append(
                f"| {r['recipe']} | {row['graph']} [{diffs.get(row['graph'], float('nan')):.1e}] | "
                f"{row['batch']} ({row['shape']}) | {fmt_ms(row['torch'])} | {fmt_ms(row['onnx'])} |"
            )
    if folds:
        lines += [
            "",
            "FSDD leave-one-speaker-out (audio-full recipe; the held-out speaker is never heard in training):",
            "",
        ]
        lines += ["| held-out speaker | LSTM test accuracy | baseline |", "|---|---:|---|"]
        for f in folds:
            base = "; ".join(f"{b['name']}: {b['metrics']['accuracy']:.4f}" for b in f["baselines"])
            speaker = f["overrides"][1].split("=")[1]
            lines.append(f"| {speaker} | {f['metrics']['test_accuracy']:.4f} | {base} |")
        mean = sum(f["metrics"]["test_accuracy"] for f in folds) / len(folds)
        base_mean = sum(f["baselines"][0]["metrics"]["accuracy"] for f in folds) / len(folds)
        lines.append(f"| **mean** | **{mean:.4f}** | {base_mean:.4f} |")
    # results merge across runs (--families), so name every command that produced a row
    commands = dict.fromkeys(r.get("command", command) for r in results)
    lines += [""]
    lines += [f"- command: `{c}`" for c in commands]
    lines += [f"- results: `{RESULTS.relative_to(ROOT)}` (per-run directories listed there)"]
    return "\n".join(lines) + "\n"


def goal_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per recipe: its goal (where the issue sets one) and whether it beats the baselines."""
    lines = []
    for r in results:
        value = r["metrics"].get(r["headline"], float("nan"))
        parts = []
        goal = GOALS.get(r["recipe"])
        if goal is not None:
            metric, floor, seconds = goal
            met = r["metrics"].get(metric, float("nan")) >= floor
            met = met and (seconds is None or r["recipe_wall_s"] <= seconds)
            limit = f" within {seconds / 60:.0f} min" if seconds else ""
            parts.append(
                f"goal {metric} >= {floor:.2f}{limit}: **{'met' if met else 'not met'}** "
                f"({r['metrics'].get(metric, float('nan')):.4f} after {r['recipe_wall_s']:.0f} s "
                f"wall for the whole recipe, {r['recipe_cpu_s']:.0f} s CPU)"
            )
        scores = [b["metrics"].get("accuracy", float("nan")) for b in r["baselines"]]
        if scores and r["headline"] == "test_accuracy":
            verdict = "beats" if value > max(scores) else "does not beat"
            parts.append(f"{verdict} the best baseline ({max(scores):.4f})")
        if parts:
            lines.append(f"- {r['recipe']}: " + "; ".join(parts))
    return lines


def merge_with_earlier(
    results: list[dict[str, Any]], folds: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep earlier results of recipes not rerun now (``--families`` runs a subset)."""
    if not RESULTS.is_file():
        return results, folds
    earlier = json.loads(RESULTS.read_text())
    fresh = {r["recipe"] for r in results}
    kept = [r for r in earlier.get("results", []) if r["recipe"] not in fresh]
    return sorted(kept + results, key=recipe_order), folds or earlier.get("loso", [])


def recipe_order(result: dict[str, Any]) -> tuple[int, str]:
    from towerkit.zoo.families import FAMILY_MODULES

    names = list(FAMILY_MODULES)
    family = result["family"]
    return (names.index(family) if family in names else len(names), result["recipe"])


def write_section(text: str) -> None:
    """Replace (or add) the "## Zoo" section; other sections stay as they are."""
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.is_file() else "# Benchmarks\n"
    start = current.find(SECTION + "\n")
    if start == -1:
        current = current.rstrip() + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        rest = "\n" + current[end + 1 :] if end != -1 else ""  # keep a blank line before it
        current = current[:start] + text + rest
    BENCHMARKS_MD.write_text(current.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="", help="comma-separated (default: all available)")
    parser.add_argument("--loso", action="store_true", help="add FSDD leave-one-speaker-out")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per recipe (0: torch's default)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--override", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--no-latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    (ROOT / "runs" / "bench").mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker_main(args)
        return
    from towerkit.zoo.families import list_families

    header = (
        f"- machine: {machine(args.threads)}\n- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    families = [f for f in args.families.split(",") if f] or list_families()
    results = [
        spawn(family, config, ["trainer.progress=false"], args.threads, True)
        for family in families
        for config in recipes_of(family)
    ]
    folds = loso(args.threads) if args.loso else []
    command = shlex.join(["python", *sys.argv])
    for result in results:
        result["command"] = command
    results, folds = merge_with_earlier(results, folds)
    RESULTS.write_text(json.dumps({"results": results, "loso": folds}, indent=1, default=str))
    text = markdown(results, folds, header, command)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

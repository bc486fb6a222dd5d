"""SASRec: towerkit against RecBole 1.2.1 on the same MovieLens-100K leave-one-out split.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/seqrec.py [--epochs 30] [--threads 2]

1. MovieLens-100K (the ``movielens-100k`` asset), 5-core, time-ordered, leave-one-out: saved as
   a towerkit dataset and exported as RecBole atomic files whose timestamp is the position in
   the user's sequence, so both libraries split exactly the same way.
2. towerkit's SASRec and RecBole's SASRec (RecBole runs in its own virtualenv, default
   runs/bench/recbole-venv: ``pip install recbole==1.2.1 'numpy<2' 'pandas<2.3'
   'setuptools<70'`` plus the local torch 2.13.0 wheel) train for the same number of epochs with
   the same hidden size, heads, blocks, max length, dropout and loss (full softmax CE), each in
   its own process (peak RSS per process), no early stopping. Batch size and learning rate are
   RecBole's ``--batch`` / ``--lr`` on both sides unless ``--towerkit-batch`` / ``--towerkit-lr``
   set towerkit's (an epoch predicts every training target once on both sides, but towerkit
   packs a user's targets into windows of max_len, so its epoch has far fewer, fuller samples;
   benchmarks/seqrec_tune.py picks those two on the validation split).
3. Both models score every user's test history; towerkit's evaluator ranks both score matrices
   the same way (full ranking with the history masked, and 100 sampled negatives), with a
   paired bootstrap interval of the NDCG@10 difference. Online latency: one user's top-10.

Extra rows (e.g. "SASRec + text" from the UR4Rec part): ``--extra NAME=module:function``; the
function gets ``(data, sasrec_model, out_dir, epochs)`` and returns ``(scorer, max_len)``
(a ``towerkit.rec.sequential.metrics.UserScorer``), ranked and bootstrapped like the rest.

Writes runs/bench/seqrec/results.json and prints the markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from towerkit.core.io import write_json_atomic
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.metrics import EvalResult, ItemScorer, UserScorer, paired_bootstrap
from towerkit.rec.sequential.training import evaluate_model

ROOT = Path(__file__).resolve().parents[1]
NAME = "ml-100k-seq"


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=128, help="RecBole's (and by default ours)")
    parser.add_argument("--lr", type=float, default=0.001, help="RecBole's (and by default ours)")
    parser.add_argument(
        "--towerkit-batch", type=int, help="towerkit's batch size (default --batch)"
    )
    parser.add_argument("--towerkit-lr", type=float, help="towerkit's learning rate (default --lr)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "seqrec")
    parser.add_argument(
        "--recbole-python", type=Path, default=ROOT / "runs/bench/recbole-venv/bin/python"
    )
    parser.add_argument("--extra", action="append", default=[], help="NAME=module:function")
    parser.add_argument("--side", choices=["towerkit"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.towerkit_batch is None:
        args.towerkit_batch = args.batch
    if args.towerkit_lr is None:
        args.towerkit_lr = args.lr
    return args


def _prepare(out: Path) -> SeqDataset:
    from towerkit.rec.sequential.recipe import DataConfig, load_data

    data = load_data(DataConfig(format="ml-100k", name=NAME))
    data.save(out / "data")
    data.export_atomic(out / "atomic" / NAME, NAME)
    return data


def _towerkit_side(args: argparse.Namespace) -> None:
    """Child process: train towerkit's SASRec, save its test-history scores and timings."""
    from towerkit.core.callbacks import Callback
    from towerkit.core.registry import ModelRegistry
    from towerkit.rec.sequential.metrics.evaluate import pad_left
    from towerkit.rec.sequential.recipe import train

    torch.set_num_threads(args.threads)
    marks: list[float] = []

    class EpochClock(Callback):
        def on_train_begin(self, trainer: Any) -> None:
            marks.append(time.perf_counter())

        def on_epoch_end(self, trainer: Any) -> None:
            marks.append(time.perf_counter())

    overrides = towerkit_overrides(args, args.out / "data")
    # a private registry: a benchmark run is not a model for the user's registry
    registry = ModelRegistry(args.out / "registry.db")
    result = train(
        None, overrides, runs=args.out / "runs", callbacks=[EpochClock()], registry=registry
    )
    data, model = result.data, result.model.eval()
    histories = data.histories("test")
    with torch.no_grad():
        scores = model.score_all(pad_left(histories, args.max_len)).numpy()
    np.save(args.out / "towerkit_scores.npy", scores.astype(np.float32))
    summary = {
        "epoch_seconds": list(np.diff(marks)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "run_dir": str(result.run_dir),
        "n_parameters": model.num_parameters(),
    }
    write_json_atomic(args.out / "towerkit.json", summary)


def towerkit_overrides(args: argparse.Namespace, prepared: Path) -> list[str]:
    """The recipe overrides of towerkit's side (also used by benchmarks/seqrec_tune.py): quick
    recipe, the shared model settings, towerkit's batch size and lr, a fixed epoch budget,
    validation once at the end, no early stopping."""
    lr, epochs = args.towerkit_lr, args.epochs
    stage = f"{{name: sasrec, epochs: {epochs}, lr: {lr}, scheduler: constant}}"
    return [
        f"data.prepared={prepared}",
        f"model.hidden={args.hidden}",
        f"model.heads={args.heads}",
        f"model.blocks={args.blocks}",
        f"model.max_len={args.max_len}",
        f"model.dropout={args.dropout}",
        "model.loss=ce",
        f"trainer.stages=[{stage}]",
        f"trainer.batch_size={args.towerkit_batch}",
        "trainer.early_stopping_metric=null",
        "trainer.eval_every_steps=1000000000",  # validation once, at the end
        "trainer.progress=false",
        "trainer.tensorboard=false",
        "recipe=seq-sasrec-bench",
    ]


def _matrix_scorer(matrix: np.ndarray) -> UserScorer:
    table = torch.from_numpy(matrix)

    def prepare(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
        rows = table[users]
        return lambda items: rows[:, items] if items.ndim == 1 else rows.gather(1, items)

    return prepare


def _rank(scorer: UserScorer, data: SeqDataset, max_len: int) -> dict[str, EvalResult]:
    return {
        "full": evaluate_model(scorer, data, "test", max_len),
        "sampled": evaluate_model(scorer, data, "test", max_len, num_negatives=100, seed=0),
    }


def _run(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    args = _args()
    if args.side == "towerkit":
        _towerkit_side(args)
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = _prepare(args.out)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    flags = [f"--{k}={v}" for k, v in [("epochs", args.epochs), ("threads", args.threads),
             ("hidden", args.hidden), ("heads", args.heads), ("blocks", args.blocks),
             ("max-len", args.max_len), ("dropout", args.dropout), ("batch", args.batch),
             ("lr", args.lr), ("towerkit-batch", args.towerkit_batch),
             ("towerkit-lr", args.towerkit_lr), ("out", args.out)]]  # fmt: skip
    _run([sys.executable, __file__, "--side", "towerkit", *flags], env)
    ours = json.loads((args.out / "towerkit.json").read_text())
    recbole_cmd = [str(args.recbole_python), str(ROOT / "benchmarks/seqrec_recbole.py"),
                   str(args.out / "atomic" / NAME), NAME, str(args.out), str(args.epochs),
                   str(args.hidden), str(args.heads), str(args.blocks), str(args.max_len),
                   str(args.dropout), str(args.batch), str(args.lr)]  # fmt: skip
    _run(recbole_cmd, env)
    theirs = json.loads((args.out / "recbole.json").read_text())

    rows: dict[str, dict[str, EvalResult]] = {
        "towerkit SASRec": _rank(
            _matrix_scorer(np.load(args.out / "towerkit_scores.npy")), data, args.max_len
        ),
        "RecBole SASRec": _rank(
            _matrix_scorer(np.load(args.out / "recbole_scores.npy")), data, args.max_len
        ),
    }
    from towerkit.core.model import BaseModel
    from towerkit.rec.sequential.serve import scoring_latency

    model = BaseModel.from_pretrained(Path(ours["run_dir"]) / "model")
    torch.set_num_threads(1)
    latency = scoring_latency(model, data)
    torch.set_num_threads(args.threads)
    for spec in args.extra:
        name, _, target = spec.partition("=")
        module_name, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module_name), attr)
        scorer, max_len = fn(data, model, args.out, args.epochs)
        rows[name] = _rank(scorer, data, max_len)
    results = _results(args, ours, theirs, rows, latency)
    write_json_atomic(args.out / "results.json", results)
    print(_markdown(args, results))


def _results(
    args: argparse.Namespace,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    rows: dict[str, dict[str, EvalResult]],
    latency: dict[str, float],
) -> dict[str, Any]:
    base = rows["towerkit SASRec"]["full"].per_user("ndcg@10")
    table = {}
    for name, by_protocol in rows.items():
        entry: dict[str, Any] = {
            f"{protocol}_{metric}": result.metrics[metric]
            for protocol, result in by_protocol.items()
            for metric in ("ndcg@10", "hr@10", "mrr")
        }
        if name != "towerkit SASRec":
            ci = paired_bootstrap(base, by_protocol["full"].per_user("ndcg@10"))
            entry["full_ndcg@10_vs_towerkit"] = ci.describe("NDCG@10")
        table[name] = entry
    ours_epoch = float(np.median(ours["epoch_seconds"]))
    theirs_epoch = float(np.median(theirs["epoch_seconds"]))
    load = os.getloadavg()
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load avg {load[0]:.1f}",
        "threads": args.threads,
        "epochs": args.epochs,
        "settings": {
            k: getattr(args, k)
            for k in ("hidden", "heads", "blocks", "max_len", "dropout", "batch", "lr")
        },
        "towerkit_batch": args.towerkit_batch,
        "towerkit_lr": args.towerkit_lr,
        "rows": table,
        "towerkit_epoch_seconds": ours_epoch,
        "recbole_epoch_seconds": theirs_epoch,
        "epoch_time_ratio": ours_epoch / theirs_epoch,
        "towerkit_peak_rss_mb": ours["peak_rss_mb"],
        "recbole_peak_rss_mb": theirs["peak_rss_mb"],
        "recbole_own_test": theirs["recbole_own_test"],
        "ndcg10_ratio": table["towerkit SASRec"]["full_ndcg@10"]
        / table["RecBole SASRec"]["full_ndcg@10"],
        **latency,
    }


def _markdown(args: argparse.Namespace, r: dict[str, Any]) -> str:
    lines = [
        f"{r['date']}, {r['machine']}, {r['threads']} threads, {r['epochs']} epochs each, "
        f"settings {r['settings']}, full-softmax CE for both; batch / lr: RecBole "
        f"{r['settings']['batch']} / {r['settings']['lr']}, towerkit {r['towerkit_batch']} / "
        f"{r['towerkit_lr']}.",
        "",
        "| model | NDCG@10 full | HR@10 full | MRR full | NDCG@10 sampled-100 | HR@10 sampled-100 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        lines.append(
            f"| {name} | {row['full_ndcg@10']:.4f} | {row['full_hr@10']:.4f} | "
            f"{row['full_mrr']:.4f} | {row['sampled_ndcg@10']:.4f} | {row['sampled_hr@10']:.4f} |"
        )
    lines += [
        "",
        f"- NDCG@10 towerkit / RecBole: {r['ndcg10_ratio']:.3f}",
        f"- seconds per epoch (median): towerkit {r['towerkit_epoch_seconds']:.2f}, RecBole "
        f"{r['recbole_epoch_seconds']:.2f}, ratio {r['epoch_time_ratio']:.3f}",
        f"- peak RSS: towerkit {r['towerkit_peak_rss_mb']:.0f} MB, RecBole "
        f"{r['recbole_peak_rss_mb']:.0f} MB",
        f"- one-user top-10 latency (1 thread): p50 {r['latency_p50_ms']:.2f} ms, p99 "
        f"{r['latency_p99_ms']:.2f} ms",
        f"- RecBole's own evaluation (no history masking): {r['recbole_own_test']}",
    ]
    lines += [f"- {name}: {row['full_ndcg@10_vs_towerkit']}" for name, row in r["rows"].items()
              if "full_ndcg@10_vs_towerkit" in row]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()

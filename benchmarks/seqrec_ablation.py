"""UR4Rec ablation in one run: SASRec alone, + text retriever, + each fusion strategy, and the
full four-stage joint training, on one dataset's leave-one-out test users.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/seqrec_ablation.py --dataset ml-100k
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/seqrec_ablation.py --dataset amazon-mi

1. "frozen" run: stages pretrain_sasrec -> pretrain_retriever -> gate; the last two never touch
   SASRec, so its row is SASRec trained alone, and every other row differs from it only by
   what the text retriever adds. Rows: SASRec alone, text retriever alone, weighted sum and
   rerank top-50 (alpha chosen on validation), learned gate.
2. "joint" run: the same data and budget through the four-stage schedule (pretrain SASRec ->
   pretrain retriever -> alternating joint -> end to end) with the learned gate.
Every row: full-ranking test NDCG@10 / HR@10 / MRR and the paired bootstrap 95% interval of
the NDCG@10 change against run 1's SASRec alone (same users). Fixed epochs, no early stopping
(the best-validation restore would mix stages). Texts: the template backend unless --texts
points at a `towerkit rec seq generate-text` folder for this dataset.

Writes runs/bench/seqrec-ablation/<dataset>/results.json and prints the markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from towerkit.core.io import write_json_atomic
from towerkit.rec.sequential.ablation import ablation_rows, markdown_table
from towerkit.rec.sequential.metrics import paired_bootstrap
from towerkit.rec.sequential.training import evaluate_model
from towerkit.rec.sequential.ur4rec import config_path, train_ur4rec

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "ml-100k": {"format": "ml-100k", "name": "ml-100k"},
    "amazon-mi": {
        "format": "amazon",
        "name": "amazon-musical-instruments",
        "path": str(ROOT.parent / "shared/data/amazon/Musical_Instruments_5.json"),
    },
}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="ml-100k")
    parser.add_argument("--sasrec-epochs", type=int, default=20)
    parser.add_argument("--retriever-epochs", type=int, default=6)
    parser.add_argument("--gate-epochs", type=int, default=2)
    parser.add_argument("--joint-epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=str, default=None, help="a generate-text folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "seqrec-ablation")
    return parser.parse_args()


def _config(args: argparse.Namespace, out: Path, joint: bool) -> Path:
    config = yaml.safe_load(config_path("quick").read_text())
    config["recipe"] = f"ur4rec-bench-{'joint' if joint else 'frozen'}"
    config["data"].update(DATASETS[args.dataset])
    config["texts"]["texts"] = args.texts
    config["model"]["sasrec"]["max_len"] = args.max_len
    config["trainer"].update(early_stopping_metric=None, restore_best=False, progress=False)
    stages = config["trainer"]["stages"]
    stages[0]["epochs"], stages[1]["epochs"] = args.sasrec_epochs, args.retriever_epochs
    if joint:
        stages[2]["epochs"], stages[3]["epochs"] = args.joint_epochs, args.joint_epochs
    else:
        gate = {"name": "gate", "epochs": args.gate_epochs, "lr": 0.001, "trainable": ["gate.*"]}
        config["trainer"]["stages"] = [stages[0], stages[1], gate]
    path = out / f"{config['recipe']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    source = DATASETS[args.dataset].get("path")
    if source and not Path(source).is_file():
        raise SystemExit(f"{source}: not found (the shared Amazon file); nothing to benchmark")
    out = args.out / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frozen = train_ur4rec(_config(args, out, joint=False), runs=out / "runs")
    frozen_seconds = time.perf_counter() - started
    rows = frozen.ablation
    base = evaluate_model(
        frozen.model.user_scorer("weighted", 0.0), frozen.data, "test", args.max_len
    ).per_user("ndcg@10")
    started = time.perf_counter()
    joint = train_ur4rec(_config(args, out, joint=True), runs=out / "runs")
    joint_seconds = time.perf_counter() - started
    result = evaluate_model(joint.model.user_scorer(), joint.data, "test", args.max_len)
    boot = paired_bootstrap(base, result.per_user("ndcg@10"))
    rows.append(
        {
            "variant": "four-stage joint training, learned gate",
            "strategy": "gate",
            "alpha": None,
            **{k: result.metrics[k] for k in ("ndcg@10", "hr@10", "ndcg@20", "mrr")},
            "diff": boot.diff,
            "diff_low": boot.diff_low,
            "diff_high": boot.diff_high,
            "relative": boot.relative,
            "p_value": boot.p_value,
        }
    )
    rows += [
        {**r, "variant": "joint model, " + r["variant"]}
        for r in ablation_rows(joint.model, joint.data, args.max_len)[:2]
    ]
    results = _results(args, frozen.data.describe(), rows, frozen_seconds, joint_seconds)
    write_json_atomic(out / "results.json", results)
    print(_markdown(results))


def _results(
    args: argparse.Namespace, data: str, rows: list[dict[str, Any]], frozen: float, joint: float
) -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load avg {load[0]:.1f}",
        "threads": args.threads,
        "dataset": data,
        "texts": args.texts or "template backend",
        "epochs": {
            "sasrec": args.sasrec_epochs,
            "retriever": args.retriever_epochs,
            "gate": args.gate_epochs,
            "joint_and_end_to_end": args.joint_epochs,
        },
        "max_len": args.max_len,
        "rows": rows,
        "frozen_run_seconds": frozen,
        "joint_run_seconds": joint,
    }


def _markdown(r: dict[str, Any]) -> str:
    head = (
        f"{r['date']}, {r['machine']}, {r['threads']} threads; {r['dataset']}; texts: "
        f"{r['texts']}; epochs {r['epochs']}, max_len {r['max_len']}; runs took "
        f"{r['frozen_run_seconds']:.0f} s (frozen) and {r['joint_run_seconds']:.0f} s (joint)."
    )
    return head + "\n\n" + markdown_table(r["rows"])


if __name__ == "__main__":
    main()

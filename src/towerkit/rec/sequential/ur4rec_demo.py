"""UR4Rec's part of ``towerkit demo``: the quick recipe on MovieLens-100K (template texts, the
four-stage schedule with a learned gate) and its ablation against SASRec alone."""

from __future__ import annotations

import time
from pathlib import Path

from towerkit.core.errors import TowerkitError
from towerkit.core.report import DemoSection
from towerkit.rec.sequential.ur4rec import train_ur4rec

SHOWN = ("test_ndcg@10", "test_hr@10", "test_mrr", "test_sampled_ndcg@10", "train_seconds")


def run_demo(out_dir: Path) -> list[DemoSection]:
    started = time.perf_counter()
    try:
        result = train_ur4rec(None, ["trainer.progress=true"], runs=out_dir / "runs")
    except TowerkitError as exc:  # MovieLens-100K or MiniLM unavailable: say so in the report
        return [DemoSection("rec-ur4rec", "rec sequential: UR4Rec", notes=[f"skipped: {exc}"])]
    metrics = {k: result.metrics[k] for k in SHOWN}
    notes = [f"data: {result.data.describe()} (5-core, leave-one-out); texts: template backend"]
    for row in result.ablation:
        change = (
            f", NDCG@10 {row['diff']:+.4f} [{row['diff_low']:+.4f}, {row['diff_high']:+.4f}]"
            if "diff" in row
            else ""
        )
        notes.append(f"{row['variant']}: NDCG@10 {row['ndcg@10']:.4f}{change}")
    notes.append(f"registered: {result.version.uri if result.version else 'no'}")
    plots = [result.run_dir / "plots" / name for name in ("loss.png", "ablation.png")]
    return [
        DemoSection(
            "rec-ur4rec",
            "rec sequential: UR4Rec (SASRec + text-preference retriever) on MovieLens-100K",
            metrics=metrics,
            plots=[p for p in plots if p.is_file()],
            notes=notes,
            run_dir=result.run_dir,
            seconds=time.perf_counter() - started,
        )
    ]

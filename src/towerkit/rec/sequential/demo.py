"""The sequential part of ``towerkit demo``: SASRec's quick recipe on MovieLens-100K.

One ``DemoSection``: test metrics (full ranking and 100 sampled negatives), the loss plot, the
registry version, a recommendation for one held-out user and the one-user scoring latency.
"""

from __future__ import annotations

import time
from pathlib import Path

from towerkit.core.errors import TowerkitError
from towerkit.core.report import DemoSection
from towerkit.rec.sequential.recipe import train
from towerkit.rec.sequential.serve import recommend, scoring_latency

SHOWN = ("test_ndcg@10", "test_hr@10", "test_mrr", "test_sampled_ndcg@10", "test_sampled_hr@10")


def run_demo(out_dir: Path) -> list[DemoSection]:
    started = time.perf_counter()
    try:
        result = train(None, ["trainer.progress=true"], runs=out_dir / "runs")
    except TowerkitError as exc:  # MovieLens-100K unavailable here: say so in the report
        return [DemoSection("rec-seq", "rec sequential: SASRec", notes=[f"skipped: {exc}"])]
    data, model = result.data, result.model.eval()
    metrics = {k: result.metrics[k] for k in SHOWN}
    metrics.update({k: result.metrics[k] for k in ("train_seconds", "seconds_per_epoch")})
    metrics.update(scoring_latency(model, data, n_requests=100))
    user = data.user_ids[0]
    picks = recommend(model, data, user=user, items=None, k=3)
    last = data.item_texts[data.sequences[0][-1]]
    notes = [
        f"data: {data.describe()} (5-core, leave-one-out)",
        f"registered: {result.version.uri if result.version else 'no'}",
        f"user {user} last watched {last!r}; next: " + "; ".join(t for _, _, t in picks),
    ]
    return [
        DemoSection(
            "rec-seq",
            "rec sequential: SASRec on MovieLens-100K",
            metrics=metrics,
            plots=[p for p in [result.run_dir / "plots" / "loss.png"] if p.is_file()],
            notes=notes,
            run_dir=result.run_dir,
            seconds=time.perf_counter() - started,
        )
    ]

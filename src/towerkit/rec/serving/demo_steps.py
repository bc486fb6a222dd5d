"""Serving and export steps for the rec demo (``towerkit.rec.demo.STEPS``): each takes the demo
context after ``train`` (``ctx.version_ref``, ``ctx.out_dir``) and adds metrics and notes.

    serve        -> the registered version behind the real FastAPI app (in-process client):
                    /health, then /recommend for 50 known users (seen items excluded, checked)
    export-model -> ONNX query tower (parity checked), float16 candidates + top-10 overlap
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from towerkit.core.errors import TowerkitError


class Context(Protocol):
    """What the steps use of ``towerkit.rec.demo.DemoContext``."""

    out_dir: Any
    version_ref: str | None
    metrics: dict[str, float]
    notes: list[str]


def serve_step(ctx: Context, n_users: int = 50) -> None:
    from fastapi.testclient import TestClient

    from towerkit.rec.serving.app import create_app
    from towerkit.rec.serving.service import RecService

    if ctx.version_ref is None:
        raise TowerkitError("serve: no registered model (the train step did not run)")
    service = RecService(ctx.version_ref, "hnsw")
    client = TestClient(create_app(service))
    health = client.get("/health").json()
    bundle = service.served.bundle
    users = bundle.features.query_keys[:: max(1, len(bundle.features.query_keys) // n_users)]
    elapsed = []
    for user in users[:n_users]:
        start = time.perf_counter()
        response = client.post("/recommend", json={"user_id": user, "k": 10})
        elapsed.append((time.perf_counter() - start) * 1000)
        items = {item["item_id"] for item in response.json()["items"]}
        if response.status_code != 200 or items & bundle.seen_items(user):
            raise TowerkitError(f"serve: /recommend for user {user} answered {response.text}")
    report = health["index"]
    ctx.metrics["serve_hnsw_recall@10"] = report["recall"]
    ctx.metrics["serve_p50_ms"] = float(np.percentile(elapsed, 50))
    ctx.notes.append(
        f"serve {health['uri']}: {health['n_candidates']} candidates, HNSW "
        f"(efSearch {report['params']['ef_search']}) recall@10 {report['recall']:.3f} vs exact "
        f"on held-out users; {len(elapsed)} /recommend calls in-process, p50 "
        f"{ctx.metrics['serve_p50_ms']:.1f} ms, no seen item returned"
    )


def export_model_step(ctx: Context) -> None:
    from towerkit.rec.serving.export import export_model

    if ctx.version_ref is None:
        raise TowerkitError("export-model: no registered model (the train step did not run)")
    outcome = export_model(ctx.version_ref, ctx.out_dir / "export-model")
    overlap = outcome.overlap
    ctx.metrics["export_onnx_max_abs_diff"] = outcome.parity_max_abs_diff
    ctx.metrics["export_float16_top10_overlap"] = overlap["mean"]
    ctx.notes.append(
        f"export-model: {outcome.out_dir} (ONNX parity max |diff| "
        f"{outcome.parity_max_abs_diff:.1e}; float16 candidates give float32's top-10 for "
        f"{overlap['identical_fraction']:.1%} of {int(overlap['n_queries'])} users)"
    )


STEPS = [("serve", serve_step), ("export-model", export_model_step)]

"""The quick recipe on real MovieLens-100K, through the demo path: seed-db -> export -> train ->
evaluate -> register -> serve -> export-model -> A/B simulate. Slow: about a minute or two on 2 free cores (MiniLM titles included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.core.registry import ModelRegistry
from towerkit.rec.demo import run_demo


@pytest.mark.slow
def test_quick_recipe_on_movielens(ml100k_home: Path, tmp_path: Path) -> None:
    sections = run_demo(tmp_path / "demo", overrides=["trainer.progress=false"])
    assert len(sections) == 1
    section = sections[0]
    metrics = section.metrics
    assert metrics, section.notes
    # the product bar on held-out future interactions, and better retrieval than popularity
    assert metrics["test_auc"] > 0.7
    assert metrics["test_recall@50"] > metrics["test_popularity_recall@50"]
    # the session's registry may already hold versions from other tests: find this run's
    registered = next(n for n in section.notes if n.startswith("train: "))
    uri = registered.split("registered as ")[1].split(" ")[0]
    assert any(note.startswith(f"evaluate {uri}:") for note in section.notes)
    version = ModelRegistry().resolve(uri)
    assert version.metrics["test_two_tower_auc"] == metrics["test_auc"]
    assert {p.name for p in section.plots} >= {"loss.png", "recall_at_k.png", "abtest.png"}
    # the whole path ran: served, exported, and the A/B replay told the trained model from a
    # one-step challenger without a sample-ratio mismatch
    assert [n.split(":")[0] for n in section.notes if n.endswith(" s")][-3:] == [
        "serve",
        "export-model",
        "abtest",
    ]
    assert metrics["export_onnx_max_abs_diff"] < 1e-4
    assert metrics["abtest_conversion_lift"] > 0 and metrics["abtest_conversion_p_value"] < 0.01
    assert metrics["abtest_srm_p_value"] > 0.001

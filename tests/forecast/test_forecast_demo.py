"""The forecast part of ``towerkit demo`` on the shared OpenDigger corpus (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from towerkit.core.asset_sources import resolve_local_path

CORPUS = resolve_local_path("../shared/data/opendigger")


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the OpenDigger corpus is not at {CORPUS}")
def test_demo_section_scores_against_the_best_baseline(tmp_path: Path) -> None:
    from towerkit.forecast.demo import run_demo
    from towerkit.forecast.recipe import load_recipe

    [section] = run_demo(tmp_path)
    metrics = section.metrics
    assert section.domain == "forecast" and section.run_dir is not None
    backtest = json.loads((section.run_dir / "backtest" / "backtest.json").read_text())
    reference = backtest["reference"]
    assert reference in load_recipe(None).eval.baselines  # the quick recipe's
    best = min(backtest["scores"][b]["overall"]["mase"] for b in load_recipe(None).eval.baselines)
    assert backtest["scores"][reference]["overall"]["mase"] == best
    ours = backtest["scores"]["dual tower"]["overall"]
    assert metrics["test_mase"] == ours["mase"]
    expected = ours["mase"] / backtest["scores"][reference]["overall"]["mase"]
    assert metrics[f"test_mase_ratio_to_{reference}"] == pytest.approx(expected)
    ratio = backtest["ratios"]["dual tower"]
    assert any(f"({reference}): {ratio['ratio']:.3f} (95% CI" in note for note in section.notes)
    assert {"test_mase_blank_text", "test_mase_shuffled_text", "val_mase"} <= set(metrics)
    pngs = [p.name for p in section.plots]
    assert {"example.png", "mase_stars.png", "mase_by_horizon.png"} <= set(pngs)
    assert all(p.stat().st_size > 1000 for p in section.plots)

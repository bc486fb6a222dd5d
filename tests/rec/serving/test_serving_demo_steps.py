"""The serving and export steps the rec demo appends, on the tiny production model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from serving_models import NAME, TinyModels

from towerkit.core.errors import TowerkitError
from towerkit.rec.serving.demo_steps import STEPS, export_model_step, serve_step


@dataclass
class Ctx:
    out_dir: Path
    version_ref: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@pytest.mark.slow
def test_demo_steps_serve_and_export(tiny_home: TinyModels, tmp_path: Path) -> None:
    ctx = Ctx(tmp_path, f"{NAME}@production")
    for _, step in STEPS:
        step(ctx)
    assert [name for name, _ in STEPS] == ["serve", "export-model"]
    assert ctx.metrics["serve_hnsw_recall@10"] >= 0.9
    assert ctx.metrics["export_onnx_max_abs_diff"] < 1e-4
    assert 0.9 <= ctx.metrics["export_float16_top10_overlap"] <= 1.0
    assert (tmp_path / "export-model" / "query_tower.onnx").is_file()
    assert ctx.notes[0].startswith(f"serve {NAME}/{tiny_home.v2}: ")
    assert "no seen item returned" in ctx.notes[0]


def test_demo_steps_need_a_trained_model(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match="serve: no registered model"):
        serve_step(Ctx(tmp_path, None))
    with pytest.raises(TowerkitError, match="export-model: no registered model"):
        export_model_step(Ctx(tmp_path, None))

"""``run_demo``: one DemoSection per family with metrics, PNG plots and notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.zoo import families
from towerkit.zoo.demo import run_demo

TINY_DIGITS = (
    "data.dataset=digits-8x8",
    "data.flip=false",
    "model.widths=[16, 32]",
    "trainer.stages=[{name: train, epochs: 2, lr: 0.01}]",
    "trainer.progress=false",
)


@pytest.mark.slow
def test_demo_section_for_a_tiny_vision_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(families.FAMILY_MODULES, "ghost", "towerkit.zoo.no_such_family")
    monkeypatch.setattr(families, "_IMPORT_ERRORS", {})
    vision, ghost = run_demo(tmp_path, families=["vision", "ghost"], overrides=TINY_DIGITS)
    assert vision.domain == "zoo" and vision.title.startswith("zoo vision: digits-8x8")
    assert 0.0 <= vision.metrics["test_accuracy"] <= 1.0 and "train_seconds" in vision.metrics
    assert not any(k.startswith("val_") for k in vision.metrics)
    assert {p.name for p in vision.plots} >= {"confusion_matrix.png", "loss.png"}
    assert all(p.is_file() and p.read_bytes()[:4] == b"\x89PNG" for p in vision.plots)
    assert vision.run_dir is not None and vision.run_dir.is_relative_to(tmp_path / "runs")
    assert vision.notes[0] == "registered as zoo-vision/1 (now production)"
    assert vision.notes[1].startswith("predict test-image-0.png (true: ")
    assert "parity ok on 3 input cases" in vision.notes[2]
    assert ghost.metrics == {} and ghost.notes[0].startswith("skipped: zoo family 'ghost'")

"""A real, short contrastive training of the concept model on MNIST 5k, FSDD and digit words."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.core.asset_sources import shared_root
from towerkit.core.errors import TowerkitError
from towerkit.core.paths import repo_root
from towerkit.zoo import recipe
from towerkit.zoo.families import get_family

FSDD = shared_root() / "data" / "fsdd" / "recordings"


def quick_config(tmp_path: Path) -> Path:
    text = (repo_root() / "configs" / "zoo" / "concept-quick.yaml").read_text()
    path = tmp_path / "concept-test.yaml"
    path.write_text(text + "  progress: false\n  tensorboard: false\n")
    return path


@pytest.mark.slow
@pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
def test_quick_recipe_aligns_speech_images_and_words(tmp_path: Path) -> None:
    try:
        result = recipe.train("concept", quick_config(tmp_path))
    except TowerkitError as exc:
        if "mnist-5k" not in str(exc):
            raise
        pytest.skip(f"MNIST 5k unavailable: {exc}")
    metrics = result.metrics
    # chance is 10% for every top-1 below; a short run must be far above it
    assert metrics["test_speech_to_image_top1"] > 0.5
    assert metrics["test_image_to_speech_top1"] > 0.4
    assert metrics["test_speech_zero_shot_accuracy"] > 0.5
    assert metrics["test_image_zero_shot_accuracy"] > 0.5
    assert sorted(o.name for o in result.exports) == ["image_tower", "speech_tower", "text_tower"]
    assert all(o.parity_ok for o in result.exports)
    assert (result.run_dir / "plots" / "concept_space.png").stat().st_size > 10_000

    _, prediction = recipe.predict("concept", str(FSDD / "3_jackson_0.wav"), top_k=10)
    assert len(prediction.top) == 10
    assert sum(p for _, p in prediction.top) == pytest.approx(1.0, abs=1e-5)

    # the non-neural reference of the benchmark, on the same held-out recordings and images
    family = get_family("concept")
    config = recipe.load_recipe_config(family, quick_config(tmp_path))
    data = family.build_data(config)
    (baseline,) = family.baselines(config, data)
    assert (
        0.3 < baseline.metrics["speech_to_image_top1"] <= baseline.metrics["speech_to_image_top5"]
    )

"""A real, short training of the text family on the rotten-tomatoes reviews, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.core.errors import TowerkitError
from towerkit.core.paths import repo_root
from towerkit.zoo import recipe


def quick_config(tmp_path: Path) -> Path:
    text = (repo_root() / "configs" / "zoo" / "text-quick.yaml").read_text()
    path = tmp_path / "text-test.yaml"
    path.write_text(text.replace("progress: true", "progress: false"))
    return path


@pytest.mark.slow
def test_quick_recipe_learns_sentiment_and_predicts_after_reload(tmp_path: Path) -> None:
    try:
        result = recipe.train("text", quick_config(tmp_path), ["trainer.tensorboard=false"])
    except TowerkitError as exc:
        if "rotten-tomatoes" not in str(exc):
            raise
        pytest.skip(f"rotten-tomatoes corpus unavailable: {exc}")
    # 57.8% of the test reviews are "fresh": the model has to beat always answering that
    assert result.metrics["test_accuracy"] > 0.62
    assert result.metrics["test_macro_f1"] > 0.55
    assert all(outcome.parity_ok for outcome in result.exports)
    assert (result.run_dir / "model" / "tokenizer.json").is_file()

    loaded, prediction = recipe.predict("text", "a gorgeous, witty and moving film", top_k=2)
    assert loaded.version is not None and loaded.version.version == 1
    assert {name for name, _ in prediction.top} == {"fresh", "rotten"}
    assert sum(p for _, p in prediction.top) == pytest.approx(1.0, abs=1e-5)
    _, evaluation = recipe.evaluate("text")
    assert evaluation.metrics["accuracy"] == pytest.approx(result.metrics["test_accuracy"])

"""End to end on real data: train -> registry -> predict follows the alias -> rollback -> export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from towerkit.cli import main
from towerkit.core.model import BaseModel
from towerkit.core.registry import ModelRegistry
from towerkit.zoo import recipe
from towerkit.zoo.families import top_k_classes

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


def trainer_section(epochs: int, lr: float, batch_size: int) -> dict[str, object]:
    return {
        "batch_size": batch_size,
        "stages": [{"name": "train", "epochs": epochs, "lr": lr, "warmup_steps": 5}],
        "early_stopping_metric": "accuracy",
        "progress": False,
        "tensorboard": False,
    }


def digits_config(tmp_path: Path, epochs: int) -> Path:
    """The vision family on scikit-learn's 8x8 digits: real data, seconds to train."""
    config = {
        "recipe": "vision-digits-test",
        "data": {"dataset": "digits-8x8", "flip": False, "crop_padding": 1},
        "model": {"arch": "vision-cnn-small", "widths": [16, 32], "hidden": 64},
        "trainer": trainer_section(epochs, 0.01, 64),
    }
    path = tmp_path / f"digits-{epochs}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def expected_top(model_dir: str, png: Path) -> list[tuple[str, float]]:
    """What the saved model says about the PNG, computed here without the zoo's predict."""
    from PIL import Image

    model = BaseModel.from_pretrained(model_dir)
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255.0
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels)[None, None])[0]
    return top_k_classes(logits, model.config.class_names, 3)


@pytest.mark.slow
def test_vision_digits_train_register_predict_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = recipe.train("vision", digits_config(tmp_path, epochs=6), export=True)
    assert first.metrics["test_accuracy"] > 0.9, first.metrics
    assert first.version is not None and first.version.uri == "zoo-vision/1" and first.promoted
    assert (first.run_dir / "model" / "model.safetensors").is_file()
    assert (first.run_dir / "plots" / "confusion_matrix.png").is_file()
    assert first.exports[0].parity_ok and first.exports[0].cases == 3

    # a weaker second version, promoted by hand; predict must follow the production alias
    second = recipe.train(
        "vision", digits_config(tmp_path, epochs=1), promote="always", export=False
    )
    assert second.version is not None and second.version.uri == "zoo-vision/2"
    assert first.example is not None
    png = Path(first.example[0])
    loaded, prediction = recipe.predict("vision", str(png), top_k=3)
    assert loaded.label == "zoo-vision/2"
    expected = expected_top(second.version.model_dir, png)
    assert [label for label, _ in prediction.top] == [label for label, _ in expected]
    assert [p for _, p in prediction.top] == pytest.approx([p for _, p in expected], abs=1e-6)

    registry = ModelRegistry()
    assert registry.rollback("zoo-vision").version == 1
    assert main(["zoo", "predict", "zoo-vision", str(png)]) == 0
    out = capsys.readouterr().out
    assert "model: zoo-vision/1" in out
    best_label, best_p = expected_top(first.version.model_dir, png)[0]
    assert f"1. {best_label}  {best_p:.4f}" in out

    # evaluate re-reads the run's config and scores the same test split
    _, evaluation = recipe.evaluate("zoo-vision/1")
    assert evaluation.metrics["accuracy"] == pytest.approx(first.metrics["test_accuracy"])

    assert main(["zoo", "export", "vision", "--out", str(tmp_path / "onnx")]) == 0
    assert "parity ok on 3 cases" in capsys.readouterr().out
    assert (tmp_path / "onnx" / "model.onnx").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD recordings not under ../shared/data/fsdd")
def test_audio_short_training_on_fsdd_and_wav_predict(tmp_path: Path) -> None:
    config = {
        "recipe": "audio-test",
        "data": {"split": "usual", "train_limit": 600},
        "model": {"arch": "audio-lstm-small", "hidden": 48},
        "trainer": trainer_section(3, 0.01, 32),
    }
    path = tmp_path / "audio.yaml"
    path.write_text(yaml.safe_dump(config))
    result = recipe.train("audio", path, export=True)
    assert result.metrics["test_accuracy"] > 0.6, result.metrics
    assert "250 test clips" in result.data_description
    # the LSTM passes parity on padded batches of several lengths, each clip alone included
    assert result.exports[0].parity_ok and result.exports[0].cases == 4
    assert result.example is not None
    wav, truth = result.example
    _, prediction = recipe.predict(str(result.run_dir), wav, top_k=10)
    assert len(prediction.top) == 10 and sum(p for _, p in prediction.top) == pytest.approx(1.0)
    assert {label for label, _ in prediction.top} == {str(d) for d in range(10)}
    assert truth == Path(wav).name.split("_")[0]


@pytest.mark.slow
def test_resume_an_interrupted_run_ends_with_identical_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config = yaml.safe_load(digits_config(tmp_path, epochs=3).read_text())
    config["trainer"].update(early_stopping_metric=None, keep_last=5)
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(config))
    full = recipe.train("vision", path, export=False)
    weights = load_file(str(full.run_dir / "model" / "model.safetensors"))
    checkpoints = sorted((full.run_dir / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 3
    for leftover in checkpoints[-1].iterdir():  # as if killed before the last epoch ended
        leftover.unlink()
    checkpoints[-1].rmdir()
    (full.run_dir / "metrics.json").unlink()  # written last: a killed run has none

    resumed = recipe.train("vision", resume=full.run_dir, export=False)
    assert resumed.run_dir == full.run_dir and resumed.version is not None
    assert resumed.version.uri == "zoo-vision/2"
    again = load_file(str(full.run_dir / "model" / "model.safetensors"))
    assert again.keys() == weights.keys()
    assert all(torch.equal(again[k], weights[k]) for k in weights)
    assert resumed.metrics["test_accuracy"] == full.metrics["test_accuracy"]

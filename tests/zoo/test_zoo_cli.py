"""``towerkit zoo``: bad input gives one line on stderr and exit code 2; nothing is trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from towerkit.cli import main
from towerkit.core.model import create_model


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def vision_dir(tmp_path: Path) -> Path:
    model = create_model("vision-cnn-small", class_names=[str(i) for i in range(10)])
    return model.save_pretrained(tmp_path / "vision-model")


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    model = create_model("audio-lstm-small", class_names=[str(i) for i in range(10)])
    return model.save_pretrained(tmp_path / "audio-model")


def test_unknown_family(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["zoo", "train", "smell"], capsys)
    assert_one_line_error(code, err, "unknown zoo family 'smell'", "vision", "audio")


def test_missing_config_and_bad_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code, err = run(["zoo", "train", "vision", "--config", str(missing)], capsys)
    assert_one_line_error(code, err, str(missing), "not found")
    code, err = run(["zoo", "train", "vision", "data.colour=blue"], capsys)
    assert_one_line_error(code, err, "unknown key 'data.colour'")
    code, err = run(["zoo", "train", "vision", "data.dataset=cifar"], capsys)
    assert_one_line_error(code, err, "data.dataset", "fashion-mnist")
    code, err = run(["zoo", "train", "vision", "--promote", "sometimes"], capsys)
    assert_one_line_error(code, err, "--promote")
    assert not (tmp_path / "runs").exists()  # nothing started


def refused_before_a_run(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``zoo train`` refuses the setting in one line when the config loads, before a run."""
    monkeypatch.setenv("TOWERKIT_RUNS", str(tmp_path / "runs"))
    code, err = run(["zoo", "train", *argv], capsys)
    assert_one_line_error(code, err, expected)
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused when the config loads, before a run


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["vision", "data.val_fraction=2"], "data: val_fraction: expected 0 < value < 1, got 2.0"),
        (["vision", "data.val_fraction=0"], "data: val_fraction: expected 0 < value < 1, got 0.0"),
        (["vision", "data.train_limit=-1"], "data: train_limit: expected >= 0, got -1"),
        (["audio", "data.val_fraction=1.0"], "data: val_fraction: expected 0 < value < 1, got 1.0"),
        (["audio", "data.n_mels=0"], "data: n_mels: expected >= 1, got 0"),
        (["audio", "data.max_seconds=-2"], "data: max_seconds: expected > 0, got -2.0"),
        (["concept", "data.hop_length=0"], "data: hop_length: expected >= 1, got 0"),
        (["concept", "data.seed=-3"], "data: seed: expected >= 0, got -3"),
        (["text", "data.max_length=0"], "data: max_length: expected >= 1, got 0"),
        (
            ["text", "data.train_fraction=0.9", "data.val_fraction=0.2"],
            "data: train_fraction + val_fraction: expected < 1 (the rest is the test split)",
        ),
    ],
)
def test_out_of_range_data_settings_are_one_line(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_a_run(argv, expected, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["vision", "model.dropout=1.5"], "model: dropout: expected 0 <= value < 1, got 1.5"),
        (["vision", "model.dropout=-0.1"], "model: dropout: expected 0 <= value < 1, got -0.1"),
        (["vision", "model.hidden=-1"], "model: hidden: expected >= 0, got -1"),
        (["vision", "model.widths=[0]"], "model: widths: expected >= 1, got 0 (in [0])"),
        (["vision", "model.widths=[32,0]"], "model: widths: expected >= 1, got 0 (in [32, 0])"),
        (["vision", "model.widths=[]"], "model: widths: expected a non-empty list, got []"),
        (["vision", "model.convs_per_block=0"], "model: convs_per_block: expected >= 1, got 0"),
        (["audio", "model.num_layers=0"], "model: num_layers: expected >= 1, got 0"),
        (["audio", "model.hidden=0"], "model: hidden: expected >= 1, got 0"),
        (["audio", "model.dropout=1"], "model: dropout: expected 0 <= value < 1, got 1.0"),
        (["text", "model.n_heads=0"], "model: n_heads: expected >= 1, got 0"),
        (["text", "model.n_layers=0"], "model: n_layers: expected >= 1, got 0"),
        (["text", "model.ngram_buckets=-1"], "model: ngram_buckets: expected >= 0, got -1"),
        (["text", "model.dropout=2"], "model: dropout: expected 0 <= value < 1, got 2.0"),
        (
            ["text", "model.n_heads=3"],  # text-quick.yaml sets d_model: 64
            "model: d_model: expected a multiple of n_heads (3), got 64",
        ),
        (["concept", "model.dim=0"], "model: dim: expected >= 1, got 0"),
        (
            ["concept", "model.init_temperature=0"],
            "model: init_temperature: expected > 0, got 0.0",
        ),
    ],
)
def test_out_of_range_model_settings_are_one_line(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_a_run(argv, expected, tmp_path, monkeypatch, capsys)


def test_model_settings_in_range_still_load() -> None:
    """0 is a valid vision hidden width (no hidden layer), a None keeps the arch's default."""
    from towerkit.zoo.families import get_family
    from towerkit.zoo.recipe import load_recipe_config

    vision = load_recipe_config(get_family("vision"), None, ["model.hidden=0", "model.dropout=0"])
    assert vision.model.hidden == 0 and vision.model.dropout == 0
    text = load_recipe_config(get_family("text"), None, ["model.d_model=96", "model.n_heads=3"])
    assert (text.model.d_model, text.model.n_heads) == (96, 3)
    audio = load_recipe_config(get_family("audio"))
    assert audio.model.num_layers is None


def test_unknown_registry_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    png.write_bytes(b"")
    code, err = run(["zoo", "predict", "zoo-vision", str(png)], capsys)
    assert_one_line_error(code, err, "zoo-vision")
    code, err = run(["zoo", "evaluate", "vision@staging"], capsys)
    assert_one_line_error(code, err, "zoo-vision")


def test_not_a_model_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["zoo", "evaluate", str(tmp_path)], capsys)
    assert_one_line_error(code, err, str(tmp_path), "not a model directory")
    some_file = tmp_path / "weights.bin"
    some_file.write_bytes(b"0")
    code, err = run(["zoo", "export", str(some_file)], capsys)
    assert_one_line_error(code, err, "weights.bin", "model directory or a registry reference")


def test_predict_bad_images(
    vision_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["zoo", "predict", str(vision_dir), str(tmp_path / "gone.png")], capsys)
    assert_one_line_error(code, err, "gone.png", "image file not found")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    code, err = run(["zoo", "predict", str(vision_dir), str(fake)], capsys)
    assert_one_line_error(code, err, "fake.png", "not a readable image")
    code, err = run(["zoo", "predict", str(vision_dir), str(fake), "--top-k", "0"], capsys)
    assert_one_line_error(code, err, "--top-k")


def test_predict_on_an_image_prints_probabilities(
    vision_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    png = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(
        png
    )
    assert main(["zoo", "predict", str(vision_dir), str(png), "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"model: {vision_dir}"
    probabilities = [float(line.split()[-1]) for line in lines[1:]]
    assert len(probabilities) == 2 and probabilities[0] >= probabilities[1] > 0


def test_predict_bad_audio(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    code, err = run(["zoo", "predict", str(audio_dir), str(broken)], capsys)
    assert_one_line_error(code, err, "broken.wav", "cannot read audio")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 8000)
    code, err = run(["zoo", "predict", str(audio_dir), str(empty)], capsys)
    assert_one_line_error(code, err, "empty.wav", "no samples")


def test_predict_on_a_wav_at_another_rate(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "tone.wav"
    t = np.arange(16000 // 2) / 16000
    sf.write(wav, 0.2 * np.sin(2 * np.pi * 300 * t), 16000)
    assert main(["zoo", "predict", str(audio_dir), str(wav), "--top-k", "10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert sorted(line.split()[1] for line in lines) == [str(d) for d in range(10)]
    assert sum(float(line.split()[-1]) for line in lines) == pytest.approx(1.0, abs=1e-3)

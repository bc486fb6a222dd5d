"""Vision CNN and audio LSTM: shapes, save/load round trip, padding invariance, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from towerkit.core.export import check_onnx_parity, export_onnx
from towerkit.core.model import BaseModel, create_model, list_models
from towerkit.zoo.models.audio import AudioLSTM, reverse_within_lengths
from towerkit.zoo.models.vision import VisionCNN


def test_models_are_registered_by_name() -> None:
    assert {"vision-cnn-small", "vision-cnn-base"} <= set(list_models("vision-"))
    assert {"audio-lstm-small", "audio-lstm-base"} <= set(list_models("audio-"))


@pytest.mark.parametrize("name", ["vision-cnn-small", "vision-cnn-base"])
def test_vision_shapes_and_embedding(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    assert isinstance(model, VisionCNN)
    images = torch.rand(5, 1, 28, 28)
    assert model(images).shape == (5, 7)
    assert model.embed(images).shape == (5, model.embedding_dim)
    digits = create_model(name, image_size=8, widths=[16, 32]).eval()
    assert digits(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="too small"):
        create_model(name, image_size=4, widths=[8, 8, 8])


def test_vision_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("vision-cnn-small", mean=0.3, std=0.35, class_names=list("abcdefghij"))
    model.train()
    model(torch.rand(16, 1, 28, 28))  # move batch-norm running statistics off their defaults
    model.eval()
    images = torch.rand(4, 1, 28, 28)
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "model"))
    assert isinstance(loaded, VisionCNN) and loaded.config == model.config
    assert torch.equal(loaded(images), model(images))


def test_reverse_within_lengths_keeps_padding_in_place() -> None:
    x = torch.arange(2 * 4).float().reshape(2, 4, 1)
    out = reverse_within_lengths(x, torch.tensor([3, 4]))
    assert out[..., 0].tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


@pytest.mark.parametrize("bidirectional", [True, False])
def test_audio_padding_never_changes_a_prediction(bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = create_model("audio-lstm-base", n_mels=8, bidirectional=bidirectional).eval()
    short, long = torch.randn(1, 9, 8), torch.randn(1, 23, 8)
    batch = torch.zeros(2, 23, 8)
    batch[0, :9], batch[1] = short[0], long[0]
    batch[0, 9:] = 5.0  # garbage in the padding must not matter
    lengths = torch.tensor([9, 23])
    together = model(batch, lengths)
    alone = torch.cat([model(short, torch.tensor([9])), model(long, torch.tensor([23]))])
    assert together.shape == (2, 10)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_audio_save_load_round_trip(tmp_path: Path) -> None:
    model = create_model(
        "audio-lstm-small", n_mels=6, feature_mean=[1.0] * 6, feature_std=[2.0] * 6
    ).eval()
    features, lengths = torch.randn(3, 12, 6), torch.tensor([12, 7, 3])
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "model"))
    assert isinstance(loaded, AudioLSTM) and loaded.config.feature_std == [2.0] * 6
    assert torch.equal(loaded(features, lengths), model(features, lengths))


@pytest.mark.slow
def test_audio_lstm_onnx_parity_at_several_lengths(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(
        "audio-lstm-small", n_mels=16, hidden=24
    ).eval()  # 1 layer: 4x faster export
    path = export_onnx(
        model,
        (torch.randn(2, 30, 16), torch.tensor([30, 17])),
        tmp_path / "audio.onnx",
        input_names=["features", "lengths"],
        output_names=["logits"],
        dynamic_dims={"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
    )
    cases = []
    for batch, frames in [(1, 5), (3, 64), (8, 150), (2, 2)]:
        lengths = torch.randint(2, frames + 1, (batch,))
        lengths[0] = frames
        cases.append((torch.randn(batch, frames, 16), lengths))
    report = check_onnx_parity(model, path, cases)
    report.assert_ok()
    assert len(report.cases) == 4 and report.max_abs_diff < 1e-4


@pytest.mark.slow
def test_vision_cnn_onnx_parity_across_batch_sizes(tmp_path: Path) -> None:
    model = create_model("vision-cnn-small", mean=0.28, std=0.35).eval()
    path = export_onnx(
        model,
        (torch.rand(2, 1, 28, 28),),
        tmp_path / "vision.onnx",
        input_names=["images"],
        output_names=["logits"],
        dynamic_dims={"images": {0: "batch"}},
    )
    report = check_onnx_parity(model, path, [(torch.rand(b, 1, 28, 28),) for b in (1, 7, 64)])
    report.assert_ok()
    assert [c.output_shapes[0] for c in report.cases] == [(1, 10), (7, 10), (64, 10)]

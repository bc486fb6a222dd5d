"""Concept model: InfoNCE on hand-made vectors, the retrieval metric, towers, save/load, ONNX."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from towerkit.core.export import check_onnx_parity, export_onnx
from towerkit.core.model import BaseModel, create_model
from towerkit.zoo.concept_family import ConceptFamily, retrieval_metrics, retrieval_top_k
from towerkit.zoo.models.concept import ConceptModel, encode_words, info_nce


def small_concept() -> ConceptModel:
    torch.manual_seed(0)
    model = create_model("concept-digits", dim=16)
    assert isinstance(model, ConceptModel)
    return model.eval()


def test_info_nce_on_a_hand_made_example() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scale = torch.tensor(1.0)
    # logits [[1, 0], [0, 1]]: each row's loss is -log(e / (e + 1)) = log(1 + 1/e)
    expected = math.log(1 + math.exp(-1))
    assert float(info_nce(a, a, scale)) == pytest.approx(expected, abs=1e-6)
    # both items of one class: the target is uniform over the row, -(log p1 + log p2) / 2
    p_same, p_other = math.e / (math.e + 1), 1 / (math.e + 1)
    expected_same_class = -(math.log(p_same) + math.log(p_other)) / 2
    labels = torch.tensor([3, 3])
    assert float(info_nce(a, a, scale, labels)) == pytest.approx(expected_same_class, abs=1e-6)
    # distinct labels reduce to the one-positive case; a larger scale sharpens it
    assert float(info_nce(a, a, scale, torch.tensor([0, 1]))) == pytest.approx(expected, abs=1e-6)
    sharp = math.log(1 + math.exp(-10))
    assert float(info_nce(a, a, torch.tensor(10.0))) == pytest.approx(sharp, abs=1e-6)


def test_info_nce_is_symmetric_in_rows_and_columns() -> None:
    torch.manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1])
    scale = torch.tensor(7.0)
    torch.testing.assert_close(info_nce(a, b, scale, labels), info_nce(b, a, scale, labels))


def test_retrieval_top_k_on_a_tiny_hand_made_set() -> None:
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    gallery_labels = np.array([0, 1, 2, 1])
    queries = torch.tensor([[0.9, 0.1], [0.1, 1.0], [-0.7, -0.7]])
    query_labels = np.array([0, 0, 2])
    # q0: nearest g0 (class 0) -> hit at 1; q1: order g1, g3, g0 -> class 0 only at rank 3;
    # q2: nearest g2 (class 2) -> hit at 1
    found = retrieval_top_k(queries, query_labels, gallery, gallery_labels, ks=(1, 2, 3))
    assert found == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(1.0)}


def test_retrieval_metrics_name_every_direction() -> None:
    eye = torch.eye(3)
    labels = np.array([0, 1, 2])
    vectors = {
        "image": eye, "image_labels": labels,
        "speech": eye, "speech_labels": labels,
        "text": eye, "text_labels": labels,
        "prototypes": eye,
    }  # fmt: skip
    metrics = retrieval_metrics(vectors)
    assert metrics["speech_to_image_top1"] == 1.0
    assert metrics["speech_zero_shot_accuracy"] == 1.0
    shuffled = dict(vectors, speech=eye[[1, 2, 0]])
    assert retrieval_metrics(shuffled)["speech_to_image_top1"] == 0.0
    assert retrieval_metrics(shuffled)["speech_zero_shot_accuracy"] == 0.0


def test_word_encoding_and_text_tower_ignore_padding() -> None:
    ids, mask = encode_words(["Seven", "7"])
    assert ids.tolist() == [[115, 101, 118, 101, 110], [55, 0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    model = small_concept()
    with torch.no_grad():
        together = model.embed_words(["seven", "7", "the number three"])
        alone = model.embed_words(["7"])
    torch.testing.assert_close(together[1], alone[0], atol=1e-6, rtol=1e-5)
    assert torch.allclose(together.norm(dim=-1), torch.ones(3))


def test_towers_output_unit_vectors_and_speech_ignores_padding() -> None:
    model = small_concept()
    images = torch.rand(3, 1, 28, 28)
    features = torch.randn(2, 30, 40)
    with torch.no_grad():
        image_vectors = model.embed_images(images)
        both = model.embed_speech(features, torch.tensor([30, 12]))
        short = model.embed_speech(features[1:, :12], torch.tensor([12]))
    assert image_vectors.shape == (3, 16)
    torch.testing.assert_close(image_vectors.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(both[1], short[0], atol=1e-5, rtol=1e-5)


def test_save_load_round_trip_gives_equal_vectors(tmp_path: Path) -> None:
    model = small_concept()
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "concept"))
    assert isinstance(loaded, ConceptModel)
    images = torch.rand(2, 1, 28, 28)
    features, lengths = torch.randn(2, 25, 40), torch.tensor([25, 9])
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_images(images), model.embed_images(images))
        torch.testing.assert_close(
            loaded.embed_speech(features, lengths), model.embed_speech(features, lengths)
        )
        torch.testing.assert_close(loaded.embed_words(["nine"]), model.embed_words(["nine"]))
    assert float(loaded.scale()) == pytest.approx(1 / 0.07, rel=1e-5)
    prediction = ConceptFamily().predict(loaded, "seven", top_k=3)
    assert len(prediction.top) == 3
    assert all(name in model.config.class_names for name, _ in prediction.top)


def test_text_and_speech_towers_onnx_parity_at_several_lengths(tmp_path: Path) -> None:
    model = small_concept()
    text_path = export_onnx(
        model.text_tower,
        encode_words(["seven", "7"]),
        tmp_path / "text.onnx",
        input_names=["char_ids", "char_mask"],
        output_names=["concept"],
        dynamic_dims={"char_ids": {0: "batch", 1: "chars"}, "char_mask": {0: "batch", 1: "chars"}},
    )
    word_sets = [["1"], ["three"], ["the number three", "4"], ["digit 9"] * 5]
    check_onnx_parity(model.text_tower, text_path, [encode_words(w) for w in word_sets]).assert_ok()

    torch.manual_seed(2)
    speech_path = export_onnx(
        model.speech_tower,
        (torch.randn(2, 20, 40), torch.tensor([20, 11])),
        tmp_path / "speech.onnx",
        input_names=["features", "lengths"],
        output_names=["concept"],
        dynamic_dims={"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
    )
    cases = [
        (torch.randn(1, 7, 40), torch.tensor([7])),
        (torch.randn(3, 55, 40), torch.tensor([55, 30, 4])),
        (torch.randn(1, 120, 40), torch.tensor([120])),
    ]
    check_onnx_parity(model.speech_tower, speech_path, cases).assert_ok()

"""The forecast text tower's embedding cache: computed once per text, read back from disk, one
file per encoder whatever characters the encoder's name holds, and a text's vector the same
whatever was embedded beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import towerkit.forecast.text as text_module
from towerkit.core.errors import TowerkitError
from towerkit.forecast.text import EmbeddingCache


class CountingEncoder:
    """Stands in for the sentence encoder: a vector from each text's length, calls counted."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.encoded.extend(texts)
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


@pytest.fixture()
def encoder(monkeypatch: pytest.MonkeyPatch) -> CountingEncoder:
    fake = CountingEncoder()
    monkeypatch.setattr(text_module, "load_encoder", lambda name: fake)
    return fake


def test_texts_are_embedded_once_and_read_back(tmp_path: Path, encoder: CountingEncoder) -> None:
    cache = EmbeddingCache("all-minilm-l6-v2", tmp_path / "text.npz")
    first = cache.embed(["issues rising", "stars flat", "issues rising"], progress=False)
    assert first.shape == (3, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first[0], first[2])
    assert encoder.encoded == ["issues rising", "stars flat"]  # a repeated text once
    again = EmbeddingCache("all-minilm-l6-v2", tmp_path / "text.npz")  # from the file
    np.testing.assert_array_equal(again.embed(["stars flat"], progress=False), first[1:2])
    assert encoder.encoded == ["issues rising", "stars flat"]


@pytest.mark.parametrize(
    ("encoder_name", "file_name"),
    [
        ("all-minilm-l6-v2", "text-all-minilm-l6-v2.npz"),
        (
            "sentence-transformers/all-distilroberta-v1",
            "text-sentence-transformers_all-distilroberta-v1.npz",
        ),
        ("/models/distilbert base/", "text-models_distilbert_base.npz"),
    ],
)
def test_one_cache_file_per_encoder(
    encoder_name: str, file_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOWERKIT_HOME", str(tmp_path))
    assert EmbeddingCache(encoder_name).path == tmp_path / "cache" / "forecast" / file_name


def test_a_texts_vector_does_not_depend_on_what_was_embedded_beside_it(tmp_path: Path) -> None:
    text = "activity rising, new issues falling, pull requests steady"
    longer = text + "; organisations: " + ", ".join(f"org{i}.com" for i in range(40))
    beside = EmbeddingCache("all-minilm-l6-v2", tmp_path / "beside.npz")
    try:
        together = beside.embed([text, longer, "x"], progress=False)
    except TowerkitError as exc:  # the encoder package is absent here
        pytest.skip(f"MiniLM unavailable: {exc}")
    alone = EmbeddingCache("all-minilm-l6-v2", tmp_path / "alone.npz").embed([text], progress=False)
    assert together.shape == (3, 384)
    # bit for bit: a model retrained from either cache sees the same inputs
    np.testing.assert_array_equal(alone[0], together[0])

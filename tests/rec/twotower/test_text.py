"""Text features: real MiniLM embeddings, computed once per distinct text and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.rec.twotower.text import CachedSentenceEncoder, EmbeddingCache


def _encoder(home: Path) -> CachedSentenceEncoder:
    return CachedSentenceEncoder(cache=EmbeddingCache(home / "cache" / "text.sqlite"))


def test_minilm_embeddings_are_cached_by_content(tmp_path: Path) -> None:
    first = _encoder(tmp_path)
    try:
        vectors = first.encode(["Toy Story", "GoldenEye", "Toy Story"])
    except TowerkitError as exc:  # the encoder package is absent here
        pytest.skip(f"MiniLM unavailable: {exc}")
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])
    assert first.encoded == 2  # the repeated title ran through the model once
    # a new encoder on the same cache never loads the model for known texts
    second = _encoder(tmp_path)
    again = second.encode(["GoldenEye", "Toy Story"])
    assert second.encoded == 0 and second._model is None
    assert np.array_equal(again, vectors[[1, 0]])
    # a new text costs only itself
    assert second.encode(["Heat", "Toy Story"]).shape == (2, 384) and second.encoded == 1
    # similar titles are closer than unrelated ones
    toy2, drama = second.encode(["Toy Story 2", "Schindler's List"])
    assert float(vectors[0] @ toy2) > float(vectors[0] @ drama)

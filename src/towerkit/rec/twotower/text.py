"""Text features: MiniLM sentence embeddings, computed once per distinct text and cached.

The cache is one SQLite file under TOWERKIT_HOME (``cache/text-embeddings.sqlite``) keyed by the
encoder's name and the sha256 of the text, so a catalogue is embedded once across runs and new
items only cost their own texts. Vectors are stored as raw little-endian float32 bytes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.core.paths import towerkit_home
from towerkit.core.quiet import library_bars_on

MINILM_ASSET = "all-minilm-l6-v2"
MINILM_DIM = 384


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """(encoder name, sha256 of text) -> float32 vector, in one SQLite file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or towerkit_home() / "cache" / "text-embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (encoder TEXT NOT NULL, hash TEXT NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (encoder, hash))"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def get(self, encoder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._connect() as conn:
            for start in range(0, len(hashes), 500):
                chunk = list(hashes[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT hash, vector FROM embeddings WHERE encoder = ? AND hash IN ({marks})",
                    [encoder, *chunk],
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype="<f4")
        return found

    def put(self, encoder: str, vectors: dict[str, np.ndarray]) -> None:
        with self._connect() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (encoder, hash, vector) VALUES (?, ?, ?)",
                [(encoder, k, v.astype("<f4").tobytes()) for k, v in vectors.items()],
            )


class CachedSentenceEncoder:
    """A sentence-transformers model behind the embedding cache; loaded on first miss."""

    def __init__(
        self,
        name: str = MINILM_ASSET,
        dim: int = MINILM_DIM,
        cache: EmbeddingCache | None = None,
        batch_size: int = 64,
    ) -> None:
        self.name = name
        self._dim = dim
        self.cache = cache or EmbeddingCache()
        self.batch_size = batch_size
        self._model: Any = None
        self.encoded = 0  # texts actually run through the model (cache misses)

    @property
    def dim(self) -> int:
        return self._dim

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            from towerkit.core.assets import fetch

            self._model = SentenceTransformer(str(fetch(self.name)), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(self.name, sorted(set(hashes)))
        missing = sorted(
            {h: t for h, t in zip(hashes, texts, strict=True) if h not in found}.items()
        )
        if missing:
            model = self._load()
            vectors = model.encode(
                [t for _, t in missing],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=len(missing) > 256 and library_bars_on(),
            )
            if vectors.shape[1] != self._dim:
                raise TowerkitError(
                    f"text encoder {self.name}: returned {vectors.shape[1]}-d vectors, "
                    f"expected {self._dim}"
                )
            new = {
                h: np.asarray(v, dtype=np.float32)
                for (h, _), v in zip(missing, vectors, strict=True)
            }
            self.cache.put(self.name, new)
            found.update(new)
            self.encoded += len(new)
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)

"""The text tower's input: one text per repository and cutoff, and its cached MiniLM embedding.

The text describes recent trends in words (the last 3 months against the 3 before), how busy
the repository is, and the organisations behind its contributors (non-personal mail domains
from ``contributor_email_suffixes``), after the repository's ``owner/name`` and, where its corpus
folder has an ``about.json`` (``fetch --about``), its description, topics and language. The encoder is frozen: embeddings are computed
once per distinct text and kept in ``TOWERKIT_HOME/cache/forecast/``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.progress import Progress

from towerkit.core.io import atomic_path
from towerkit.core.paths import towerkit_home
from towerkit.forecast.dataset import Panel

TextMode = Literal["real", "blank", "shuffled"]
TREND_WORDS = (
    ("activity", "activity"),
    ("issues_new", "new issues"),
    ("change_requests", "pull requests"),
    ("participants", "participants"),
    ("new_contributors", "new contributors"),
    ("stars", "stars"),
)


def trend_word(recent: float, before: float) -> str:
    if recent == 0 and before == 0:
        return "none"
    ratio = (recent + 1.0) / (before + 1.0)
    if ratio >= 1.15:
        return "increasing"
    if ratio <= 0.87:
        return "falling"
    return "steady"


def busy_word(activity: float) -> str:
    for limit, word in ((10, "quiet"), (100, "moderately active"), (1000, "busy")):
        if activity < limit:
            return word
    return "very busy"


def _organisations(orgs: Sequence[str], top: int = 3) -> list[str]:
    counts: dict[str, int] = {}
    for month in orgs:
        for part in filter(None, (p.strip() for p in month.split(","))):
            domain, _, count = part.rpartition(" ")
            counts[domain] = counts.get(domain, 0) + int(count or 0)
    return [d for d, _ in sorted(counts.items(), key=lambda p: (-p[1], p[0]))[:top]]


def describe_trends(panel: Panel, repo: int, cutoff: int) -> str:
    """Recent trends of ``repo`` at ``cutoff`` in words (months up to the cutoff only)."""
    lo = max(int(panel.first[repo]), cutoff - 5)
    parts = []
    for feature, words in TREND_WORDS:
        if feature not in panel.features:
            continue
        series = panel.values[repo, lo : cutoff + 1, panel.features.index(feature)]
        if np.isnan(series).all():
            continue
        before = float(np.nanmean(series[:-3])) if len(series) > 3 else 0.0
        parts.append(f"{words} {trend_word(float(np.nanmean(series[-3:])), before)}")
    recent = panel.values[repo, max(lo, cutoff - 2) : cutoff + 1, panel.features.index("activity")]
    return f"{busy_word(float(np.nanmean(recent)))}: " + ", ".join(parts)


def describe_profile(panel: Panel, repo: int, cutoff: int) -> str:
    """The repository's name, its about (description, topics, language) where known, and the
    organisations behind its contributors over the last calendar year completed by ``cutoff``:
    it changes once a year, so there are few texts."""
    year_end = cutoff - (panel.month0 + cutoff + 1) % 12  # the last December <= cutoff
    lo = max(int(panel.first[repo]), year_end - 11, 0)
    orgs = _organisations(panel.orgs[repo][lo : year_end + 1]) if year_end >= lo else []
    about = panel.about[repo] if panel.about else ""
    text = panel.repos[repo] + (f": {about}." if about else "")
    if orgs:  # without an about, the text is what it was before abouts existed
        text += (" With" if about else " with") + " contributors from " + ", ".join(orgs)
    return text


def window_texts(
    panel: Panel, pairs: np.ndarray, mode: TextMode = "real", seed: int = 0
) -> tuple[list[str], list[str]]:
    """(trend texts, profile texts), one each per (repo, cutoff) window. ``shuffled`` gives each
    window the texts of another repository at the same cutoff, ``blank`` empty texts."""
    if mode == "blank":
        return [""] * len(pairs), [""] * len(pairs)
    repos = pairs[:, 0].copy()
    if mode == "shuffled":
        rng = np.random.default_rng(seed)
        for cutoff in np.unique(pairs[:, 1]):
            rows = np.flatnonzero(pairs[:, 1] == cutoff)
            repos[rows] = np.roll(repos[rows[rng.permutation(len(rows))]], 1)
    windows = list(zip(repos.tolist(), pairs[:, 1].tolist(), strict=True))
    trends = [describe_trends(panel, r, c) for r, c in windows]
    profiles = [describe_profile(panel, r, c) for r, c in windows]
    return trends, profiles


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Frozen sentence-encoder embeddings keyed by the text's hash, in one ``.npz`` file."""

    def __init__(self, encoder: str = "all-minilm-l6-v2", path: Path | None = None) -> None:
        self.encoder = encoder
        # a hub id (org/name) or a local folder as one file name, not a tree of folders
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder).strip("_")
        self.path = path or towerkit_home() / "cache" / "forecast" / f"text-{name}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """(len(texts), dim) float32 embeddings; computes only the texts not cached yet."""
        keys = [_key(t) for t in texts]
        todo = list(
            dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self._vectors)
        )
        if todo:
            self._encode(todo, progress)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _encode(self, texts: list[str], progress: bool) -> None:
        model = load_encoder(self.encoder)
        with Progress(disable=not progress) as bar:
            task = bar.add_task(f"embed texts ({self.encoder})", total=len(texts))
            for start in range(0, len(texts), 256):
                chunk = texts[start : start + 256]
                # one text a batch: in a padded batch a vector moves (~1e-7) with its neighbours,
                # so which texts were cached before would change a retrained model's numbers
                vectors = model.encode(
                    chunk, batch_size=1, normalize_embeddings=True, convert_to_numpy=True
                )
                for text, vector in zip(chunk, vectors, strict=True):
                    self._vectors[_key(text)] = np.asarray(vector, dtype=np.float32)
                bar.advance(task, len(chunk))
        keys = np.array(list(self._vectors))
        with atomic_path(self.path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, keys=keys, vectors=np.stack(list(self._vectors.values())))


def load_encoder(name: str) -> Any:
    """The frozen encoder: a towerkit model asset (MiniLM offline) or a Hugging Face model id."""
    from sentence_transformers import SentenceTransformer

    from towerkit.core.assets import fetch, get_asset
    from towerkit.core.errors import TowerkitError

    try:
        get_asset(name)
        folder: str = str(fetch(name))
    except TowerkitError:
        folder = name  # e.g. distilbert-base-uncased where the hub is reachable
    return SentenceTransformer(folder, device="cpu")

"""A trained two-tower model as the serving, export and A/B parts use it.

``load_bundle(ref)`` takes a registry reference (``rec-two-tower`` = the ``production`` alias, else
the latest version; ``rec-two-tower@production``; ``rec-two-tower/3``) or a run / model directory
and returns a ``TwoTowerBundle``: the model in eval mode with its fitted featurisation and
feature tables, so ids and feature mappings embed exactly as in training. Embeddings are float32
and L2-normalised, so inner product = cosine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from towerkit.core.errors import ModelLoadError, TowerkitError
from towerkit.core.registry import ModelRegistry, ModelVersion
from towerkit.rec.twotower.artifacts import FeatureArtifacts
from towerkit.rec.twotower.config import REGISTRY_NAME
from towerkit.rec.twotower.evaluation import encode_candidates, encode_queries
from towerkit.rec.twotower.features import TextEncoder
from towerkit.rec.twotower.history import from_item_lists
from towerkit.rec.twotower.model import TwoTowerModel
from towerkit.rec.twotower.towers import TowerOutput

__all__ = ["QueryTowerExport", "TwoTowerBundle", "load_bundle"]

INPUT_NAMES = ("ids", "cat", "multi", "num", "text")
HISTORY_NAMES = ("history_liked", "history_passed", "history_stats")
# names in exported graphs ("cat" would clash with the Concat node the exporter names "cat")
EXPORT_NAMES = {
    "ids": "id_index",
    "cat": "categorical",
    "multi": "multi_categorical",
    "num": "numeric",
    "text": "text_vectors",
    **{name: name for name in HISTORY_NAMES},
}


class QueryTowerExport(nn.Module):
    """The query tower on the tensors it really uses (inputs with a zero-size feature axis, e.g.
    no multi-categorical user features, are left out: exporters handle empty tensors badly); a
    history model also takes history_liked, history_passed (n, L) int64 and history_stats
    (n, 2) float32 ((n, 3) with model.recent_swipes), last."""

    def __init__(self, model: TwoTowerModel, used: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.used = tuple(used)

    def forward(  # explicit positions: torch.export does not take *args
        self,
        ids: Tensor,
        second: Tensor | None = None,
        third: Tensor | None = None,
        fourth: Tensor | None = None,
        fifth: Tensor | None = None,
        sixth: Tensor | None = None,
        seventh: Tensor | None = None,
        eighth: Tensor | None = None,
    ) -> Tensor:
        rest = (second, third, fourth, fifth, sixth, seventh, eighth)
        present = [ids, *(t for t in rest if t is not None)]
        given = dict(zip(self.used, present, strict=True))
        n = ids.shape[0]
        empty = {
            "cat": ids.new_zeros((n, 0)),
            "multi": ids.new_zeros((n, 0, 1)),
            "num": ids.new_zeros((n, 0), dtype=torch.float32),
            "text": ids.new_zeros((n, 0, 1), dtype=torch.float32),
        }
        args = tuple(given.get(name, empty.get(name)) for name in INPUT_NAMES)
        history = (
            tuple(given[name] for name in HISTORY_NAMES) if HISTORY_NAMES[0] in given else None
        )
        return self.model.encode_query(args, history, like=False).embedding  # type: ignore[arg-type]


@dataclass
class TwoTowerBundle:
    model: TwoTowerModel
    features: FeatureArtifacts
    version: ModelVersion | None
    run_dir: Path | None
    model_dir: Path | None = None
    _candidates: TowerOutput | None = field(default=None, repr=False)
    _encoder: TextEncoder | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.version.uri if self.version is not None else str(self.model_dir)

    @property
    def dim(self) -> int:
        return int(self.model.config.embedding_dim)

    # --- queries -----------------------------------------------------------------------------

    @property
    def history_len(self) -> int:
        return int(self.model.config.history_len)

    def query_outputs(self, user_ids: Sequence[str], like: bool = True) -> TowerOutput:
        """The query tower's output for known user ids (a history model reads their history at
        the end of training); an unknown id gets its hashed OOV id row, no features and no
        history. ``like=False``: the retrieval fields only (the like path is not run)."""
        art = self.features
        rows = [art.query_row(str(u)) for u in user_ids]
        known = [i for i, r in enumerate(rows) if r is not None]
        unknown = [i for i, r in enumerate(rows) if r is None]
        index = torch.tensor([rows[i] for i in known], dtype=torch.long)
        history = art.query_history.take(index) if art.query_history is not None else None
        parts = [encode_queries(self.model, art.query_tables.take(index), history, like=like)]
        parts += [
            self.query_output_from_features({art.query.id_column: str(user_ids[i])}, like=like)
            for i in unknown
        ]
        order = torch.argsort(torch.tensor(known + unknown, dtype=torch.long))  # as asked
        return TowerOutput.cat(parts).take(order)

    def query_embeddings(self, user_ids: Sequence[str]) -> np.ndarray:
        """(n, d) retrieval embeddings of :meth:`query_outputs`."""
        return self.query_outputs(user_ids, like=False).embedding.numpy().astype(np.float32)

    def query_output_from_features(
        self,
        features: Mapping[str, Any],
        liked: Sequence[str] = (),
        passed: Sequence[str] = (),
        like: bool = True,
    ) -> TowerOutput:
        """One query row for a user described by feature values (keys: the user feature
        columns, and optionally the id column; missing keys count as missing values) and, for a
        history model, the item ids they liked and passed so far, oldest first (unknown ids
        refused). ``like=False``: the retrieval fields only."""
        side = self.features.query
        tensors = side.transform_one(features, self._text_encoder() if side.text else None)
        history = None
        if self.history_len:
            ids = [self._history_ids(liked, "liked"), self._history_ids(passed, "passed")]
            prior = float(self.model.config.history_prior)
            recent = int(self.model.config.recent_swipes)
            history = from_item_lists([ids[0]], [ids[1]], self.history_len, prior, recent)
        return encode_queries(self.model, tensors, history, like=like)

    def query_embedding_from_features(
        self,
        features: Mapping[str, Any],
        liked: Sequence[str] = (),
        passed: Sequence[str] = (),
    ) -> np.ndarray:
        """(d,) retrieval embedding of :meth:`query_output_from_features`."""
        output = self.query_output_from_features(features, liked, passed, like=False)
        return output.embedding[0].numpy().astype(np.float32)

    @torch.no_grad()
    def like_probabilities(self, query: TowerOutput, item_ids: Sequence[str]) -> np.ndarray:
        """(n,) the model's probability that the user of ``query`` (one row) likes each item
        (sigmoid of the like-vs-pass logit the AUC is measured on); unknown ids refused."""
        if len(query.embedding) != 1:
            raise ValueError("like_probabilities scores one query row")
        rows = [self.features.candidate_row(str(item)) for item in item_ids]
        unknown = [item for item, row in zip(item_ids, rows, strict=True) if row is None]
        if unknown:
            raise TowerkitError(f"item_ids: item {unknown[0]!r} is not in the model's catalogue")
        index = torch.tensor(rows, dtype=torch.long)
        candidates = self.candidate_outputs().take(index)
        repeated = query.take(torch.zeros(len(index), dtype=torch.long))
        return torch.sigmoid(self.model.like_logits(repeated, candidates)).numpy()

    def _history_ids(self, items: Sequence[str], key: str) -> list[int]:
        out: list[int] = []
        for item in items:
            index = self.features.candidate_id_index(str(item))
            if index is None:
                raise TowerkitError(f"{key}: item {item!r} is not in the model's catalogue")
            out.append(index)
        return out

    # --- candidates --------------------------------------------------------------------------

    def candidate_ids(self) -> list[str]:
        return list(self.features.candidate_keys)

    def candidate_outputs(self) -> TowerOutput:
        """The candidate tower's output for every item, in ``candidate_ids()`` order (computed
        once, then cached)."""
        if self._candidates is None:
            self._candidates = encode_candidates(self.model, self.features.candidate_tables)
        return self._candidates

    def candidate_embeddings(self) -> np.ndarray:
        """(n_items, d) retrieval embeddings in ``candidate_ids()`` order."""
        return self.candidate_outputs().embedding.numpy().astype(np.float32)

    def seen_items(self, user_id: str) -> set[str]:
        """Item ids the user interacted with in the training data (empty for unknown users)."""
        row = self.features.query_row(str(user_id))
        if row is None:
            return set()
        keys = self.features.candidate_keys
        return {keys[int(i)] for i in self.features.seen_rows(row)}

    # --- export ------------------------------------------------------------------------------

    def query_tower_for_export(self) -> tuple[nn.Module, tuple[Tensor, ...], list[str]]:
        """The query tower as a module on tensors, two real users' inputs as example, and the
        input names (a subset of id_index (n,) int64, categorical (n, c) int64,
        multi_categorical (n, m, L) int64, numeric (n, k) float32, text_vectors (n, t, D)
        float32, in that order; the feature layout is ``features.query``'s)."""
        tables = self.features.query_tables
        example = tables.take(torch.arange(min(2, len(tables))))
        shapes = {
            "cat": example.cat,
            "multi": example.multi,
            "num": example.num,
            "text": example.text,
        }
        used = ["ids", *(name for name, t in shapes.items() if t.shape[1] > 0)]
        values: dict[str, Tensor] = dict(zip(INPUT_NAMES, example.inputs(), strict=True))
        history = self.features.query_history
        if self.history_len and history is not None:
            rows = torch.arange(min(2, len(history)))
            values.update(zip(HISTORY_NAMES, history.take(rows).inputs(), strict=True))
            used += HISTORY_NAMES
        module = QueryTowerExport(self.model, used).eval()
        return module, tuple(values[name] for name in used), [EXPORT_NAMES[n] for n in used]

    def _text_encoder(self) -> TextEncoder:
        if self._encoder is None:
            from towerkit.rec.twotower.text import CachedSentenceEncoder

            name = self.features.text_encoder or "all-minilm-l6-v2"
            self._encoder = CachedSentenceEncoder(name)
        return self._encoder


def load_bundle(ref: str, registry: ModelRegistry | None = None) -> TwoTowerBundle:
    """A bundle from a registry reference or a run / model directory (see the module docstring)."""
    path = Path(ref).expanduser()
    version: ModelVersion | None = None
    if path.is_dir():
        model_dir = path if (path / "config.json").is_file() else path / "model"
        if not (model_dir / "config.json").is_file():
            raise TowerkitError(
                f"{path}: not a model directory (no config.json there or in model/)"
            )
        run_dir = model_dir.parent if (model_dir.parent / "config.yaml").is_file() else None
    elif path.exists():
        raise TowerkitError(f"{ref}: expected a model directory or a registry reference")
    else:
        version = (registry or ModelRegistry()).resolve(ref)
        model_dir = Path(version.model_dir)
        run_dir = Path(version.run_dir) if version.run_dir else None
    try:
        model = TwoTowerModel.from_pretrained(model_dir)
    except ModelLoadError as exc:
        raise TowerkitError(f"{ref}: not a two-tower model ({REGISTRY_NAME}): {exc}") from None
    if model.artifacts is None:
        raise TowerkitError(
            f"{model_dir}: no features.json / tables.safetensors beside the weights"
        )
    return TwoTowerBundle(model, model.artifacts, version, run_dir, model_dir)

"""What a trained two-tower model needs besides its weights to featurise and serve.

- ``features.json``: the fitted query and candidate featurisation (vocabularies, numeric
  statistics, text columns and encoder), and the ids of the known users and items in table order;
- ``tables.safetensors``: the feature tensors of those users and items, the items each user
  interacted with in the training split (CSR: ``seen.indptr`` over user rows, ``seen.indices``
  item rows) and, for a model that reads histories, each user's history at the end of the
  training split (``history.liked`` / ``history.passed`` / ``history.stats``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from towerkit.core.errors import ModelLoadError
from towerkit.rec.twotower.features import SideFeaturizer, SideTensors
from towerkit.rec.twotower.history import HistoryTensors

FEATURES_NAME = "features.json"
TABLES_NAME = "tables.safetensors"
FORMAT_VERSION = 1


@dataclass
class FeatureArtifacts:
    query: SideFeaturizer
    candidate: SideFeaturizer
    query_keys: list[str]
    candidate_keys: list[str]
    query_tables: SideTensors
    candidate_tables: SideTensors
    seen_indptr: Tensor  # (n_users + 1,) long
    seen_indices: Tensor  # item rows, sorted within each user
    text_encoder: str | None = None
    query_history: HistoryTensors | None = None  # per user row, as of the end of training

    def __post_init__(self) -> None:
        self._query_rows = {key: i for i, key in enumerate(self.query_keys)}
        self._candidate_rows = {key: i for i, key in enumerate(self.candidate_keys)}

    def query_row(self, key: str) -> int | None:
        return self._query_rows.get(key)

    def candidate_row(self, key: str) -> int | None:
        return self._candidate_rows.get(key)

    def candidate_id_index(self, key: str) -> int | None:
        """The candidate tower's id-embedding row of a catalogue item (what histories hold)."""
        row = self._candidate_rows.get(key)
        return None if row is None else int(self.candidate_tables.ids[row])

    def seen_rows(self, query_row: int) -> np.ndarray:
        start, end = int(self.seen_indptr[query_row]), int(self.seen_indptr[query_row + 1])
        return self.seen_indices[start:end].numpy()

    @staticmethod
    def seen_from_pairs(
        user_rows: np.ndarray, item_rows: np.ndarray, n_users: int
    ) -> tuple[Tensor, Tensor]:
        """CSR of the distinct (user row, item row) pairs."""
        pairs = (
            np.unique(np.stack([user_rows, item_rows], axis=1), axis=0)
            if len(user_rows)
            else np.zeros((0, 2), np.int64)
        )
        counts = np.bincount(pairs[:, 0], minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(
            pairs[:, 1].astype(np.int64)
        )

    # --- persistence -------------------------------------------------------------------------

    @staticmethod
    def present(directory: Path) -> bool:
        return (directory / FEATURES_NAME).is_file()

    def save(self, directory: Path) -> None:
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "query": self.query.to_dict(),
            "candidate": self.candidate.to_dict(),
            "query_keys": self.query_keys,
            "candidate_keys": self.candidate_keys,
            "text_encoder": self.text_encoder,
        }
        (directory / FEATURES_NAME).write_text(json.dumps(meta) + "\n", encoding="utf-8")
        tensors = {
            **self.query_tables.state("query"),
            **self.candidate_tables.state("candidate"),
            "seen.indptr": self.seen_indptr.contiguous(),
            "seen.indices": self.seen_indices.contiguous(),
            **(self.query_history.state("history") if self.query_history is not None else {}),
        }
        save_file(tensors, str(directory / TABLES_NAME))

    @classmethod
    def load(cls, directory: Path) -> FeatureArtifacts:
        path = directory / FEATURES_NAME
        if not (directory / TABLES_NAME).is_file():
            raise ModelLoadError(f"{directory}: {FEATURES_NAME} without {TABLES_NAME}")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(f"{path}: expected format_version {FORMAT_VERSION}")
        tensors = load_file(str(directory / TABLES_NAME))
        try:
            return cls(
                query=SideFeaturizer.from_dict(meta["query"]),
                candidate=SideFeaturizer.from_dict(meta["candidate"]),
                query_keys=[str(k) for k in meta["query_keys"]],
                candidate_keys=[str(k) for k in meta["candidate_keys"]],
                query_tables=SideTensors.from_state(tensors, "query"),
                candidate_tables=SideTensors.from_state(tensors, "candidate"),
                seen_indptr=tensors["seen.indptr"],
                seen_indices=tensors["seen.indices"],
                text_encoder=meta.get("text_encoder"),
                query_history=(
                    HistoryTensors.from_state(tensors, "history")
                    if "history.liked" in tensors
                    else None
                ),
            )
        except KeyError as exc:
            raise ModelLoadError(f"{path}: missing {exc}") from None

    def check_matches(self, config: Any, directory: Path) -> None:
        """The tables must fit the towers the config describes."""
        for side, tables, spec in (
            ("query", self.query_tables, config.query),
            ("candidate", self.candidate_tables, config.candidate),
        ):
            shape = (
                tables.cat.shape[1],
                tables.multi.shape[1],
                tables.num.shape[1],
                tables.text.shape[1],
            )
            expected = (
                len(spec.categorical),
                len(spec.multi_categorical),
                spec.n_numeric,
                spec.n_text,
            )
            if shape != expected:
                raise ModelLoadError(
                    f"{directory / TABLES_NAME}: {side} tables have (categorical, multi, numeric, "
                    f"text) = {shape}, the model expects {expected}"
                )
        history_len = int(getattr(config, "history_len", 0))
        held = None if self.query_history is None else int(self.query_history.liked.shape[1])
        if history_len and held != history_len:
            raise ModelLoadError(
                f"{directory / TABLES_NAME}: the model reads histories of {history_len} items, "
                f"the tables hold {'none' if held is None else held}"
            )
        if len(self.query_keys) != len(self.query_tables) or len(self.candidate_keys) != len(
            self.candidate_tables
        ):
            raise ModelLoadError(f"{directory / FEATURES_NAME}: key lists do not match the tables")

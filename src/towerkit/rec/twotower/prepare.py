"""From ``InteractionData`` to what training needs: split, fitted features, tables, row indices.

Everything statistical (vocabularies, numeric means, the id vocabularies themselves) is fitted on
the training split only; validation and test users / items absent from it get hashed OOV ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.rec.twotower.artifacts import FeatureArtifacts
from towerkit.rec.twotower.data import (
    ITEM_ID,
    USER_ID,
    InteractionData,
    SplitConfig,
    TimeSplit,
    labels_of,
    time_split,
    with_interaction_entities,
)
from towerkit.rec.twotower.features import SideFeaturizer, TextEncoder
from towerkit.rec.twotower.history import NEVER, HistoryTensors, history_as_of

MICROSECONDS_A_DAY = 86_400 * 1_000_000  # EncodedInteractions.times are in microseconds
SPLIT_FILE = "split.json"


@dataclass
class FeatureConfig:
    user_features: list[str] | None = None  # None: every user feature column of the export
    item_features: list[str] | None = None
    oov_buckets: int = 8  # hashed rows for unseen categorical values
    # hashed rows for unseen user / item ids: 1 makes every newcomer share the one row that
    # id dropout trains (best on MovieLens validation); more keep newcomers apart
    id_oov_buckets: int = 8
    min_count: int = 1
    text_encoder: str = "all-minilm-l6-v2"
    # > 0: the query tower reads each user's last history_len likes and passes as of the moment
    # it scores for (towerkit.rec.twotower.history); 0: static user features only
    history_len: int = 0
    # > 0: the history also carries the like rate of each user's last recent_swipes swipes
    recent_swipes: int = 0
    # > 0: retrieval trains on each user's history as it stood this many days before the event
    # (users are served with a history as of the last training data, weeks old by the time
    # they swipe); the like path keeps the history as of the event
    retrieval_lag_days: float = 0.0

    def __post_init__(self) -> None:
        if min(self.oov_buckets, self.id_oov_buckets, self.min_count) < 1:
            raise ConfigError("features: oov_buckets, id_oov_buckets, min_count: expected >= 1")
        if self.history_len < 0:
            raise ConfigError(f"features: history_len: expected >= 0, got {self.history_len}")
        if self.recent_swipes < 0:
            raise ConfigError(f"features: recent_swipes: expected >= 0, got {self.recent_swipes}")
        if self.retrieval_lag_days < 0:
            raise ConfigError(
                f"features: retrieval_lag_days: expected >= 0, got {self.retrieval_lag_days}"
            )
        if self.retrieval_lag_days and not self.history_len:
            raise ConfigError("features: retrieval_lag_days lags the history: set history_len")
        if self.recent_swipes and not self.history_len:
            raise ConfigError("features: recent_swipes is part of the history: set history_len")


@dataclass
class EncodedInteractions:
    """Interactions as rows of the user / item tables, with labels 1 (like, match) / 0 (pass)
    and their instants (int64 microseconds since the epoch, UTC)."""

    user_rows: np.ndarray
    item_rows: np.ndarray
    labels: np.ndarray
    times: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.user_rows.shape[0])

    def positives(self, n_users: int) -> list[list[int]]:
        rows: list[list[int]] = [[] for _ in range(n_users)]
        for user, item, label in zip(self.user_rows, self.item_rows, self.labels, strict=True):
            if label > 0:
                rows[user].append(int(item))
        return rows


class InteractionDataset(Dataset[tuple[int, int, float, int]]):
    def __init__(self, encoded: EncodedInteractions) -> None:
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> tuple[int, int, float, int]:
        e = self.encoded
        return int(e.user_rows[index]), int(e.item_rows[index]), float(e.labels[index]), index


def collate(batch: list[tuple[int, int, float, int]]) -> dict[str, torch.Tensor]:
    users, items, labels, events = zip(*batch, strict=True)
    return {
        "user_rows": torch.tensor(users, dtype=torch.long),
        "item_rows": torch.tensor(items, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.float32),
        "event_rows": torch.tensor(events, dtype=torch.long),  # rows of the training split
    }


@dataclass
class PreparedData:
    data: InteractionData
    split: TimeSplit
    artifacts: FeatureArtifacts
    train: EncodedInteractions
    val: EncodedInteractions
    test: EncodedInteractions
    history_len: int = 0
    recent_swipes: int = 0
    train_history: HistoryTensors | None = None  # per training event, as of its instant
    # per training event, as of retrieval_lag_days before it (None: no lag)
    retrieval_history: HistoryTensors | None = None

    @property
    def n_users(self) -> int:
        return len(self.artifacts.query_keys)

    @property
    def n_items(self) -> int:
        return len(self.artifacts.candidate_keys)

    def before(self, name: str) -> EncodedInteractions:
        """Everything the app had seen before split ``name`` began (excluded when ranking)."""
        return self.train if name == "val" else _concat(self.train, self.val)

    def histories(self, name: str) -> tuple[HistoryTensors, HistoryTensors] | None:
        """With a history model: (per user row as of split ``name``'s start, for ranking; per
        held-out event as of its own instant, for AUC). None without one."""
        if not self.history_len:
            return None
        before, held_out = self.before(name), getattr(self, name)
        assert held_out.times is not None
        events = self._history(_concat(before, held_out), held_out.user_rows, held_out.times)
        return self.latest_history(before), events

    @property
    def like_prior(self) -> float:
        """The training like rate: where a history's smoothed like rate starts."""
        return float(self.train.labels.mean()) if len(self.train) else 0.5

    def latest_history(self, log: EncodedInteractions) -> HistoryTensors:
        """Every user row's history over the whole of ``log``."""
        users = np.arange(self.n_users, dtype=np.int64)
        return self._history(log, users, np.full(self.n_users, NEVER, dtype=np.int64))

    def _history(
        self, log: EncodedInteractions, users: np.ndarray, times: np.ndarray
    ) -> HistoryTensors:
        assert log.times is not None
        item_ids = self.artifacts.candidate_tables.ids.numpy()[log.item_rows]
        return history_as_of(
            log.user_rows, item_ids, log.labels, log.times, users, times,
            self.history_len, self.like_prior, self.recent_swipes,
        )  # fmt: skip

    def describe(self) -> str:
        return (
            f"{self.data.description or 'interactions'}: {self.n_users:,} users, "
            f"{self.n_items:,} items; {self.split.describe()}"
        )


def _select(kinds: dict[str, str], chosen: list[str] | None, side: str) -> dict[str, str]:
    if chosen is None:
        return dict(kinds)
    unknown = [c for c in chosen if c not in kinds]
    if unknown:
        raise ConfigError(
            f"features.{side}_features: '{unknown[0]}' is not a {side} feature of the export "
            f"(known: {', '.join(kinds) or 'none'})"
        )
    return {c: kinds[c] for c in chosen}


def prepare(
    data: InteractionData,
    split_config: SplitConfig,
    features: FeatureConfig,
    text_encoder: TextEncoder | None,
) -> PreparedData:
    data = with_interaction_entities(data)
    split = time_split(data.interactions, split_config)
    return prepare_split(data, split, features, text_encoder)


def merge_validation(split: TimeSplit) -> TimeSplit:
    """The split a refit trains on: train + validation as its training split, no validation
    (empty, so no event is counted twice in a history), the same test split."""
    return TimeSplit(
        train=pl.concat([split.train, split.val]),
        val=split.val.head(0),
        test=split.test,
        val_start=split.test_start,
        test_start=split.test_start,
    )


def prepare_split(
    data: InteractionData,
    split: TimeSplit,
    features: FeatureConfig,
    text_encoder: TextEncoder | None,
) -> PreparedData:
    """``prepare`` on a split already made (the data already carries its interaction entities)."""
    user_kinds = _select(data.user_kinds, features.user_features, "user")
    item_kinds = _select(data.item_kinds, features.item_features, "item")
    needs_text = "text" in user_kinds.values() or "text" in item_kinds.values()
    if needs_text and text_encoder is None:
        raise TowerkitError("text features present but no text encoder was given")
    dim = text_encoder.dim if needs_text and text_encoder is not None else 0
    common = {
        "oov_buckets": features.oov_buckets,
        "id_oov_buckets": features.id_oov_buckets,
        "min_count": features.min_count,
        "text_dim": dim,
    }
    query = SideFeaturizer.fit(
        data.users, USER_ID, user_kinds, split.train["viewer_id"].unique().to_list(), **common
    )
    candidate = SideFeaturizer.fit(
        data.items, ITEM_ID, item_kinds, split.train["target_id"].unique().to_list(), **common
    )
    query_keys = query.keys_of(data.users)
    candidate_keys = candidate.keys_of(data.items)
    encoded = {
        name: _encode(getattr(split, name), query_keys, candidate_keys)
        for name in ("train", "val", "test")
    }
    indptr, indices = FeatureArtifacts.seen_from_pairs(
        encoded["train"].user_rows, encoded["train"].item_rows, len(query_keys)
    )
    artifacts = FeatureArtifacts(
        query=query,
        candidate=candidate,
        query_keys=query_keys,
        candidate_keys=candidate_keys,
        query_tables=query.transform(data.users, text_encoder),
        candidate_tables=candidate.transform(data.items, text_encoder),
        seen_indptr=indptr,
        seen_indices=indices,
        text_encoder=features.text_encoder if needs_text else None,
    )
    prepared = PreparedData(
        data, split, artifacts, encoded["train"], encoded["val"], encoded["test"],
        history_len=features.history_len, recent_swipes=features.recent_swipes,
    )  # fmt: skip
    if features.history_len:
        train = prepared.train
        assert train.times is not None
        prepared.train_history = prepared._history(train, train.user_rows, train.times)
        if features.retrieval_lag_days:
            lag = round(features.retrieval_lag_days * MICROSECONDS_A_DAY)
            prepared.retrieval_history = prepared._history(
                train, train.user_rows, train.times - lag
            )
        artifacts.query_history = prepared.latest_history(train)
    return prepared


def _encode(frame: pl.DataFrame, user_keys: list[str], item_keys: list[str]) -> EncodedInteractions:
    user_index = {k: i for i, k in enumerate(user_keys)}
    item_index = {k: i for i, k in enumerate(item_keys)}
    users = np.fromiter((user_index[v] for v in frame["viewer_id"]), np.int64, frame.height)
    items = np.fromiter((item_index[v] for v in frame["target_id"]), np.int64, frame.height)
    times = frame["created_at"].dt.epoch("us").to_numpy().astype(np.int64)
    return EncodedInteractions(users, items, labels_of(frame), times)


def _concat(a: EncodedInteractions, b: EncodedInteractions) -> EncodedInteractions:
    return EncodedInteractions(
        np.concatenate([a.user_rows, b.user_rows]),
        np.concatenate([a.item_rows, b.item_rows]),
        np.concatenate([a.labels, b.labels]),
        None if a.times is None or b.times is None else np.concatenate([a.times, b.times]),
    )


def save_split(run_dir: Path, prepared: PreparedData, refit: bool) -> None:
    """The cutoffs this run used, so ``evaluate`` splits the same data the same way, and
    ``trained_until``, the first instant its model did not train on (``test_start`` for a model
    refitted on training + validation, else ``val_start``: what an A/B replay may start at)."""
    split = prepared.split
    trained_until = split.test_start if refit else split.val_start
    write_json_atomic(
        run_dir / SPLIT_FILE,
        {
            "val_start": split.val_start.isoformat(),
            "test_start": split.test_start.isoformat(),
            "trained_until": trained_until.isoformat(),
        },
    )

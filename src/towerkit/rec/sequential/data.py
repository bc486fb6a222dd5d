"""The sequential-recommendation data contract: ``SeqDataset``, and how raw data becomes one.

``SeqDataset`` (what every sequential model, retriever and evaluation here reads):

- users are rows ``0 .. n_users - 1``; items are ids ``1 .. n_items``; id ``0`` is padding, so
  a tensor of scores over items has ``vocab_size = n_items + 1`` columns, column = item id;
- ``sequences[u]``: user u's item ids in time order (equal timestamps keep source order), at
  least 3 long; ``timestamps[u]`` the matching Unix seconds (positions for sequence files);
- leave-one-out: ``train_sequence(u)`` = all but the last two, ``valid_item(u)`` the second
  last, ``test_item(u)`` the last; ``history(u, split)`` is what a model sees before the target
  (train prefix for "valid", train prefix + valid item for "test"), also the items masked when
  ranking;
- ``user_ids[u]`` / ``item_ids[i]`` give raw ids (``item_ids[0] == "<pad>"``), ``user_index`` /
  ``item_index`` the reverse maps; ``item_texts[i]`` the text assembled from the item's metadata
  (``""`` for padding), ``item_meta`` the metadata columns.

On disk (``towerkit rec seq prepare``), a folder: ``sequences.parquet`` (user, raw_user, items,
timestamps), ``items.parquet`` (item, raw_item, text, metadata columns) and ``dataset.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir, read_json_object, read_parquet
from towerkit.rec.sequential.formats import ITEM_FIELDS, RawData

FORMAT_VERSION = 1
PAD = "<pad>"
Split = Literal["valid", "test"]
MAX_REVIEWS_IN_TEXT = 3


@dataclass
class SeqDataset:
    name: str
    sequences: list[np.ndarray]
    timestamps: list[np.ndarray]
    n_items: int
    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str]
    item_meta: pl.DataFrame = field(default_factory=pl.DataFrame)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def vocab_size(self) -> int:
        return self.n_items + 1

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {raw: u for u, raw in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {raw: i for i, raw in enumerate(self.item_ids) if i > 0}

    def train_sequence(self, user: int) -> np.ndarray:
        return self.sequences[user][:-2]

    def valid_item(self, user: int) -> int:
        return int(self.sequences[user][-2])

    def test_item(self, user: int) -> int:
        return int(self.sequences[user][-1])

    def history(self, user: int, split: Split) -> np.ndarray:
        return self.sequences[user][:-2] if split == "valid" else self.sequences[user][:-1]

    def targets(self, split: Split) -> np.ndarray:
        index = -2 if split == "valid" else -1
        return np.array([s[index] for s in self.sequences], dtype=np.int64)

    def histories(self, split: Split) -> list[np.ndarray]:
        return [self.history(u, split) for u in range(self.n_users)]

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def describe(self) -> str:
        return (
            f"{self.name}: {self.n_users} users, {self.n_items} items, "
            f"{self.n_interactions} interactions"
        )

    # --- files -----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the folder whole (atomically): a crash leaves the previous one or nothing."""
        folder = Path(folder)
        sequences = pl.DataFrame(
            {
                "user": np.arange(self.n_users, dtype=np.int64),
                "raw_user": self.user_ids,
                "items": [s.tolist() for s in self.sequences],
                "timestamps": [t.tolist() for t in self.timestamps],
            },
            schema={
                "user": pl.Int64,
                "raw_user": pl.String,
                "items": pl.List(pl.Int64),
                "timestamps": pl.List(pl.Int64),
            },
        )
        items = pl.DataFrame(
            {
                "item": np.arange(1, self.vocab_size, dtype=np.int64),
                "raw_item": self.item_ids[1:],
                "text": self.item_texts[1:],
            }
        )
        if self.item_meta.width:
            items = items.hstack(self.item_meta)
        info = {
            **self.info,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
        }
        with atomic_dir(folder) as tmp:
            sequences.write_parquet(tmp / "sequences.parquet")
            items.write_parquet(tmp / "items.parquet")
            (tmp / "dataset.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SeqDataset:
        folder = Path(folder)
        info_path = folder / "dataset.json"
        if not info_path.is_file():
            raise TowerkitError(
                f"{folder}: not a prepared dataset (no dataset.json); run "
                "`towerkit rec seq prepare` first"
            )
        again = "prepare the dataset again (`towerkit rec seq prepare --force`)"
        info = read_json_object(info_path, again)
        if info.get("format_version") != FORMAT_VERSION:
            raise TowerkitError(
                f"{info_path}: format_version {info.get('format_version')!r}, this towerkit "
                f"reads {FORMAT_VERSION}: prepare the dataset again"
            )
        sequences = read_parquet(folder / "sequences.parquet", again).sort("user")
        items = read_parquet(folder / "items.parquet", again).sort("item")
        meta_columns = [c for c in items.columns if c in ITEM_FIELDS]
        return cls(
            name=str(info["name"]),
            sequences=[np.asarray(s, dtype=np.int64) for s in sequences["items"].to_list()],
            timestamps=[np.asarray(t, dtype=np.int64) for t in sequences["timestamps"].to_list()],
            n_items=int(info["n_items"]),
            user_ids=sequences["raw_user"].to_list(),
            item_ids=[PAD, *items["raw_item"].to_list()],
            item_texts=["", *items["text"].to_list()],
            item_meta=items.select(meta_columns),
            info=info,
        )

    def export_atomic(self, folder: str | Path, name: str | None = None) -> Path:
        """RecBole atomic files of exactly this data and order: ``<name>.inter`` whose timestamp is
        the position in the user's sequence (so a time-ordered leave-one-out split by RecBole is
        ours, whatever its sort does with equal timestamps) and ``<name>.item`` with the text."""
        name = name or self.name
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            lines = ["user_id:token\titem_id:token\ttimestamp:float"]
            for user, sequence in enumerate(self.sequences):
                lines.extend(f"{user}\t{item}\t{pos}" for pos, item in enumerate(sequence))
            (tmp / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
            texts = [t.replace("\t", " ").replace("\n", " ") for t in self.item_texts]
            rows = [f"{i}\t{texts[i]}" for i in range(1, self.vocab_size)]
            item_text = "item_id:token\ttext:token_seq\n" + "\n".join(rows) + "\n"
            (tmp / f"{name}.item").write_text(item_text, encoding="utf-8")
        return folder


# --- building -----------------------------------------------------------------------------------


def k_core(frame: pl.DataFrame, user_core: int, item_core: int) -> pl.DataFrame:
    """Drop users with < user_core and items with < item_core interactions until both hold."""
    while True:
        user_counts = pl.col("user").count().over("user")
        item_counts = pl.col("item").count().over("item")
        kept = frame.filter((user_counts >= user_core) & (item_counts >= item_core))
        if kept.height == frame.height:
            return kept
        frame = kept


def _natural(ids: Sequence[str]) -> list[str]:
    """Numeric ids in numeric order, then the rest in text order: stable, readable id maps."""
    return sorted(set(ids), key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))


def item_text(meta: dict[str, Any]) -> str:
    """One line of text from whatever metadata an item has (title first)."""
    parts = []
    title = meta.get("title")
    if title:
        parts.append(f"{title} ({meta['year']})" if meta.get("year") else str(title))
    if meta.get("genres"):
        parts.append(f"Genres: {meta['genres']}")
    if meta.get("brand"):
        parts.append(f"Brand: {meta['brand']}")
    if meta.get("description"):
        parts.append(str(meta["description"]))
    if meta.get("reviews"):
        parts.append(f"Reviews: {meta['reviews']}")
    return ". ".join(p.rstrip(". ") for p in parts)


def build_dataset(
    raw: RawData,
    name: str,
    user_core: int = 5,
    item_core: int = 5,
) -> SeqDataset:
    """k-core filter, chronological order (stable on ties), id maps, item text."""
    if user_core < 1 or item_core < 1:
        raise TowerkitError(
            f"k-core: expected user_core and item_core >= 1, got {user_core}, {item_core}"
        )
    frame = k_core(raw.interactions, user_core, item_core)
    # a user needs a train prefix, a validation item and a test item
    frame = frame.filter(pl.col("user").count().over("user") >= 3)
    if frame.is_empty():
        raise TowerkitError(
            f"{raw.description}: no user keeps 3 or more interactions after the "
            f"{user_core}/{item_core}-core filter"
        )
    user_ids, item_raw = _natural(frame["user"].to_list()), _natural(frame["item"].to_list())
    user_map = pl.DataFrame({"user": user_ids, "u": np.arange(len(user_ids))})
    item_map = pl.DataFrame({"item": item_raw, "i": np.arange(1, len(item_raw) + 1)})
    frame = (
        frame.join(user_map, on="user").join(item_map, on="item").sort("u", "timestamp", "order")
    )
    grouped = frame.group_by("u", maintain_order=True).agg("i", "timestamp")
    texts, meta = _item_texts(raw, frame, item_raw)
    return SeqDataset(
        name=name,
        sequences=[np.asarray(s, dtype=np.int64) for s in grouped["i"].to_list()],
        timestamps=[np.asarray(t, dtype=np.int64) for t in grouped["timestamp"].to_list()],
        n_items=len(item_raw),
        user_ids=user_ids,
        item_ids=[PAD, *item_raw],
        item_texts=["", *texts],
        item_meta=meta,
        info={
            "source": raw.description,
            "user_core": user_core,
            "item_core": item_core,
            "raw_interactions": raw.interactions.height,
        },
    )


def _item_texts(
    raw: RawData, frame: pl.DataFrame, item_raw: list[str]
) -> tuple[list[str], pl.DataFrame]:
    order = pl.DataFrame({"item": item_raw})
    meta = order.join(raw.items, on="item", how="left") if raw.items is not None else order
    columns = [c for c in meta.columns if c in ITEM_FIELDS]
    reviews = _train_reviews(frame) if "review" in frame.columns else None
    if reviews is not None:
        meta = meta.join(reviews, on="item", how="left")
    texts = [item_text(row) for row in meta.iter_rows(named=True)]
    return texts, meta.select(columns)


def _train_reviews(frame: pl.DataFrame) -> pl.DataFrame:
    """A few review summaries per item, from training positions only: the validation and test
    interactions' reviews would leak the held-out items into the text."""
    position = pl.int_range(pl.len()).over("u")
    length = pl.len().over("u")
    train = frame.filter((position < length - 2) & (pl.col("review").str.len_chars() > 0))
    return train.group_by("item", maintain_order=True).agg(
        pl.col("review").head(MAX_REVIEWS_IN_TEXT).str.join("; ").alias("reviews")
    )

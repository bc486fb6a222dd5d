"""What the serving tests share: the tiny recipe and the registry those models live in
(a module with its own name: ``conftest`` is ambiguous between test folders)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.twotower.config import REGISTRY_NAME

TINY = [
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.batch_size=128",
    "trainer.stages=[{epochs: 2, lr: 0.01}]",
    "features.item_features=[year, genres]",  # no MiniLM: seconds, not minutes
    "model.hidden_dims=[32]",
    "model.embedding_dim=16",
    "model.freq_buckets=1024",
    "loss.mixed_negatives=8",
    "baselines.als_iterations=2",
    "baselines.bpr_iterations=2",
    "eval.ks=[5, 10]",
    "eval.headline=recall@10",
    "trainer.early_stopping_metric=recall@10",
]
# the quick recipe reads swipe histories; version 1 is trained without, so both kinds are served
STATIC = [
    "features.history_len=0",
    "booster.enabled=false",  # the like booster reads the history
    "model.user_bias=false",
    "model.like_head=false",
    "model.query_ids=true",
]
NAME = REGISTRY_NAME


@dataclass(frozen=True)
class TinyModels:
    home: Path  # TOWERKIT_HOME holding the registry
    v1: int
    v2: int

    def registry_copy(self, target: Path) -> Path:
        """A private copy of the registry (WAL-safe) for tests that move aliases."""
        target.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(self.home / "registry.db")
        copy = sqlite3.connect(target / "registry.db")
        with copy:
            source.backup(copy)
        source.close()
        copy.close()
        return target


def first_users(movielens: MovieLens, n_users: int) -> MovieLens:
    ratings = movielens.ratings.filter(pl.col("user_id").cast(pl.Int64) <= n_users)
    users = ratings["user_id"].unique().implode()
    items = ratings["item_id"].unique().implode()
    return MovieLens(
        ratings,
        movielens.users.filter(pl.col("user_id").is_in(users)),
        movielens.items.filter(pl.col("item_id").is_in(items)),
    )

"""Tiny synthetic stores for the fast two-tower tests (the slow test trains on MovieLens-100K).

Each user has a favourite genre (their occupation and gender follow it), each movie one genre
or two; a user rates 5 what has their genre, 1 what does not, so features and ids both carry
signal. Times are spread over 120 days, so a time split has warm users in every part.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store
from towerkit.rec.twotower.data import InteractionData
from towerkit.rec.twotower.sources import movielens_frames

GENRES = ("Action", "Comedy", "Drama", "Horror")
FAST = [
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.batch_size=64",
    "trainer.stages=[{epochs: 2, lr: 0.01}]",
    "features.item_features=[year, genres]",  # no MiniLM in the fast tests
    "model.hidden_dims=[32]",
    "model.embedding_dim=16",
    "model.freq_buckets=1024",
    "loss.mixed_negatives=8",
    "baselines.names=[popularity]",
    "baselines.als_iterations=3",
    "baselines.bpr_iterations=5",
    "eval.ks=[5, 10]",
    "eval.headline=recall@10",
    "trainer.early_stopping_metric=recall@10",
]


def synthetic_movielens(
    n_users: int = 40, n_items: int = 30, per_user: int = 18, seed: int = 0
) -> MovieLens:
    rng = np.random.default_rng(seed)
    favourite = [u % len(GENRES) for u in range(n_users)]
    users = pl.DataFrame(
        {
            "user_id": [str(u + 1) for u in range(n_users)],
            "age": [int(20 + 3 * (u % 13)) for u in range(n_users)],
            "gender": ["F" if f % 2 else "M" for f in favourite],
            "occupation": [f"job{f}" for f in favourite],
            "zip_code": [f"{u % 10}0000" for u in range(n_users)],
        }
    )
    item_genres = [
        [GENRES[i % len(GENRES)]] + ([GENRES[(i + 1) % 4]] if i % 5 == 0 else [])
        for i in range(n_items)
    ]
    items = pl.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(n_items)],
            "title": [f"Movie {i + 1}" for i in range(n_items)],
            "year": [1980 + i for i in range(n_items)],
            "genres": item_genres,
        },
        schema={
            "item_id": pl.String,
            "title": pl.String,
            "year": pl.Int64,
            "genres": pl.List(pl.String),
        },
    )
    rows = []
    start = 880_000_000
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            liked = GENRES[favourite[u]] in item_genres[i]
            rating = 5 if liked else 1
            rows.append((str(u + 1), str(i + 1), rating, start + int(rng.integers(0, 120 * 86400))))
    ratings = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return MovieLens(ratings, users, items)


@pytest.fixture
def fast() -> list[str]:
    """Overrides of the quick recipe that train on the synthetic store in seconds."""
    return list(FAST)


@pytest.fixture
def synthetic() -> MovieLens:
    return synthetic_movielens()


@pytest.fixture
def synthetic_data(synthetic: MovieLens) -> InteractionData:
    return movielens_frames(synthetic)


@pytest.fixture
def synthetic_store(tmp_path: Path, synthetic: MovieLens) -> Iterator[str]:
    """A seeded SQLite store URL."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = create_store_engine(url)
    seed_store(engine, synthetic)
    engine.dispose()
    yield url


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

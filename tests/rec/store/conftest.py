"""Helpers for the store tests: seeded SQLite and Postgres stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store

SMALL = 4000  # interactions in the fast tests' stores (test_export.py relies on it)


@pytest.fixture
def sqlite_store(tmp_path: Path, ml100k: MovieLens) -> Iterator[Engine]:
    engine = create_store_engine(str(tmp_path / "store.db"))
    seed_store(engine, ml100k, limit=SMALL)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_store(pg_url: str, pg_schema: str, ml100k: MovieLens) -> Iterator[tuple[Engine, str]]:
    engine = create_store_engine(pg_url)
    seed_store(engine, ml100k, schema=pg_schema, limit=SMALL)
    yield engine, pg_schema
    engine.dispose()

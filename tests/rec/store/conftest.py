"""Helpers for the store tests: seeded SQLite and Postgres stores."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store

SMALL = 4000  # interactions in the fast tests' stores (test_export.py relies on it)


@pytest.fixture(scope="session")
def sqlite_template(ml100k: MovieLens, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "store.db"
    engine = create_store_engine(str(path))
    seed_store(engine, ml100k, limit=SMALL)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """A store seeded with the first SMALL interactions (a copy: tests may write into it)."""
    shutil.copyfile(sqlite_template, tmp_path / "store.db")
    engine = create_store_engine(str(tmp_path / "store.db"))
    yield engine
    engine.dispose()


@pytest.fixture
def pg_store(pg_url: str, pg_schema: str, ml100k: MovieLens) -> Iterator[tuple[Engine, str]]:
    engine = create_store_engine(pg_url)
    seed_store(engine, ml100k, schema=pg_schema, limit=SMALL)
    yield engine, pg_schema
    engine.dispose()

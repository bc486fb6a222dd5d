"""Shared rec fixtures: MovieLens-100K fetched once per session, and the Postgres test server.

``ml100k_dir`` fetches the ``movielens-100k`` asset into a session-wide TOWERKIT_HOME (tests get
their own home each; ``ml100k_home`` points a test's home at the session one, so CLI commands
find the cached files). ``pg_url`` is the server from TOWERKIT_TEST_POSTGRES (default the CI one)
and skips, saying why, when it is down; ``pg_schema`` is a fresh schema dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from towerkit.core.errors import TowerkitError
from towerkit.rec.store.movielens import MovieLens, load_movielens_100k

POSTGRES_URL = os.environ.get(
    "TOWERKIT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def ml100k_session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ml100k-home")


@pytest.fixture(scope="session")
def ml100k_dir(ml100k_session_home: Path) -> Path:
    from towerkit.rec.assets import fetch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOWERKIT_HOME", str(ml100k_session_home))
        try:
            return fetch("movielens-100k")
        except TowerkitError as exc:
            pytest.skip(f"MovieLens-100K unavailable here: {exc}")


@pytest.fixture(scope="session")
def ml100k(ml100k_dir: Path) -> MovieLens:
    return load_movielens_100k(ml100k_dir)


@pytest.fixture
def ml100k_home(
    ml100k_dir: Path, ml100k_session_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """This test's TOWERKIT_HOME is the session one, where MovieLens-100K is already cached."""
    monkeypatch.setenv("TOWERKIT_HOME", str(ml100k_session_home))
    return ml100k_session_home


@pytest.fixture(scope="session")
def pg_url() -> str:
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        pytest.skip(f"Postgres at {POSTGRES_URL} is down ({reason}); CI always runs it")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A new, empty Postgres schema for one test, dropped with everything in it afterwards."""
    name = f"tk_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))  # name is generated above, not input
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def ml100k_export(ml100k: MovieLens, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole of MovieLens-100K seeded into a SQLite store and exported (read-only: tests
    must not write into it). ``read_export(ml100k_export)`` gives the frames."""
    from towerkit.rec.store import create_store_engine, export_store
    from towerkit.rec.store.seed import seed_store

    folder = tmp_path_factory.mktemp("ml100k-export")
    engine = create_store_engine(str(folder / "store.db"))
    seed_store(engine, ml100k)
    export_store(engine, folder / "export")
    engine.dispose()
    return folder / "export"

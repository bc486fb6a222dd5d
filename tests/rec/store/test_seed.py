"""seed-db: the default schema filled from MovieLens-100K, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, inspect, select

from towerkit.cli import main
from towerkit.rec.store import seed as seed_module
from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.schema import DefaultTables
from towerkit.rec.store.seed import interaction_frame, seed_store


def _interactions(engine: Engine, schema: str | None = None) -> pl.DataFrame:
    table = DefaultTables(schema).interactions
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id)).all()
    return pl.DataFrame(
        [dict(row._mapping) for row in rows],
        schema={
            "id": pl.Int64,
            "viewer_id": pl.String,
            "target_id": pl.String,
            "action": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
        },
    )


@pytest.mark.slow
def test_full_seed_counts_and_time_ordered_ids(tmp_path: Path, ml100k: MovieLens) -> None:
    engine = create_store_engine(str(tmp_path / "store.db"))
    result = seed_store(engine, ml100k)
    assert (result.users, result.items) == (943, 1682)
    assert (result.likes, result.passes, result.dropped) == (55_375, 17_480, 27_145)
    stored = _interactions(engine)
    assert stored["id"].to_list() == list(range(1, 72_856))
    expected = interaction_frame(ml100k)
    assert stored.drop("id").equals(expected)  # same rows, same order, UTC kept
    tables = DefaultTables()
    with engine.connect() as conn:
        user = conn.execute(select(tables.users).where(tables.users.c.id == "1")).one()
        item = conn.execute(select(tables.items).where(tables.items.c.id == "1")).one()
    assert tuple(user) == ("1", 24, "M", "technician", "8")
    assert tuple(item) == ("1", "Toy Story", 1995, "Animation|Children's|Comedy")


def test_non_empty_store_is_refused_and_replace_rebuilds(
    tmp_path: Path, ml100k_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "store.db")
    assert main(["rec", "seed-db", "--db", db, "--limit", "300"]) == 0
    assert "300 interactions" in capsys.readouterr().out
    assert main(["rec", "seed-db", "--db", db]) == 2
    err = capsys.readouterr().err
    assert "already holds users (943 rows), items (1,682 rows), interactions (300 rows)" in err
    assert err.rstrip().endswith("pass --replace to rebuild it") and err.count("\n") == 1
    assert main(["rec", "seed-db", "--db", db, "--limit", "120", "--replace"]) == 0
    assert _interactions(create_store_engine(db)).height == 120


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_a_bad_limit_writes_nothing(
    limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    assert main(["rec", "seed-db", "--db", f"sqlite:///{db}", "--limit", limit]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --limit {limit}: expected a positive number of interactions\n"
    assert list(tmp_path.iterdir()) == []  # checked before the engine: no empty x.db


def _fail_on_interactions(monkeypatch: pytest.MonkeyPatch) -> None:
    real = seed_module._insert

    def failing(conn, table, rows, label):  # type: ignore[no-untyped-def]
        if label == "interactions":
            raise RuntimeError("disk full")
        real(conn, table, rows, label)

    monkeypatch.setattr(seed_module, "_insert", failing)


def test_failed_seed_leaves_no_table_behind_in_sqlite(
    tmp_path: Path, ml100k: MovieLens, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(str(tmp_path / "store.db"))
    _fail_on_interactions(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        seed_store(engine, ml100k, limit=10)
    assert inspect(engine).get_table_names() == []  # CREATE TABLE and users/items rolled back


def test_failed_seed_leaves_no_table_behind_in_postgres(
    pg_url: str, pg_schema: str, ml100k: MovieLens, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(pg_url)
    _fail_on_interactions(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        seed_store(engine, ml100k, schema=pg_schema, limit=10)
    assert inspect(engine).get_table_names(schema=pg_schema) == []


def test_postgres_seed_keeps_utc_timestamps(
    pg_store: tuple[Engine, str], ml100k: MovieLens
) -> None:
    engine, schema = pg_store
    stored = _interactions(engine, schema)
    assert stored.drop("id").equals(interaction_frame(ml100k, limit=stored.height))
    first = stored.row(0, named=True)["created_at"]
    assert first == datetime(1997, 9, 20, 3, 5, 10, tzinfo=UTC)
    assert stored["id"].is_sorted()

"""export + read_export on SQLite and on the real Postgres server: round trip, incremental
watermark, crash safety and bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, event, insert, select

from towerkit.cli import main
from towerkit.core.errors import TowerkitError
from towerkit.rec.store import export as export_module
from towerkit.rec.store import export_store, read_export
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.schema import DefaultTables
from towerkit.rec.store.seed import interaction_frame

COLUMNS = ["viewer_id", "target_id", "action", "created_at"]
SMALL = 4000  # the seeded stores of conftest.py hold this many interactions


def _stores(request: pytest.FixtureRequest, which: str) -> tuple[Engine, str | None]:
    if which == "sqlite":
        return request.getfixturevalue("sqlite_store"), None
    engine, schema = request.getfixturevalue("pg_store")
    return engine, schema


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> tuple[Engine, str | None]:
    return _stores(request, request.param)


def _expected_users(ml100k: MovieLens) -> pl.DataFrame:
    return ml100k.users.select(
        "user_id",
        pl.col("age").cast(pl.Float64),
        "gender",
        "occupation",
        pl.col("zip_code").str.slice(0, 1).alias("zip_prefix"),
    ).sort("user_id")


def test_round_trip_equals_the_source_rows(
    store: tuple[Engine, str | None], ml100k: MovieLens, tmp_path: Path
) -> None:
    engine, schema = store
    result = export_store(engine, tmp_path / "out", schema=schema)
    assert (result.new_rows, result.interactions, result.users, result.items) == (
        SMALL, SMALL, 943, 1682
    )  # fmt: skip
    data = read_export(tmp_path / "out")
    assert data.interactions["interaction_id"].to_list() == list(range(1, SMALL + 1))
    assert data.interactions.select(COLUMNS).equals(interaction_frame(ml100k, limit=SMALL))
    assert (
        str(data.interactions.schema["created_at"]) == "Datetime(time_unit='us', time_zone='UTC')"
    )
    assert data.users.equals(_expected_users(ml100k))
    items = ml100k.items.with_columns(pl.col("year").cast(pl.Float64)).sort("item_id")
    assert data.items.equals(items)  # genres come back as list<string>
    assert data.kinds == {
        "users": {"age": "numeric", "gender": "categorical", "occupation": "categorical",
                  "zip_prefix": "categorical"},
        "items": {"title": "text", "year": "numeric", "genres": "multi_categorical"},
    }  # fmt: skip
    manifest = data.manifest
    assert manifest["schema_version"] == 1 and manifest["interactions"]["rows"] == SMALL
    assert manifest["users"]["rows"] == 943 and manifest["items"]["rows"] == 1682


def _add_rows(engine: Engine, schema: str | None, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(DefaultTables(schema).interactions), rows)


def test_second_export_writes_only_new_rows_as_a_new_part(
    store: tuple[Engine, str | None], tmp_path: Path
) -> None:
    engine, schema = store
    out = tmp_path / "out"
    export_store(engine, out, schema=schema)
    last = read_export(out).interactions.row(-1, named=True)
    tie = last["created_at"]  # same instant as the watermark, larger id: still new
    later = tie + timedelta(days=1)
    new = [
        {"viewer_id": "1", "target_id": "50", "action": "match", "created_at": later},
        {"viewer_id": "2", "target_id": "50", "action": "pass", "created_at": tie},
        {"viewer_id": "3", "target_id": "7", "action": "like", "created_at": later},
    ]
    _add_rows(engine, schema, new)
    second = export_store(engine, out, schema=schema)
    assert second.new_rows == 3 and second.new_parts == ["interactions/part-00001.parquet"]
    part = pl.read_parquet(out / "interactions" / "part-00001.parquet")
    assert part["interaction_id"].to_list() == [SMALL + 2, SMALL + 1, SMALL + 3]
    assert part["action"].to_list() == ["pass", "match", "like"]
    third = export_store(engine, out, schema=schema)
    assert third.new_rows == 0 and third.new_parts == []
    data = read_export(out)
    assert data.interactions.height == SMALL + 3
    assert data.interactions["interaction_id"].n_unique() == SMALL + 3
    assert data.interactions["created_at"].is_sorted()
    full = export_store(engine, tmp_path / "again", schema=schema, full=True)
    assert read_export(tmp_path / "again").interactions.equals(data.interactions)
    assert full.new_parts == ["interactions/part-00000.parquet"]


@pytest.mark.slow
def test_batches_are_bounded_row_groups_from_a_server_side_cursor(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    from towerkit.rec.store.engine import create_store_engine

    engine = create_store_engine(pg_url)
    tables = DefaultTables(pg_schema)
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(tables.users), [{"id": f"u{i}"} for i in range(100)])
        conn.execute(insert(tables.items), [{"id": f"i{i}"} for i in range(100)])
        # generated on the server: 100k rows without shipping them through Python
        conn.exec_driver_sql(
            f'INSERT INTO "{pg_schema}".interactions (viewer_id, target_id, action, created_at) '
            "SELECT 'u' || mod(n, 100), 'i' || (n / 1000), 'like', "
            "timestamptz '2024-01-01 00:00:00+00' + n * interval '1 second' "
            "FROM generate_series(0, 99999) AS n"
        )
    cursors: list[type] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "ORDER BY" in statement and "interactions" in statement:
            cursors.append(type(cursor))

    result = export_store(engine, tmp_path / "out", schema=pg_schema, batch_size=1000)
    assert result.new_rows == 100_000
    assert cursors == [psycopg.ServerCursor]  # a named cursor: rows stay on the server
    meta = pq.ParquetFile(tmp_path / "out" / "interactions" / "part-00000.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [1000] * 100  # the writer was fed 100 batches of 1000, never the table
    engine.dispose()


def test_parts_roll_over_and_each_one_advances_the_watermark(
    sqlite_store: Engine, tmp_path: Path
) -> None:
    result = export_store(sqlite_store, tmp_path / "out", batch_size=500, part_rows=1500)
    assert result.new_parts == [f"interactions/part-{i:05d}.parquet" for i in range(3)]
    rows = [pq.ParquetFile(tmp_path / "out" / name).metadata.num_rows for name in result.new_parts]
    assert rows == [1500, 1500, SMALL - 3000]
    assert read_export(tmp_path / "out").interactions.height == SMALL


def test_a_crash_mid_part_leaves_the_last_watermark_and_no_part(
    sqlite_store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = export_module._interaction_batches

    def dying(*args: Any, **kwargs: Any) -> Any:
        for index, batch in enumerate(real(*args, **kwargs)):
            if index == 2:
                raise KeyboardInterrupt  # killed between batches of the second part
            yield batch

    monkeypatch.setattr(export_module, "_interaction_batches", dying)
    with pytest.raises(KeyboardInterrupt):
        export_store(sqlite_store, out, batch_size=500, part_rows=1000)
    parts = sorted(p.name for p in (out / "interactions").iterdir())
    assert parts == ["part-00000.parquet"]  # no temporary file left, no half part
    watermark = (out / "watermark.json").read_text()
    assert '"interaction_id": 1000' in watermark
    monkeypatch.setattr(export_module, "_interaction_batches", real)
    resumed = export_store(sqlite_store, out, batch_size=500, part_rows=1000)
    assert resumed.new_rows == SMALL - 1000
    assert read_export(out).interactions["interaction_id"].to_list() == list(range(1, SMALL + 1))


def test_an_orphan_part_without_watermark_is_not_read_and_is_replaced(
    sqlite_store: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_store(sqlite_store, out)
    orphan = out / "interactions" / "part-00001.parquet"
    orphan.write_bytes((out / "interactions" / "part-00000.parquet").read_bytes())
    assert read_export(out).interactions.height == SMALL  # only watermarked parts are read
    export_store(sqlite_store, out)
    assert not orphan.exists()


def test_watermark_of_another_table_is_refused(sqlite_store: Engine, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_store(sqlite_store, out)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("interactions:\n  actions: {like: like, pass: pass}\n")
    with pytest.raises(TowerkitError, match=r"watermark.json: written for sqlite:///.*use another"):
        export_store(sqlite_store, out, mapping=mapping)
    assert export_store(sqlite_store, out, mapping=mapping, full=True).new_rows == SMALL


def test_read_export_of_a_folder_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match="not a towerkit export"):
        read_export(tmp_path)


def test_timestamps_of_another_zone_are_exported_in_utc(
    pg_store: tuple[Engine, str], tmp_path: Path
) -> None:
    engine, schema = pg_store
    at = datetime(2030, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    _add_rows(engine, schema, [{"viewer_id": "1", "target_id": "1", "action": "like",
                                "created_at": at}])  # fmt: skip
    engine.dispose()

    @event.listens_for(engine, "connect")
    def tokyo(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET TIME ZONE 'Asia/Tokyo'")  # values come back at +09:00

    with engine.connect() as conn:
        table = DefaultTables(schema).interactions
        read = conn.execute(select(table.c.created_at).order_by(table.c.id.desc())).scalar()
    assert read is not None and read.utcoffset() == timedelta(hours=9)
    export_store(engine, tmp_path / "out", schema=schema)
    last = read_export(tmp_path / "out").interactions.row(-1, named=True)["created_at"]
    assert last == datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    assert str(last.tzinfo) == "UTC"


@pytest.mark.slow
def test_the_shared_full_export_holds_all_of_movielens(
    ml100k_export: Path, ml100k: MovieLens
) -> None:
    data = read_export(ml100k_export)
    assert data.interactions.select(COLUMNS).equals(interaction_frame(ml100k))
    counts = dict(data.interactions["action"].value_counts().iter_rows())
    assert counts == {"like": 55_375, "pass": 17_480}
    assert (data.users.height, data.items.height) == (943, 1682)


def test_lag_leaves_the_newest_rows_for_the_next_run(
    store: tuple[Engine, str | None], tmp_path: Path
) -> None:
    engine, schema = store
    now = datetime.now(UTC)
    _add_rows(engine, schema, [{"viewer_id": "5", "target_id": "9", "action": "like",
                                "created_at": now - timedelta(seconds=5)}])  # fmt: skip
    out = tmp_path / "out"
    held = export_store(engine, out, schema=schema, lag_s=3600)
    assert held.new_rows == SMALL  # the 5-second-old swipe waits
    later = export_store(engine, out, schema=schema)
    assert later.new_rows == 1
    last = read_export(out).interactions.row(-1, named=True)
    assert (last["viewer_id"], last["interaction_id"]) == ("5", SMALL + 1)
    with pytest.raises(TowerkitError, match="--lag -1: expected seconds >= 0"):
        export_store(engine, out, schema=schema, lag_s=-1)


def test_an_empty_store_exports_empty_frames_with_the_contract_types(tmp_path: Path) -> None:
    from towerkit.rec.store.engine import create_store_engine

    engine = create_store_engine(str(tmp_path / "empty.db"))
    DefaultTables().metadata.create_all(engine)
    result = export_store(engine, tmp_path / "out")
    assert (result.new_rows, result.new_parts, result.users, result.items) == (0, [], 0, 0)
    data = read_export(tmp_path / "out")
    assert data.interactions.height == 0
    assert dict(data.interactions.schema) == {
        "interaction_id": pl.Int64, "viewer_id": pl.String, "target_id": pl.String,
        "action": pl.String, "created_at": pl.Datetime("us", "UTC"),
    }  # fmt: skip
    assert dict(data.items.schema) == {
        "item_id": pl.String, "title": pl.String, "year": pl.Float64,
        "genres": pl.List(pl.String),
    }  # fmt: skip
    assert data.users.height == 0 and data.users.columns[0] == "user_id"


def test_a_corrupt_export_file_is_one_line(sqlite_store: Engine, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_store(sqlite_store, out)
    (out / "users.parquet").write_text("")  # e.g. a disk that filled up
    with pytest.raises(TowerkitError, match=r"users\.parquet: not a readable Parquet file") as e:
        read_export(out)
    assert "\n" not in str(e.value) and "towerkit rec export --full" in str(e.value)


def test_an_out_that_is_a_file_is_one_line(
    sqlite_store: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder\n")
    argv = ["rec", "export", "--db", f"sqlite:///{tmp_path / 'store.db'}", "--out"]
    assert main([*argv, str(notes)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {notes}: is a file; expected an export folder\n"
    assert main([*argv, str(notes / "export")]) == 2  # a parent that is a file, too
    err = capsys.readouterr().err
    assert err == f"error: --out {notes / 'export'}: {notes} is a file; expected an export folder\n"
    assert notes.read_text() == "not a folder\n"
    with pytest.raises(TowerkitError, match="is a file; expected an export folder"):
        export_store(sqlite_store, notes)  # the function, given an engine, checks it too

"""``seed-db``: the default schema filled from MovieLens-100K (real interactions for the path).

Users become viewers (age, gender, occupation, first character of the ZIP code), movies become
items (title, year, "|"-joined genres); ratings >= 4 are likes, <= 2 passes, 3s are dropped; the
rating's Unix timestamp is kept as ``created_at`` (UTC). Interactions are inserted in time order
(ties by user then movie), so their auto-assigned ids follow time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine, Table, func, inspect, select
from sqlalchemy.schema import CreateSchema

from towerkit.core.errors import TowerkitError
from towerkit.rec.store.engine import redact
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.progress import store_progress
from towerkit.rec.store.schema import MULTI_SEPARATOR, DefaultTables

LIKE_AT_LEAST = 4
PASS_AT_MOST = 2
_BATCH = 5000


@dataclass(frozen=True)
class SeedResult:
    users: int
    items: int
    likes: int
    passes: int
    dropped: int  # ratings of 3, and those past --limit

    @property
    def interactions(self) -> int:
        return self.likes + self.passes


def interaction_frame(data: MovieLens, limit: int | None = None) -> pl.DataFrame:
    """viewer_id, target_id, action, created_at (UTC) in insertion order."""
    frame = (
        data.ratings.filter(
            (pl.col("rating") >= LIKE_AT_LEAST) | (pl.col("rating") <= PASS_AT_MOST)
        )
        .sort(
            pl.col("timestamp"), pl.col("user_id").cast(pl.Int64), pl.col("item_id").cast(pl.Int64)
        )
        .select(
            pl.col("user_id").alias("viewer_id"),
            pl.col("item_id").alias("target_id"),
            pl.when(pl.col("rating") >= LIKE_AT_LEAST)
            .then(pl.lit("like"))
            .otherwise(pl.lit("pass"))
            .alias("action"),
            pl.from_epoch("timestamp", time_unit="s")
            .dt.replace_time_zone("UTC")
            .alias("created_at"),
        )
    )
    return frame if limit is None else frame.head(limit)


def _user_rows(data: MovieLens) -> list[dict[str, Any]]:
    return [
        {"id": uid, "age": age, "gender": gender, "occupation": job, "zip_prefix": (zip_ or "")[:1]}
        for uid, age, gender, job, zip_ in data.users.iter_rows()
    ]


def _item_rows(data: MovieLens) -> list[dict[str, Any]]:
    return [
        {"id": iid, "title": title, "year": year, "genres": MULTI_SEPARATOR.join(genres)}
        for iid, title, year, genres in data.items.iter_rows()
    ]


def _prepare(conn: Connection, tables: DefaultTables, replace: bool, db: str) -> None:
    schema = tables.metadata.schema
    if schema is not None:
        if conn.dialect.name == "sqlite":
            raise TowerkitError(f"--schema {schema!r}: SQLite stores have no schemas")
        conn.execute(CreateSchema(schema, if_not_exists=True))
    inspector = inspect(conn)
    present = [t for t in tables.tables if inspector.has_table(t.name, schema=schema)]
    counts = {
        t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in present
    }
    filled = {name: n for name, n in counts.items() if n}
    if filled and not replace:
        listing = ", ".join(f"{name} ({n:,} rows)" for name, n in filled.items())
        raise TowerkitError(
            f"--db {db!r}: the store already holds {listing}; pass --replace to rebuild it"
        )
    if replace:
        tables.metadata.drop_all(conn, checkfirst=True)
    tables.metadata.create_all(conn, checkfirst=True)


def _insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], label: str) -> None:
    with store_progress() as progress:
        task = progress.add_task(label, total=len(rows))
        for start in range(0, len(rows), _BATCH):
            batch = rows[start : start + _BATCH]
            conn.execute(table.insert(), list(batch))
            progress.advance(task, len(batch))


def check_limit(limit: int | None) -> None:
    """``--limit``: a positive number of interactions, or None (all); the CLI checks it before
    it opens the store, so a bad value writes nothing (not even an empty SQLite file)."""
    if limit is not None and limit < 1:
        raise TowerkitError(f"--limit {limit}: expected a positive number of interactions")


def seed_store(
    engine: Engine,
    data: MovieLens,
    *,
    schema: str | None = None,
    limit: int | None = None,
    replace: bool = False,
) -> SeedResult:
    """Create the default schema and fill it, all in one transaction (nothing half-written)."""
    check_limit(limit)
    tables = DefaultTables(schema)
    frame = interaction_frame(data, limit)
    interactions = [
        {"viewer_id": v, "target_id": t, "action": a, "created_at": c}
        for v, t, a, c in frame.iter_rows()
    ]
    with engine.begin() as conn:
        _prepare(conn, tables, replace, redact(engine.url))
        _insert(conn, tables.users, _user_rows(data), "users")
        _insert(conn, tables.items, _item_rows(data), "items")
        _insert(conn, tables.interactions, interactions, "interactions")
    likes = int((frame["action"] == "like").sum())
    return SeedResult(
        users=data.users.height,
        items=data.items.height,
        likes=likes,
        passes=frame.height - likes,
        dropped=data.ratings.height - frame.height,
    )

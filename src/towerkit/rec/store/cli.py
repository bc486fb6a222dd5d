"""``towerkit rec seed-db`` and ``towerkit rec export``: the interaction store's commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from towerkit.core.errors import TowerkitError

console = Console(soft_wrap=True)

_DB_HELP = "SQLite file path, sqlite:///FILE, or postgresql+psycopg://USER[:PASS]@HOST/DB"


def _check_schema(schema: str | None) -> None:
    from towerkit.rec.store.mapping import IDENTIFIER

    if schema is not None and not IDENTIFIER.match(schema):
        raise TowerkitError(
            f"--schema {schema!r}: not a plain identifier (letters, digits and _, at most 63)"
        )


def seed_db_command(
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    limit: int | None = typer.Option(
        None, "--limit", help="keep only the first N interactions in time order (all by default)"
    ),
    replace: bool = typer.Option(
        False, "--replace", help="drop and recreate users/items/interactions if they hold rows"
    ),
    schema: str | None = typer.Option(
        None, "--schema", help="Postgres schema to create the tables in (created if missing)"
    ),
) -> None:
    """Create the default schema and fill it from MovieLens-100K (ratings >= 4 like, <= 2 pass)."""
    from towerkit.rec.assets import fetch
    from towerkit.rec.store.engine import (
        check_connection,
        create_store_engine,
        database_errors,
        redact,
    )
    from towerkit.rec.store.movielens import load_movielens_100k
    from towerkit.rec.store.seed import check_limit, seed_store

    _check_schema(schema)
    check_limit(limit)  # before the engine: connecting creates the SQLite file
    engine = create_store_engine(db)
    check_connection(engine)
    data = load_movielens_100k(fetch("movielens-100k"))
    with database_errors(engine, "seed failed"):
        result = seed_store(engine, data, schema=schema, limit=limit, replace=replace)
    console.print(
        f"seeded {redact(engine.url)}: {result.users:,} users, {result.items:,} items, "
        f"{result.interactions:,} interactions ({result.likes:,} like, {result.passes:,} pass; "
        f"{result.dropped:,} ratings dropped)"
    )


def export_command(
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    out: Path = typer.Option(..., "--out", help="export folder (created; reused incrementally)"),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="YAML naming your tables/columns (default: the default schema)"
    ),
    schema: str | None = typer.Option(
        None, "--schema", help="Postgres schema of the tables (overrides the mapping's)"
    ),
    batch_size: int = typer.Option(10_000, "--batch-size", help="rows per fetch and row group"),
    part_rows: int = typer.Option(
        1_000_000, "--part-rows", help="start a new interactions part after this many rows"
    ),
    full: bool = typer.Option(
        False, "--full", help="ignore the saved watermark and export every interaction again"
    ),
    lag: float = typer.Option(
        0.0, "--lag", help="leave interactions newer than this many seconds for the next run"
    ),
) -> None:
    """Stream interactions (new ones since the last run) and user/item features to Parquet."""
    from towerkit.rec.store.export import export_store

    _check_schema(schema)
    result = export_store(
        db,
        out,
        mapping=mapping,
        schema=schema,
        batch_size=batch_size,
        part_rows=part_rows,
        full=full,
        lag_s=lag,
    )
    parts = ", ".join(result.new_parts) if result.new_parts else "no new part"
    console.print(
        f"exported to {result.out}: {result.new_rows:,} new interactions ({parts}); "
        f"{result.interactions:,} in all; {result.users:,} users, {result.items:,} items"
    )


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``towerkit rec`` app."""
    app.command("seed-db")(seed_db_command)
    app.command("export")(export_command)

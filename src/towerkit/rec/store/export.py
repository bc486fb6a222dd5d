"""``export``: interactions and features streamed to Parquet, incrementally from a watermark.

Interactions are read in (created_at, id) order with a server-side cursor (SQLAlchemy
``stream_results`` + ``yield_per``: psycopg's named cursor on Postgres) and written batch by batch
(one Parquet row group per batch) into ``interactions/part-NNNNN.parquet``: memory stays bounded
by ``batch_size`` whatever the table's size. Only rows after the saved watermark (the last
exported (created_at, id)) are read, so a second run writes only new rows, as a new part. Each
part is written to a temporary file and renamed; ``watermark.json`` advances only after that.
Users and items are then snapshotted whole (after the interactions, so a user who appears in
an exported interaction is in the snapshot too), then ``manifest.json`` is written.

The watermark assumes rows become visible in created_at order: a row committed after an export
with a created_at older than that export's watermark is not picked up. ``lag_s`` (``--lag``)
leaves the newest seconds for the next run, which covers writers whose transactions commit
within that time after their created_at; ``--full`` re-exports everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock
from sqlalchemy import Connection, Engine, Select, and_, func, or_, select

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path
from towerkit.rec.store.engine import redact
from towerkit.rec.store.layout import (
    INTERACTION_SCHEMA,
    Layout,
    feature_type,
    load_watermark,
    save_watermark,
    write_manifest,
)
from towerkit.rec.store.mapping import BoundStore, EntityMapping, FeatureSpec
from towerkit.rec.store.progress import store_progress

DEFAULT_BATCH = 10_000
DEFAULT_PART_ROWS = 1_000_000


@dataclass(frozen=True)
class ExportResult:
    out: Path
    new_rows: int
    new_parts: list[str]
    interactions: int  # every exported interaction, all parts
    users: int
    items: int


def _stream_key(bound: BoundStore, source: str) -> dict[str, Any]:
    """What the watermark is valid for: the same database, table, columns and actions."""
    inter = bound.mapping.interactions
    return {
        "source": source,
        "schema": bound.mapping.schema,
        "table": inter.table,
        "columns": [inter.id, inter.viewer_id, inter.target_id, inter.action, inter.created_at],
        "actions": dict(sorted(inter.actions.items())),
    }


def _query(
    bound: BoundStore, after: tuple[datetime, int] | None, before: datetime | None
) -> Select[Any]:
    inter = bound.mapping.interactions
    columns = bound.interactions.c
    at, ident = columns[inter.created_at], columns[inter.id]
    aware = bool(getattr(at.type, "timezone", False))  # naive columns hold UTC wall time

    def bound_value(when: datetime) -> datetime:
        return when if aware else when.astimezone(UTC).replace(tzinfo=None)

    stmt = select(
        ident, columns[inter.viewer_id], columns[inter.target_id], columns[inter.action], at
    ).where(columns[inter.action].in_(sorted(set(inter.actions.values()))))
    if after is not None:
        when = bound_value(after[0])
        stmt = stmt.where(or_(at > when, and_(at == when, ident > after[1])))
    if before is not None:
        stmt = stmt.where(at < bound_value(before))
    return stmt.order_by(at, ident)


def _interaction_batches(
    conn: Connection, stmt: Select[Any], actions: dict[str, str], batch_size: int
) -> Iterator[pa.Table]:
    canonical = {stored: name for name, stored in actions.items()}
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
    for rows in result.partitions():
        ids, viewers, targets, acts, times = zip(*rows, strict=True)
        yield pa.table(
            [
                pa.array(ids, pa.int64()),
                _strings(viewers),
                _strings(targets),
                pa.array([canonical[a] for a in acts], pa.string()),
                # pyarrow turns aware values into UTC and takes naive ones (SQLite, timestamp
                # without time zone) as UTC already
                pa.array(times, INTERACTION_SCHEMA.field("created_at").type),
            ],
            schema=INTERACTION_SCHEMA,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(values: Sequence[Any]) -> pa.Array:
    """Ids as strings: text columns as they are, integer or uuid ids converted."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_text(v) for v in values], pa.string())


def _write_parts(
    conn: Connection,
    bound: BoundStore,
    layout: Layout,
    watermark: dict[str, Any],
    batch_size: int,
    part_rows: int,
    lag_s: float,
) -> tuple[int, list[str]]:
    after = None
    if watermark.get("created_at") is not None:
        after = (datetime.fromisoformat(watermark["created_at"]), int(watermark["interaction_id"]))
    before = datetime.now(UTC) - timedelta(seconds=lag_s) if lag_s > 0 else None
    stmt = _query(bound, after, before)
    total = conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
    batches = _interaction_batches(conn, stmt, bound.mapping.interactions.actions, batch_size)
    written: list[str] = []
    rows_written = 0
    with store_progress() as progress:
        task = progress.add_task("interactions", total=total.scalar_one())
        while (first := next(batches, None)) is not None:
            path = layout.part_path(len(watermark["parts"]))
            rows, last = _write_part(path, first, batches, part_rows, progress.advance, task)
            name = layout.relative(path)
            watermark["parts"].append({"file": name, "rows": rows})
            watermark["created_at"] = last[0].isoformat()
            watermark["interaction_id"] = last[1]
            save_watermark(layout, watermark)  # only now: the part is renamed into place
            written.append(name)
            rows_written += rows
    return rows_written, written


def _write_part(
    path: Path,
    first: pa.Table,
    batches: Iterator[pa.Table],
    part_rows: int,
    advance: Any,
    task: Any,
) -> tuple[int, tuple[datetime, int]]:
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, INTERACTION_SCHEMA) as writer:
        batch: pa.Table | None = first
        while batch is not None:
            writer.write_table(batch, row_group_size=batch.num_rows)
            rows += batch.num_rows
            advance(task, batch.num_rows)
            last = (batch["created_at"][-1].as_py(), int(batch["interaction_id"][-1].as_py()))
            batch = next(batches, None) if rows < part_rows else None
    return rows, last


def _feature_value(spec: FeatureSpec, value: Any, key: str, row_id: Any) -> Any:
    if value is None:
        return [] if spec.kind == "multi_categorical" else None
    if spec.kind == "numeric":
        try:  # int, float, Decimal, bool, or numeric text
            return float(value)
        except (TypeError, ValueError):
            raise TowerkitError(
                f"{key}: row id={row_id!r}: {value!r} is not a number (kind numeric)"
            ) from None
    if spec.kind == "multi_categorical":
        if isinstance(value, list | tuple):
            return [str(v) for v in value if v is not None]
        return [part for part in str(value).split(spec.separator) if part]
    return str(value)


def _write_entities(
    conn: Connection, table: Any, entity: EntityMapping, key: str, path: Path, batch_size: int
) -> int:
    specs = entity.specs()
    id_name = "user_id" if key == "users" else "item_id"
    schema = pa.schema(
        [(id_name, pa.string())] + [(name, feature_type(s.kind)) for name, s in specs.items()]
    )
    columns = [table.c[entity.id], *(table.c[name] for name in specs)]
    stmt = select(*columns).order_by(table.c[entity.id])
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for batch in result.partitions():
            data: list[Any] = [_strings([row[0] for row in batch])]
            for index, (name, spec) in enumerate(specs.items(), start=1):
                where = f"{key}.features.{name}"
                data.append([_feature_value(spec, row[index], where, row[0]) for row in batch])
            writer.write_table(pa.table(data, schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


def check_out_folder(out: Path) -> None:
    """``out`` is (or can be made) a folder: a file at it, or at one of its parents, is one
    error naming ``--out`` instead of mkdir's FileExistsError/NotADirectoryError traceback."""
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker == out:
        raise TowerkitError(f"--out {out}: is a file; expected an export folder")
    if blocker is not None:
        raise TowerkitError(f"--out {out}: {blocker} is a file; expected an export folder")


def export_bound(
    engine: Engine,
    bound: BoundStore,
    out: Path,
    *,
    batch_size: int = DEFAULT_BATCH,
    part_rows: int = DEFAULT_PART_ROWS,
    full: bool = False,
    lag_s: float = 0.0,
) -> ExportResult:
    """Export the store ``bound`` describes into ``out`` (see the module docstring)."""
    for name, value in (("--batch-size", batch_size), ("--part-rows", part_rows)):
        if value < 1:
            raise TowerkitError(f"{name} {value}: expected a positive number of rows")
    if lag_s < 0:
        raise TowerkitError(f"--lag {lag_s:g}: expected seconds >= 0")
    check_out_folder(Path(out))
    layout = Layout(Path(out))
    layout.root.mkdir(parents=True, exist_ok=True)
    source = redact(engine.url)
    key = _stream_key(bound, source)
    with FileLock(layout.root / ".export.lock"):
        if full:  # first, so that a crash below leaves no watermark naming deleted parts
            layout.watermark.unlink(missing_ok=True)
        watermark = load_watermark(layout, key, fresh=full)
        layout.remove_orphan_parts(len(watermark["parts"]))
        with engine.connect() as conn:
            new_rows, new_parts = _write_parts(
                conn, bound, layout, watermark, batch_size, part_rows, lag_s
            )
            users = _write_entities(
                conn, bound.users, bound.mapping.users, "users", layout.users, batch_size
            )
            items = _write_entities(
                conn, bound.items, bound.mapping.items, "items", layout.items, batch_size
            )
        total = sum(int(part["rows"]) for part in watermark["parts"])
        write_manifest(layout, bound, source, watermark, users=users, items=items)
    return ExportResult(layout.root, new_rows, new_parts, total, users, items)


def export_store(
    db: str | Engine,
    out: str | Path,
    *,
    mapping: str | Path | None = None,
    schema: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    part_rows: int = DEFAULT_PART_ROWS,
    full: bool = False,
    lag_s: float = 0.0,
) -> ExportResult:
    """``towerkit rec export`` as a function: a store URL (or engine), a folder, a mapping YAML."""
    from towerkit.rec.store.engine import check_connection, create_store_engine, database_errors
    from towerkit.rec.store.mapping import bind_mapping, load_mapping

    check_out_folder(Path(out))  # before connecting: a usage error, not a database one
    engine = db if isinstance(db, Engine) else create_store_engine(db, must_exist=True)
    loaded, source = load_mapping(Path(mapping) if mapping is not None else None, schema)
    check_connection(engine)
    with database_errors(engine, "export failed"):
        bound = bind_mapping(engine, loaded, source)
        return export_bound(
            engine,
            bound,
            Path(out),
            batch_size=batch_size,
            part_rows=part_rows,
            full=full,
            lag_s=lag_s,
        )

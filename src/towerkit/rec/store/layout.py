"""The export folder: where each file goes, the watermark and the manifest.

    DIR/interactions/part-00000.parquet ...  interaction_id int64, viewer_id string,
                                             target_id string, action string (like|pass|match),
                                             created_at timestamp[us, tz=UTC]
    DIR/users.parquet                        user_id string + one column per user feature
    DIR/items.parquet                        item_id string + one column per item feature
    DIR/manifest.json                        schema_version, source (no password), row counts,
                                             parts, feature_kinds {users: {col: kind}, items: ...}
    DIR/watermark.json                       the last exported (created_at, interaction_id) and
                                             the durable parts; the next export starts after it

Feature columns by kind: categorical and text -> string, numeric -> float64,
multi_categorical -> list<string> (an empty list for NULL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.rec.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from towerkit.rec.store.mapping import BoundStore

INTERACTION_SCHEMA = pa.schema(
    [
        ("interaction_id", pa.int64()),
        ("viewer_id", pa.string()),
        ("target_id", pa.string()),
        ("action", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
_FEATURE_TYPES = {
    "categorical": pa.string(),
    "text": pa.string(),
    "numeric": pa.float64(),
    "multi_categorical": pa.list_(pa.string()),
}


def feature_type(kind: str) -> pa.DataType:
    return _FEATURE_TYPES[kind]


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.interactions = root / "interactions"
        self.users = root / "users.parquet"
        self.items = root / "items.parquet"
        self.manifest = root / "manifest.json"
        self.watermark = root / "watermark.json"

    def part_path(self, index: int) -> Path:
        return self.interactions / f"part-{index:05d}.parquet"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def remove_orphan_parts(self, keep: int) -> None:
        """Parts a crashed run renamed into place before its watermark: rewritten next."""
        for path in self.interactions.glob("part-*.parquet"):
            suffix = path.stem.removeprefix("part-")
            if suffix.isdigit() and int(suffix) >= keep:
                path.unlink()


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TowerkitError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise TowerkitError(f"{path}: expected a JSON object")
    return data


def load_watermark(layout: Layout, stream: dict[str, Any], *, fresh: bool) -> dict[str, Any]:
    """The saved watermark, or a new one; refuses one written for another table or database."""
    if fresh or not layout.watermark.is_file():
        return {"created_at": None, "interaction_id": None, "parts": [], "stream": stream}
    watermark = _read_json(layout.watermark)
    if watermark.get("schema_version") != SCHEMA_VERSION:
        raise TowerkitError(
            f"{layout.watermark}: schema_version {watermark.get('schema_version')!r}, expected "
            f"{SCHEMA_VERSION}; export again with --full"
        )
    saved = watermark.get("stream", {})
    if saved != stream:
        raise TowerkitError(
            f"{layout.watermark}: written for {saved.get('source')} table "
            f"{saved.get('table')!r} with other columns or actions; use another --out or --full"
        )
    return watermark


def save_watermark(layout: Layout, watermark: dict[str, Any]) -> None:
    watermark["schema_version"] = SCHEMA_VERSION
    watermark["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(layout.watermark, watermark)


def read_manifest(layout: Layout) -> dict[str, Any]:
    if not layout.manifest.is_file():
        raise TowerkitError(
            f"{layout.root}: not a towerkit export (no manifest.json); "
            "write one with `towerkit rec export --db URL --out DIR`"
        )
    return _read_json(layout.manifest)


def read_watermark(layout: Layout) -> dict[str, Any]:
    if not layout.watermark.is_file():
        return {"parts": []}
    return _read_json(layout.watermark)


def write_manifest(
    layout: Layout,
    bound: BoundStore,
    source: str,
    watermark: dict[str, Any],
    *,
    users: int,
    items: int,
) -> None:
    mapping = bound.mapping
    parts = watermark["parts"]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "mapping": bound.source,
        "interactions": {
            "rows": sum(int(part["rows"]) for part in parts),
            "parts": parts,
            "table": mapping.interactions.table,
            "actions": sorted(mapping.interactions.actions),
            "watermark": {
                "created_at": watermark["created_at"],
                "interaction_id": watermark["interaction_id"],
            },
        },
        "users": {
            "file": layout.relative(layout.users),
            "rows": users,
            "table": mapping.users.table,
        },
        "items": {
            "file": layout.relative(layout.items),
            "rows": items,
            "table": mapping.items.table,
        },
        "feature_kinds": {"users": mapping.users.kinds(), "items": mapping.items.kinds()},
    }
    write_json_atomic(layout.manifest, manifest)

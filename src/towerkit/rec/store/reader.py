"""``read_export``: an export folder back as Polars frames (what the two-tower trains on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from towerkit.core.errors import TowerkitError
from towerkit.core.io import read_parquet
from towerkit.rec.store.layout import INTERACTION_SCHEMA, Layout, read_manifest, read_watermark


@dataclass(frozen=True)
class ExportedData:
    """interactions: every durable part, deduplicated by interaction_id, sorted by
    (created_at, interaction_id); users / items: the latest snapshots; feature kinds by column."""

    interactions: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    user_kinds: dict[str, str]
    item_kinds: dict[str, str]
    manifest: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, dict[str, str]]:
        return {"users": self.user_kinds, "items": self.item_kinds}


def _read_parquet(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise TowerkitError(f"{path}: missing from the export; run `towerkit rec export` again")
    frame: pl.DataFrame = read_parquet(path, "run `towerkit rec export --full` again")
    return frame


def _interactions(paths: list[Path]) -> pl.DataFrame:
    if not paths:
        return pl.from_arrow(INTERACTION_SCHEMA.empty_table())  # type: ignore[return-value]
    frame = pl.concat([_read_parquet(path) for path in paths], how="vertical")
    return frame.unique("interaction_id", keep="last", maintain_order=True).sort(
        "created_at", "interaction_id"
    )


def read_export(out: str | Path) -> ExportedData:
    """Read what ``towerkit rec export --out DIR`` wrote (see ``towerkit.rec.store.layout``)."""
    layout = Layout(Path(out))
    manifest = read_manifest(layout)
    # the watermark lists the parts that are durable; a crashed run's extra part is not read
    parts = [layout.root / str(part["file"]) for part in read_watermark(layout)["parts"]]
    kinds = manifest.get("feature_kinds", {})
    return ExportedData(
        interactions=_interactions(parts),
        users=_read_parquet(layout.users),
        items=_read_parquet(layout.items),
        user_kinds=dict(kinds.get("users", {})),
        item_kinds=dict(kinds.get("items", {})),
        manifest=manifest,
        files=[*parts, layout.users, layout.items, layout.manifest],
    )

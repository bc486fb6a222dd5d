"""Where a two-tower run's frames come from: an export folder, a store URL, or MovieLens directly.

- ``data.path``: a folder written by ``towerkit rec export`` (read with
  ``towerkit.rec.store.read_export``);
- ``data.db``: a store URL; it is exported into ``<run_dir>/data`` first, then read; a resumed
  or re-evaluated run reads that copy again, so it sees the data it trained on whatever the
  store holds now (and the run's config.yaml keeps the URL without its password);
- ``movielens_data()``: the same frames ``seed-db`` + ``export`` produce, built in memory from the
  ``movielens-100k`` asset (tests and benchmarks that need no database).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.rec.twotower.data import ITEM_ID, USER_ID, InteractionData, kinds_from

if TYPE_CHECKING:
    from towerkit.rec.twotower.config import TwoTowerRecipe


def load_data(config: Any, run_dir: Path) -> InteractionData:
    """``config`` is the recipe's DataConfig (path or db)."""
    from towerkit.rec.store.layout import Layout

    if config.path and config.db:
        raise ConfigError("data: give either path (an export folder) or db (a store URL), not both")
    if config.path:
        return read_export_dir(Path(config.path))
    if config.db:
        copy = run_dir / "data"
        if Layout(copy).manifest.is_file():  # a resumed or re-evaluated run: its own export
            return read_export_dir(copy)
        return export_and_read(config.db, copy)
    raise ConfigError(
        "data: no data given; pass --data DIR (a `towerkit rec export` folder) or --db URL"
    )


def absolute_sources(config: Any) -> None:
    """``data.path`` and a SQLite ``data.db`` file as absolute paths, so that the run's saved
    config finds its data from any working directory (``rec evaluate``, ``--resume``)."""
    from towerkit.rec.store.engine import absolute_store

    if config.path:
        config.path = str(Path(config.path).expanduser().resolve())
    if config.db:
        config.db = absolute_store(config.db)


def changed_since_training(trained_on: str | None, data: InteractionData) -> str:
    """A note for ``evaluate``'s data line when ``data`` is not what the model trained on (its
    registered data fingerprint): an export folder that a later ``rec export`` extended. Empty
    when they match or either is unknown."""
    from towerkit.core.fingerprint import data_fingerprint

    if not trained_on or not data.files:
        return ""
    now = data_fingerprint(data.files)
    if now == trained_on:
        return ""
    return (
        f"; the data changed since training (fingerprint {trained_on[:12]} -> {now[:12]}): "
        "this table is on the data as it is now"
    )


def without_password(config: TwoTowerRecipe) -> TwoTowerRecipe:
    """The recipe as its run saves it: a store URL's password shown as ***."""
    from towerkit.rec.store.engine import redact

    if not config.data.db:
        return config
    return replace(config, data=replace(config.data, db=redact(config.data.db)))


def read_export_dir(path: Path) -> InteractionData:
    from towerkit.rec.store import read_export

    if not path.is_dir():
        raise TowerkitError(
            f"data.path {path}: not a folder (expected a `towerkit rec export` output)"
        )
    return from_export(read_export(path), f"export {path}")


def export_and_read(db: str, out: Path) -> InteractionData:
    from towerkit.rec.store import export_store

    export_store(db, out)
    return read_export_dir(out)


def from_export(export: Any, description: str) -> InteractionData:
    """Adapt ``read_export``'s ``ExportedData`` (frames plus the feature kinds of each table)."""
    return InteractionData(
        interactions=export.interactions,
        users=export.users,
        items=export.items,
        user_kinds=kinds_from(export.user_kinds),
        item_kinds=kinds_from(export.item_kinds),
        description=description,
        files=[Path(p) for p in export.files],
    )


def movielens_data(limit: int | None = None) -> InteractionData:
    """MovieLens-100K as the default store holds it (likes >= 4, passes <= 2, zip prefix)."""
    from towerkit.rec.assets import fetch
    from towerkit.rec.store.movielens import load_movielens_100k

    folder = Path(fetch("movielens-100k"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return movielens_frames(load_movielens_100k(folder), limit, files)


def movielens_frames(
    movielens: Any, limit: int | None = None, files: Sequence[Path] = ()
) -> InteractionData:
    """``InteractionData`` from a ``towerkit.rec.store.movielens.MovieLens`` (same rules as seed-db)."""
    from towerkit.rec.store.schema import ITEM_FEATURES, USER_FEATURES
    from towerkit.rec.store.seed import interaction_frame

    users = movielens.users.select(
        pl.col("user_id").alias(USER_ID),
        "age",
        "gender",
        "occupation",
        pl.col("zip_code").str.slice(0, 1).alias("zip_prefix"),
    )
    return InteractionData(
        interactions=interaction_frame(movielens, limit),
        users=users,
        items=movielens.items.rename({"item_id": ITEM_ID}),
        user_kinds=dict(USER_FEATURES),
        item_kinds=dict(ITEM_FEATURES),
        description="MovieLens-100K (ratings >= 4 like, <= 2 pass)",
        files=list(files),
    )

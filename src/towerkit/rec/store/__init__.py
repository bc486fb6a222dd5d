"""Interaction store: the default schema, ``seed-db``, ``export`` and ``read_export``.

Default schema (``towerkit.rec.store.schema``): ``users`` (id + age, gender, occupation,
zip_prefix), ``items`` (id + title, year, genres), ``interactions`` (id, viewer_id, target_id,
action like|pass|match, created_at UTC). Another app's tables are read through a YAML mapping
(``towerkit.rec.store.mapping``; examples in ``configs/rec/schema-*.yaml``). Stores are a SQLite
file or a Postgres URL (``create_store_engine``).

Export folder contract (``towerkit.rec.store.layout``), what the two-tower reads:

    DIR/interactions/part-00000.parquet ...  interaction_id int64, viewer_id string,
                                             target_id string, action string,
                                             created_at timestamp[us, tz=UTC]
    DIR/users.parquet   user_id string + features     DIR/items.parquet   item_id string + features
    DIR/manifest.json   feature kinds per column, row counts, source URL (no password),
                        schema_version
    DIR/watermark.json  where the next incremental export starts

Feature columns: categorical/text -> string, numeric -> float64, multi_categorical ->
list<string>.
"""

from __future__ import annotations

from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.export import ExportResult, export_store
from towerkit.rec.store.reader import ExportedData, read_export

__all__ = ["ExportResult", "ExportedData", "create_store_engine", "export_store", "read_export"]

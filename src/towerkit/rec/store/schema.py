"""The default interaction-store schema (what ``seed-db`` creates and ``export`` reads).

``users``        id TEXT PK, age INTEGER, gender TEXT, occupation TEXT, zip_prefix TEXT
``items``        id TEXT PK, title TEXT, year INTEGER, genres TEXT ("|"-joined)
``interactions`` id BIGINT PK (auto), viewer_id TEXT -> users.id, target_id TEXT -> items.id,
                 action TEXT in like|pass|match, created_at TIMESTAMP WITH TIME ZONE (UTC),
                 indexed on (created_at, id): the export's watermark order

Other schemas (a dating app's ``profiles`` + ``swipes``) are described by a YAML mapping instead
(``towerkit.rec.store.mapping``); their tables are never created or altered by towerkit.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1
ACTIONS = ("like", "pass", "match")
FeatureKind = Literal["categorical", "numeric", "text", "multi_categorical"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("categorical", "numeric", "text", "multi_categorical")

USER_FEATURES: dict[str, FeatureKind] = {
    "age": "numeric",
    "gender": "categorical",
    "occupation": "categorical",
    "zip_prefix": "categorical",
}
ITEM_FEATURES: dict[str, FeatureKind] = {
    "title": "text",
    "year": "numeric",
    "genres": "multi_categorical",
}
MULTI_SEPARATOR = "|"  # how the default schema stores a multi_categorical value in one TEXT


class DefaultTables:
    """The three default tables in one MetaData, optionally inside a Postgres schema."""

    def __init__(self, schema: str | None = None) -> None:
        self.metadata = MetaData(schema=schema)
        prefix = f"{schema}." if schema else ""
        self.users = Table(
            "users",
            self.metadata,
            Column("id", String(64), primary_key=True),
            Column("age", Integer),
            Column("gender", String(16)),
            Column("occupation", String(64)),
            Column("zip_prefix", String(8)),
        )
        self.items = Table(
            "items",
            self.metadata,
            Column("id", String(64), primary_key=True),
            Column("title", Text),
            Column("year", Integer),
            Column("genres", Text),
        )
        self.interactions = Table(
            "interactions",
            self.metadata,
            # SQLite only auto-increments a column declared INTEGER PRIMARY KEY
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
            Column("viewer_id", String(64), ForeignKey(f"{prefix}users.id"), nullable=False),
            Column("target_id", String(64), ForeignKey(f"{prefix}items.id"), nullable=False),
            Column("action", String(16), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            CheckConstraint("action IN ('like', 'pass', 'match')", name="interactions_action"),
            Index("interactions_created_at_id", "created_at", "id"),
        )

    @property
    def tables(self) -> tuple[Table, Table, Table]:
        return self.users, self.items, self.interactions

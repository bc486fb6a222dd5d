"""YAML mapping from a store's own tables and columns to the export's users/items/interactions.

Without a mapping the default schema (``towerkit.rec.store.schema``) is read. A mapping names the
tables, the id/viewer/target/action/created_at columns and each feature column with its kind
(categorical | numeric | text | multi_categorical); see ``configs/rec/schema-*.yaml``. ``users``
and ``items`` may name the same table (a dating app's ``profiles``).

Every name from the mapping must match ``[A-Za-z_][A-Za-z0-9_]*`` (at most 63 characters) and
exist in the database (SQLAlchemy inspection); the tables are then reflected, so SQL is built by
SQLAlchemy Core with quoted names, and values (actions, the watermark) are always bound
parameters. Any violation is one line naming the mapping key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import DateTime, Engine, Integer, MetaData, Table, inspect
from sqlalchemy.engine import Inspector

from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError
from towerkit.rec.store.schema import (
    ACTIONS,
    FEATURE_KINDS,
    ITEM_FEATURES,
    MULTI_SEPARATOR,
    USER_FEATURES,
    FeatureKind,
)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass
class FeatureSpec:
    kind: FeatureKind
    separator: str = MULTI_SEPARATOR  # multi_categorical stored as delimited text (not arrays)


@dataclass
class EntityMapping:
    table: str
    id: str = "id"
    # column -> kind, or column -> {kind, separator}
    features: dict[str, FeatureKind | FeatureSpec] = field(default_factory=dict)

    def specs(self) -> dict[str, FeatureSpec]:
        return {
            column: spec if isinstance(spec, FeatureSpec) else FeatureSpec(spec)
            for column, spec in self.features.items()
        }

    def kinds(self) -> dict[str, str]:
        return {column: spec.kind for column, spec in self.specs().items()}


@dataclass
class InteractionMapping:
    table: str = "interactions"
    id: str = "id"  # an integer column: the export orders and deduplicates by it
    viewer_id: str = "viewer_id"
    target_id: str = "target_id"
    action: str = "action"
    created_at: str = "created_at"
    # canonical action -> the value stored in the action column; rows with other values are skipped
    actions: dict[str, str] = field(default_factory=lambda: {a: a for a in ACTIONS})


@dataclass
class StoreMapping:
    schema: str | None = None  # Postgres schema (namespace); None: the connection's default
    users: EntityMapping = field(
        default_factory=lambda: EntityMapping("users", features=dict(USER_FEATURES))
    )
    items: EntityMapping = field(
        default_factory=lambda: EntityMapping("items", features=dict(ITEM_FEATURES))
    )
    interactions: InteractionMapping = field(default_factory=InteractionMapping)


@dataclass(frozen=True)
class BoundStore:
    """A mapping checked against a database, with its tables reflected."""

    mapping: StoreMapping
    source: str  # where the mapping came from, for messages
    users: Table
    items: Table
    interactions: Table


def load_mapping(path: Path | None = None, schema: str | None = None) -> tuple[StoreMapping, str]:
    """The mapping from ``path`` (default schema without one), and its description for messages.
    ``schema`` (the CLI's ``--schema``) overrides the mapping's own."""
    mapping = load_config(StoreMapping, path) if path is not None else StoreMapping()
    if schema is not None:
        mapping.schema = schema
    return mapping, f"mapping {path}" if path is not None else "default mapping"


def _identifiers(mapping: StoreMapping) -> Iterator[tuple[str, str]]:
    if mapping.schema is not None:
        yield "schema", mapping.schema
    for key, entity in (("users", mapping.users), ("items", mapping.items)):
        yield f"{key}.table", entity.table
        yield f"{key}.id", entity.id
        for column in entity.features:
            yield f"{key}.features.{column}", column
    inter = mapping.interactions
    for name in ("table", "id", "viewer_id", "target_id", "action", "created_at"):
        yield f"interactions.{name}", getattr(inter, name)


def validate_mapping(mapping: StoreMapping, source: str) -> None:
    """Static checks (no database): identifiers, feature kinds, actions."""
    for key, value in _identifiers(mapping):
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            raise ConfigError(
                f"{source}: key '{key}': {value!r} is not a plain identifier "
                "(expected letters, digits and _, not starting with a digit, at most 63)"
            )
    for key, entity in (("users", mapping.users), ("items", mapping.items)):
        for column, spec in entity.specs().items():
            if spec.kind not in FEATURE_KINDS:
                raise ConfigError(
                    f"{source}: key '{key}.features.{column}': kind {spec.kind!r}, "
                    f"expected one of {', '.join(FEATURE_KINDS)}"
                )
            if spec.kind == "multi_categorical" and not spec.separator:
                raise ConfigError(f"{source}: key '{key}.features.{column}.separator': empty")
        reserved = "user_id" if key == "users" else "item_id"
        if reserved in entity.features:
            raise ConfigError(
                f"{source}: key '{key}.features.{reserved}': the export's own id column; "
                f"name it in '{key}.id' instead"
            )
    actions = mapping.interactions.actions
    unknown = sorted(set(actions) - set(ACTIONS))
    if unknown or not actions:
        raise ConfigError(
            f"{source}: key 'interactions.actions': {unknown[0] if unknown else 'empty'!r}; "
            f"expected keys among {', '.join(ACTIONS)}"
        )
    if len(set(actions.values())) != len(actions):
        raise ConfigError(f"{source}: key 'interactions.actions': two actions share one value")


def _reflect(
    inspector: Inspector, engine: Engine, key: str, name: str, schema: str | None, source: str
) -> Table:
    if not inspector.has_table(name, schema=schema):
        known = ", ".join(sorted(inspector.get_table_names(schema=schema))) or "none"
        where = f" in schema {schema!r}" if schema else ""
        raise ConfigError(f"{source}: key '{key}': no table {name!r}{where} (tables: {known})")
    return Table(name, MetaData(), schema=schema, autoload_with=engine)


def _require(table: Table, key: str, column: str, source: str) -> None:
    if column not in table.c:
        known = ", ".join(table.c.keys())
        raise ConfigError(
            f"{source}: key '{key}': table {table.name!r} has no column {column!r} "
            f"(columns: {known})"
        )


def bind_mapping(engine: Engine, mapping: StoreMapping, source: str) -> BoundStore:
    """Validate ``mapping`` against the database behind ``engine`` and reflect its tables."""
    validate_mapping(mapping, source)
    inspector = inspect(engine)
    schema = mapping.schema
    if schema is not None and schema not in inspector.get_schema_names():
        raise ConfigError(f"{source}: key 'schema': no schema {schema!r} in the database")
    tables: dict[str, Table] = {}
    for key, entity in (("users", mapping.users), ("items", mapping.items)):
        table = _reflect(inspector, engine, f"{key}.table", entity.table, schema, source)
        _require(table, f"{key}.id", entity.id, source)
        for column in entity.features:
            _require(table, f"{key}.features.{column}", column, source)
        tables[key] = table
    inter = mapping.interactions
    table = _reflect(inspector, engine, "interactions.table", inter.table, schema, source)
    for name in ("id", "viewer_id", "target_id", "action", "created_at"):
        _require(table, f"interactions.{name}", getattr(inter, name), source)
    _check_type(table, "interactions.id", inter.id, Integer, "an integer", source)
    _check_type(table, "interactions.created_at", inter.created_at, DateTime, "a timestamp", source)
    return BoundStore(mapping, source, tables["users"], tables["items"], table)


def _check_type(
    table: Table, key: str, column: str, expected: type, words: str, source: str
) -> None:
    kind = table.c[column].type
    if not isinstance(kind, expected):
        raise ConfigError(
            f"{source}: key '{key}': column {column!r} of {table.name!r} is {kind}, "
            f"expected {words}"
        )

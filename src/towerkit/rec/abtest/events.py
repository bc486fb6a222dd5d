"""Experiments, exposures and outcome events in the store's own database (SQLAlchemy 2 Core).

Three tables (``<prefix>experiments``, ``<prefix>exposures``, ``<prefix>outcomes``), created if
absent, in an optional schema. Every value goes in as a bound parameter; the prefix and schema are
identifiers and are checked against a strict pattern before they reach any DDL.

Semantics: a user's first exposure counts (later ones are ignored), and the variant is computed
here from the experiment's salt and weights, never taken from the caller. Outcomes are events: a
user's value of a metric is the sum of its events (0 when it has none), a binary metric is 1 when
that sum is positive. The covariate metric holds pre-period values for CUPED.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.assign import Assigner

MetricKind = Literal["binary", "continuous", "covariate"]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_KINDS = ("binary", "continuous", "covariate")
# event tables grow large: BIGINT ids, except in SQLite, which auto-increments INTEGER keys only
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _identifier(value: str, what: str) -> str:
    if not _IDENT.fullmatch(value):
        raise TowerkitError(
            f"{what}: expected letters, digits and _ (a SQL identifier), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Experiment:
    """An experiment's configuration; the first variant is the control."""

    name: str
    salt: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    metrics: Mapping[str, MetricKind]
    models: Mapping[str, str] = field(default_factory=dict)  # variant -> model reference
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise TowerkitError(f"experiment name: expected 1-200 characters, got {self.name!r}")
        assigner = Assigner(self.salt, tuple(self.variants), tuple(self.weights))
        object.__setattr__(self, "weights", assigner.weights)
        for metric, kind in self.metrics.items():
            if kind not in _KINDS:
                raise TowerkitError(f"metric {metric!r}: expected one of {_KINDS}, got {kind!r}")
        if sum(kind == "covariate" for kind in self.metrics.values()) > 1:
            raise TowerkitError("metrics: expected at most one covariate")

    @property
    def assigner(self) -> Assigner:
        return Assigner(self.salt, tuple(self.variants), tuple(self.weights))

    @property
    def covariate(self) -> str | None:
        return next((m for m, kind in self.metrics.items() if kind == "covariate"), None)


@dataclass(frozen=True)
class ExperimentData:
    """Per exposed user: its variant (index into ``variants``) and each metric's summed value."""

    users: list[str]
    variant_index: np.ndarray
    values: dict[str, np.ndarray]

    def counts(self, variants: Sequence[str]) -> dict[str, int]:
        found = np.bincount(self.variant_index, minlength=len(variants))
        return {v: int(n) for v, n in zip(variants, found, strict=True)}


def _now() -> datetime:
    return datetime.now(UTC)


class EventLog:
    """The A/B tables on one engine (the store's); ``create()`` makes them if absent."""

    def __init__(self, engine: Engine, prefix: str = "ab_", schema: str | None = None) -> None:
        self.engine = engine
        _identifier(prefix + "x", "table prefix")
        self.metadata = sa.MetaData(schema=_identifier(schema, "schema") if schema else None)
        self.experiments = sa.Table(
            f"{prefix}experiments",
            self.metadata,
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("salt", sa.String(200), nullable=False),
            sa.Column("variants", sa.JSON, nullable=False),
            sa.Column("weights", sa.JSON, nullable=False),
            sa.Column("metrics", sa.JSON, nullable=False),
            sa.Column("models", sa.JSON, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        fk = f"{schema + '.' if schema else ''}{prefix}experiments.name"
        self.exposures = sa.Table(
            f"{prefix}exposures",
            self.metadata,
            sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
            sa.Column("experiment", sa.String(200), sa.ForeignKey(fk), nullable=False),
            sa.Column("user_id", sa.String(200), nullable=False),
            sa.Column("variant", sa.String(100), nullable=False),
            sa.Column("shown_items", sa.JSON, nullable=True),
            sa.Column("exposed_at", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint("experiment", "user_id"),
        )
        self.outcomes = sa.Table(
            f"{prefix}outcomes",
            self.metadata,
            sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
            sa.Column("experiment", sa.String(200), sa.ForeignKey(fk), nullable=False),
            sa.Column("user_id", sa.String(200), nullable=False),
            sa.Column("metric", sa.String(100), nullable=False),
            sa.Column("value", sa.Float, nullable=False),
            sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Index(f"{prefix}outcomes_by_user", "experiment", "user_id"),
        )

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction for several calls (pass ``conn=``): all of them land, or none."""
        with self.engine.begin() as conn:
            yield conn

    def _begin(self, conn: sa.Connection | None) -> AbstractContextManager[sa.Connection]:
        return nullcontext(conn) if conn is not None else self.engine.begin()

    def exists(self) -> bool:
        inspector = sa.inspect(self.engine)
        return all(
            inspector.has_table(t.name, schema=self.metadata.schema)
            for t in (self.experiments, self.exposures, self.outcomes)
        )

    def create(self) -> None:
        self.metadata.create_all(self.engine, checkfirst=True)

    def drop(self) -> None:
        self.metadata.drop_all(self.engine, checkfirst=True)

    # experiments -------------------------------------------------------------------------------

    def save_experiment(
        self, experiment: Experiment, replace: bool = False, conn: sa.Connection | None = None
    ) -> None:
        """Store a new experiment; with ``replace`` an existing one and its events go first."""
        row = {
            "name": experiment.name,
            "salt": experiment.salt,
            "variants": list(experiment.variants),
            "weights": list(experiment.weights),
            "metrics": dict(experiment.metrics),
            "models": dict(experiment.models),
            "description": experiment.description,
            "created_at": _now(),
        }
        with self._begin(conn) as conn:
            exists = conn.execute(
                sa.select(self.experiments.c.name).where(self.experiments.c.name == experiment.name)
            ).first()
            if exists and not replace:
                raise TowerkitError(
                    f"experiment {experiment.name!r} already exists in the database; choose "
                    "another name or replace it"
                )
            if exists:
                self._delete(conn, experiment.name)
            conn.execute(self.experiments.insert(), row)

    def _delete(self, conn: sa.Connection, name: str) -> None:
        for table in (self.outcomes, self.exposures, self.experiments):
            key = table.c.name if table is self.experiments else table.c.experiment
            conn.execute(table.delete().where(key == name))

    def experiment(self, name: str) -> Experiment:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.experiments).where(self.experiments.c.name == name)
            ).first()
            if row is None:
                known = conn.execute(sa.select(self.experiments.c.name)).scalars().all()
                shown = ", ".join(sorted(known)[:10]) or "none"
                raise TowerkitError(f"experiment {name!r}: not in the database (known: {shown})")
        return Experiment(
            row.name,
            row.salt,
            tuple(row.variants),
            tuple(row.weights),
            dict(row.metrics),
            dict(row.models),
            row.description,
        )

    def experiment_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(self.experiments.c.name)).scalars().all())

    # events ------------------------------------------------------------------------------------

    def _insert_ignoring_duplicates(self, table: sa.Table) -> Any:
        name = self.engine.dialect.name
        if name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise TowerkitError(f"database: expected SQLite or PostgreSQL, got {name}")

    def expose(
        self,
        experiment: Experiment,
        user_ids: Sequence[str | int],
        items: Sequence[Sequence[str | int]] | None = None,
        at: datetime | None = None,
        conn: sa.Connection | None = None,
    ) -> list[str]:
        """Log exposures (first one per user counts); returns each user's variant."""
        variants = experiment.assigner.assign_many(user_ids)
        if items is not None and len(items) != len(user_ids):
            raise TowerkitError(f"items: expected {len(user_ids)} lists, got {len(items)}")
        when = at or _now()
        rows = [
            {
                "experiment": experiment.name,
                "user_id": str(user),
                "variant": variant,
                "shown_items": [str(i) for i in items[n]] if items is not None else None,
                "exposed_at": when,
            }
            for n, (user, variant) in enumerate(zip(user_ids, variants, strict=True))
        ]
        if rows:
            with self._begin(conn) as c:
                c.execute(self._insert_ignoring_duplicates(self.exposures), rows)
        return variants

    def record(
        self,
        experiment: Experiment,
        events: Iterable[tuple[str | int, str, float]],
        at: datetime | None = None,
        conn: sa.Connection | None = None,
    ) -> int:
        """Log outcome events ``(user id, metric, value)`` of the experiment's metrics."""
        when = at or _now()
        rows = []
        for user, metric, value in events:
            if metric not in experiment.metrics:
                known = ", ".join(experiment.metrics)
                raise TowerkitError(f"metric {metric!r}: expected one of {known}")
            rows.append(
                {
                    "experiment": experiment.name,
                    "user_id": str(user),
                    "metric": metric,
                    "value": float(value),
                    "observed_at": when,
                }
            )
        if rows:
            with self._begin(conn) as c:
                c.execute(self.outcomes.insert(), rows)
        return len(rows)

    def load(self, experiment: Experiment) -> ExperimentData:
        """Exposed users with their variant and the per-user sums of each metric."""
        e, o = self.exposures, self.outcomes
        with self.engine.connect() as conn:
            exposed = conn.execute(
                sa.select(e.c.user_id, e.c.variant)
                .where(e.c.experiment == experiment.name)
                .order_by(e.c.user_id)
            ).all()
            sums = conn.execute(
                sa.select(o.c.user_id, o.c.metric, sa.func.sum(o.c.value))
                .where(o.c.experiment == experiment.name)
                .group_by(o.c.user_id, o.c.metric)
            ).all()
        users = [row.user_id for row in exposed]
        position = {user: n for n, user in enumerate(users)}
        index_of = {v: n for n, v in enumerate(experiment.variants)}
        unknown = {row.variant for row in exposed} - set(index_of)
        if unknown:
            raise TowerkitError(f"exposures: variants {sorted(unknown)} are not in the experiment")
        variant_index = np.array([index_of[row.variant] for row in exposed], dtype=np.int64)
        values = {m: np.zeros(len(users)) for m in experiment.metrics}
        for user, metric, total in sums:
            if user in position and metric in values:  # outcomes of never-exposed users don't count
                values[metric][position[user]] = float(total)
        for metric, kind in experiment.metrics.items():
            if kind == "binary":
                values[metric] = (values[metric] > 0).astype(np.float64)
        return ExperimentData(users, variant_index, values)

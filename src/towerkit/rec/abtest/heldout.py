"""What an A/B simulation replays: the store's interactions after a cutoff, and before it.

Read from the interaction store itself (default schema or a YAML mapping, through
``towerkit.rec.store.mapping``), with SQLAlchemy Core and bound parameters only. Held-out users
are those with at least one like (or match) at or after ``start``; for them we also read what
they interacted with before ``start`` (excluded from recommendations) and how much (the CUPED
pre-period covariate).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from towerkit.core.errors import TowerkitError
from towerkit.rec.store.mapping import BoundStore

POSITIVE = ("like", "match")


@dataclass(frozen=True)
class HeldOut:
    start: datetime
    likes: dict[str, set[str]]  # user -> items liked at or after start
    seen: dict[str, set[str]]  # user -> items interacted with before start
    pre_activity: dict[str, int]  # user -> interactions before start

    @property
    def users(self) -> list[str]:
        return sorted(self.likes)


def _bound_time(column: sa.ColumnElement[Any], when: datetime) -> datetime:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    # a column without time zone holds naive UTC (what seed-db and the export assume)
    return when if getattr(column.type, "timezone", False) else when.replace(tzinfo=None)


def read_heldout(engine: sa.Engine, bound: BoundStore, start: datetime) -> HeldOut:
    inter = bound.mapping.interactions
    table = bound.interactions
    viewer, target = table.c[inter.viewer_id], table.c[inter.target_id]
    action, at = table.c[inter.action], table.c[inter.created_at]
    cutoff = _bound_time(at, start)
    liked = [inter.actions[a] for a in POSITIVE if a in inter.actions]
    known = sorted(set(inter.actions.values()))
    heldout_users = (
        sa.select(viewer).where(at >= cutoff, action.in_(liked)).distinct().scalar_subquery()
    )
    likes: dict[str, set[str]] = defaultdict(set)
    seen: dict[str, set[str]] = defaultdict(set)
    pre_activity: dict[str, int] = defaultdict(int)
    with engine.connect() as conn:
        for user, item in conn.execute(
            sa.select(viewer, target).where(at >= cutoff, action.in_(liked))
        ):
            likes[str(user)].add(str(item))
        before = sa.select(viewer, target).where(
            at < cutoff, action.in_(known), viewer.in_(heldout_users)
        )
        for user, item in conn.execution_options(stream_results=True).execute(before):
            seen[str(user)].add(str(item))
            pre_activity[str(user)] += 1
    if not likes:
        raise TowerkitError(
            f"store: no like at or after {start.isoformat()} in table {table.name!r}; "
            "nothing to replay (is the start after the last interaction?)"
        )
    return HeldOut(start, dict(likes), dict(seen), dict(pre_activity))

"""The two-tower's view of an exported interaction store, and its time-based split.

``InteractionData`` holds the frames ``towerkit.rec.store.read_export`` returns (interactions:
viewer_id, target_id, action like|pass|match, created_at UTC; users: user_id + features; items:
item_id + features; the kind of every feature column). ``time_split`` cuts the interactions at
two global instants: train is strictly before ``val_start``, validation from ``val_start`` to
before ``test_start``, test from ``test_start`` on; the test split is only read once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from towerkit.core.errors import ConfigError, TowerkitError

USER_ID = "user_id"
ITEM_ID = "item_id"
INTERACTION_COLUMNS = ("viewer_id", "target_id", "action", "created_at")
POSITIVE_ACTIONS = ("like", "match")
ACTIONS = ("like", "pass", "match")


@dataclass
class InteractionData:
    interactions: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    user_kinds: dict[str, str]
    item_kinds: dict[str, str]
    description: str = ""
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.interactions = _checked_interactions(self.interactions)
        self.users = _checked_entities(self.users, USER_ID, "users")
        self.items = _checked_entities(self.items, ITEM_ID, "items")


def _checked_interactions(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in INTERACTION_COLUMNS if c not in frame.columns]
    if missing:
        raise TowerkitError(
            f"interactions: missing column '{missing[0]}' (expected {', '.join(INTERACTION_COLUMNS)})"
        )
    bad = frame.filter(~pl.col("action").is_in(list(ACTIONS)))
    if bad.height:
        raise TowerkitError(
            f"interactions: action {bad['action'][0]!r} in row {_first_row(frame, bad)}; "
            f"expected one of {', '.join(ACTIONS)}"
        )
    created = frame["created_at"]
    if not isinstance(created.dtype, pl.Datetime):
        raise TowerkitError(f"interactions: created_at is {created.dtype}, expected a datetime")
    if created.null_count():
        raise TowerkitError("interactions: created_at has missing values")
    zone = created.dtype.time_zone
    at = pl.col("created_at")
    at = at.dt.replace_time_zone("UTC") if zone is None else at.dt.convert_time_zone("UTC")
    return frame.with_columns(
        pl.col("viewer_id").cast(pl.String),
        pl.col("target_id").cast(pl.String),
        at.dt.cast_time_unit("us"),
    )


def _first_row(frame: pl.DataFrame, bad: pl.DataFrame) -> int:
    if "interaction_id" in frame.columns:
        return int(bad["interaction_id"][0])
    return int(frame.with_row_index().filter(~pl.col("action").is_in(list(ACTIONS)))["index"][0])


def _checked_entities(frame: pl.DataFrame, id_column: str, name: str) -> pl.DataFrame:
    if id_column not in frame.columns:
        raise TowerkitError(f"{name}: missing id column '{id_column}'")
    frame = frame.with_columns(pl.col(id_column).cast(pl.String))
    duplicated = frame.filter(pl.col(id_column).is_duplicated())
    if duplicated.height:
        raise TowerkitError(f"{name}: id {duplicated[id_column][0]!r} appears more than once")
    return frame


def with_interaction_entities(data: InteractionData) -> InteractionData:
    """Users / items that interact but are missing from their table get a row of nulls."""
    users = _append_missing(data.users, data.interactions["viewer_id"], USER_ID)
    items = _append_missing(data.items, data.interactions["target_id"], ITEM_ID)
    return InteractionData(
        data.interactions,
        users,
        items,
        data.user_kinds,
        data.item_kinds,
        data.description,
        data.files,
    )


def _append_missing(entities: pl.DataFrame, ids: pl.Series, id_column: str) -> pl.DataFrame:
    known = set(entities[id_column].to_list())
    extra = sorted(set(ids.to_list()) - known)
    if not extra:
        return entities
    return pl.concat([entities, pl.DataFrame({id_column: extra})], how="diagonal_relaxed")


# --- time split ---------------------------------------------------------------------------------


@dataclass
class SplitConfig:
    """Fractions of interactions (by time) for validation and test, or explicit ISO instants."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    val_start: str | None = None  # e.g. "1998-03-01T00:00:00Z"; overrides val_fraction
    test_start: str | None = None
    # interactions at or after it are left out: a backtest as of an earlier day (the validation
    # of a refit, say) that must not read what came later
    test_end: str | None = None

    def __post_init__(self) -> None:
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0 < value < 1:
                raise ConfigError(f"split: {key}: expected 0 < value < 1, got {value}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("split: val_fraction + test_fraction: expected < 1")


@dataclass
class TimeSplit:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame
    val_start: datetime
    test_start: datetime

    def describe(self) -> str:
        return (
            f"train {self.train.height:,} before {self.val_start:%Y-%m-%d %H:%M}, "
            f"val {self.val.height:,}, test {self.test.height:,} from {self.test_start:%Y-%m-%d %H:%M} UTC"
        )


def _instant(text: str, key: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"split: {key}: expected an ISO 8601 instant, got {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_split(interactions: pl.DataFrame, config: SplitConfig) -> TimeSplit:
    """Global cutoffs by created_at; interactions at a cutoff belong to the later split."""
    if config.test_end:  # fractions count what is kept
        interactions = interactions.filter(
            pl.col("created_at") < _instant(config.test_end, "test_end")
        )
    if interactions.height < 3:
        raise TowerkitError(f"interactions: {interactions.height} rows, too few to split by time")
    times = interactions["created_at"].sort()
    n = len(times)

    def at_fraction(fraction: float) -> datetime:
        value: Any = times[min(n - 1, int(np.floor(n * fraction)))]
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    val_start = (
        _instant(config.val_start, "val_start")
        if config.val_start
        else at_fraction(1 - config.val_fraction - config.test_fraction)
    )
    test_start = (
        _instant(config.test_start, "test_start")
        if config.test_start
        else at_fraction(1 - config.test_fraction)
    )
    if test_start < val_start:
        raise ConfigError(f"split: test_start {test_start} is before val_start {val_start}")
    at = pl.col("created_at")
    if config.test_end and _instant(config.test_end, "test_end") <= test_start:
        raise ConfigError(f"split: test_end {config.test_end} is not after test_start {test_start}")
    split = TimeSplit(
        train=interactions.filter(at < val_start),
        val=interactions.filter((at >= val_start) & (at < test_start)),
        test=interactions.filter(at >= test_start),
        val_start=val_start,
        test_start=test_start,
    )
    for name in ("train", "val", "test"):
        if getattr(split, name).height == 0:
            raise TowerkitError(f"split: the {name} split is empty ({split.describe()})")
    return split


def labels_of(frame: pl.DataFrame) -> np.ndarray:
    """1 for like / match, 0 for pass."""
    return frame["action"].is_in(list(POSITIVE_ACTIONS)).to_numpy().astype(np.float32)


def kinds_from(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items()}

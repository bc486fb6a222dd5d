"""The time split: train strictly in the past, no future leakage, cutoffs by fraction or instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.rec.twotower.data import InteractionData, SplitConfig, time_split
from towerkit.rec.twotower.prepare import FeatureConfig, prepare


def _interactions(n: int = 100) -> pl.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "interaction_id": list(range(n)),
            "viewer_id": [str(i % 7) for i in range(n)],
            "target_id": [str(i % 11) for i in range(n)],
            "action": ["like" if i % 3 else "pass" for i in range(n)],
            # shuffled order, two rows per instant
            "created_at": [start + timedelta(hours=(i * 37) % n // 2) for i in range(n)],
        }
    )


def test_no_train_interaction_is_at_or_after_the_cutoff(synthetic_data: InteractionData) -> None:
    split = time_split(
        synthetic_data.interactions, SplitConfig(val_fraction=0.15, test_fraction=0.15)
    )
    assert split.train["created_at"].max() < split.val_start  # type: ignore[operator]
    assert split.val["created_at"].min() >= split.val_start  # type: ignore[operator]
    assert split.val["created_at"].max() < split.test_start  # type: ignore[operator]
    assert split.test["created_at"].min() >= split.test_start  # type: ignore[operator]
    total = split.train.height + split.val.height + split.test.height
    assert total == synthetic_data.interactions.height
    assert split.test.height == pytest.approx(0.15 * total, abs=3)


def test_ties_at_a_cutoff_go_to_the_later_split() -> None:
    frame = _interactions()
    split = time_split(frame, SplitConfig(val_fraction=0.2, test_fraction=0.2))
    at_cutoff = frame.filter(pl.col("created_at") == split.test_start)
    assert at_cutoff.height == 2
    assert set(at_cutoff["interaction_id"]) <= set(split.test["interaction_id"])


def test_explicit_instants_override_fractions() -> None:
    split = time_split(
        _interactions(),
        SplitConfig(val_start="2024-01-02T00:00:00Z", test_start="2024-01-02T12:00:00+00:00"),
    )
    assert split.val_start == datetime(2024, 1, 2, tzinfo=UTC)
    assert split.train.height == 48 and split.val.height == 24 and split.test.height == 28


def test_bad_split_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        SplitConfig(val_fraction=0.0)
    with pytest.raises(ConfigError, match="expected < 1"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="ISO 8601"):
        time_split(_interactions(), SplitConfig(val_start="yesterday"))
    with pytest.raises(TowerkitError, match="train split is empty"):
        time_split(_interactions(), SplitConfig(val_start="2000-01-01", test_start="2024-01-02"))


def test_features_are_fitted_on_train_only(synthetic_data: InteractionData) -> None:
    prepared = prepare(
        synthetic_data, SplitConfig(), FeatureConfig(item_features=["year", "genres"]), None
    )
    train_users = set(prepared.split.train["viewer_id"])
    assert set(prepared.artifacts.query.ids.values) == train_users
    years = synthetic_data.items.filter(
        pl.col("item_id").is_in(list(prepared.split.train["target_id"]))
    )
    assert prepared.artifacts.candidate.numeric["year"].mean == pytest.approx(
        float(years["year"].mean())
    )  # type: ignore[arg-type]
    # the seen items are the training interactions, nothing later
    art = prepared.artifacts
    seen = {
        (art.query_keys[u], art.candidate_keys[i])
        for u in range(len(art.query_keys))
        for i in art.seen_rows(u)
    }
    assert seen == set(
        zip(prepared.split.train["viewer_id"], prepared.split.train["target_id"], strict=True)
    )


def test_unknown_action_is_named() -> None:
    frame = _interactions().with_columns(
        pl.when(pl.col("interaction_id") == 5)
        .then(pl.lit("superlike"))
        .otherwise(pl.col("action"))
        .alias("action")
    )
    with pytest.raises(TowerkitError, match="action 'superlike' in row 5"):
        InteractionData(
            frame, pl.DataFrame({"user_id": ["1"]}), pl.DataFrame({"item_id": ["1"]}), {}, {}
        )

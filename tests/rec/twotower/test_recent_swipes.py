"""The recent window (features.recent_swipes): the like rate of a user's last N swipes as of the
scored moment, hand-computed, never looking ahead, and carried through a saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from towerkit.core.errors import ConfigError
from towerkit.rec.twotower.data import InteractionData, SplitConfig
from towerkit.rec.twotower.history import (
    NEVER,
    RECENT_SMOOTHING,
    from_item_lists,
    history_as_of,
)
from towerkit.rec.twotower.model import TowerSpec, TwoTowerConfig
from towerkit.rec.twotower.prepare import FeatureConfig, prepare

# user 0: t=1 like 10, t=2 pass 11, t=3 like 12, t=4 like 13, t=5 pass 14; user 1: t=2 like 20
USERS = np.array([0, 1, 0, 0, 0, 0])
ITEMS = np.array([12, 20, 10, 11, 13, 14])
LABELS = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
TIMES = np.array([3, 2, 1, 2, 4, 5])


def smoothed(likes: float, swipes: float, prior: float = 0.5) -> float:
    return (likes + RECENT_SMOOTHING * prior) / (swipes + RECENT_SMOOTHING)


def test_recent_rate_counts_the_last_swipes_strictly_before_the_moment() -> None:
    queries = ([0, 0, 0, 0, 0, 1], [1, 3, 5, NEVER, 4, 2])
    got = history_as_of(
        USERS, ITEMS, LABELS, TIMES, np.array(queries[0]), np.array(queries[1]),
        2, 0.5, recent=3,
    )  # fmt: skip
    assert got.stats.shape == (6, 3)
    expected = [
        smoothed(0, 0),  # nothing before t=1: the prior
        smoothed(1, 2),  # t=3: like 10, pass 11
        smoothed(2, 3),  # t=5: pass 11, like 12, like 13 (like 10 is out of the window)
        smoothed(2, 3),  # everything: like 12, like 13, pass 14
        smoothed(2, 3),  # t=4: like 10, pass 11, like 12
        smoothed(0, 0),  # user 1's own swipe at t=2 is not before t=2
    ]
    np.testing.assert_allclose(got.stats[:, 2].numpy(), expected, rtol=1e-6)
    plain = history_as_of(
        USERS, ITEMS, LABELS, TIMES, np.array(queries[0]), np.array(queries[1]), 2, 0.5
    )
    assert plain.stats.shape == (6, 2)
    np.testing.assert_array_equal(plain.stats.numpy(), got.stats[:, :2].numpy())


def test_item_lists_fill_the_recent_window() -> None:
    short = from_item_lists([[10, 12]], [[11]], history_len=2, prior=0.5, recent=5)
    assert float(short.stats[0, 2]) == pytest.approx(smoothed(2, 3))  # the whole history
    long = from_item_lists([[1, 2, 3]], [[4]], history_len=2, prior=0.5, recent=2)
    assert float(long.stats[0, 2]) == pytest.approx(smoothed(1.5, 2))  # the history's rate


def test_recent_swipes_is_checked() -> None:
    with pytest.raises(ConfigError, match="recent_swipes is part of the history"):
        FeatureConfig(recent_swipes=5)
    with pytest.raises(ConfigError, match="recent_swipes: expected >= 0"):
        FeatureConfig(history_len=5, recent_swipes=-1)
    specs = {"query": TowerSpec(n_ids=3), "candidate": TowerSpec(n_ids=5)}
    with_recent = TwoTowerConfig(**specs, history_len=2, recent_swipes=4)
    assert with_recent.history_width == TwoTowerConfig(**specs, history_len=2).history_width + 1


def test_prepared_recent_rates_never_look_ahead(synthetic_data: InteractionData) -> None:
    features = FeatureConfig(item_features=["year"], history_len=5, recent_swipes=4)
    prepared = prepare(synthetic_data, SplitConfig(0.2, 0.2), features, None)
    prior = prepared.like_prior
    train, test = prepared.train, prepared.test
    histories = prepared.histories("test")
    assert histories is not None and prepared.train_history is not None
    log = [
        (int(u), int(t), float(y))
        for part in (train, prepared.val, test)
        for u, t, y in zip(part.user_rows, part.times, part.labels, strict=True)  # type: ignore[arg-type]
    ]
    checked = 0
    for rows, stats in ((train, prepared.train_history.stats), (test, histories[1].stats)):
        assert rows.times is not None
        for row in range(0, len(rows), 5):
            user, moment = int(rows.user_rows[row]), int(rows.times[row])
            before = sorted((t, y) for u, t, y in log if u == user and t < moment)
            window = before[-4:]
            if len(before) > 4 and before[-5][0] == window[0][0]:
                continue  # a tie in time at the window's edge: either swipe may be in it
            want = (sum(y for _, y in window) + RECENT_SMOOTHING * prior) / (
                len(window) + RECENT_SMOOTHING
            )
            assert float(stats[row, 2]) == pytest.approx(want, rel=1e-5)
            checked += 1
    assert checked > 50


def test_a_recent_window_model_saves_and_reloads(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    from towerkit.rec.twotower.api import load_bundle
    from towerkit.rec.twotower.recipe import train

    overrides = [*fast, "features.recent_swipes=3"]
    outcome = train(None, overrides, data=synthetic_data, promote="never", runs_root=tmp_path)
    assert outcome.model.config.recent_swipes == 3
    bundle = load_bundle(str(outcome.run_dir))
    assert bundle.model.config.recent_swipes == 3  # type: ignore[union-attr]
    saved = bundle.features.query_history
    assert saved is not None and saved.stats.shape[1] == 3
    from towerkit.rec.twotower.evaluation import embed_tables

    model = outcome.model
    assert model.artifacts is not None
    queries, _ = embed_tables(model, model.artifacts)
    users = bundle.features.query_keys[:5]
    np.testing.assert_allclose(
        bundle.query_embeddings(users), queries.output.embedding[:5].numpy(), atol=1e-6
    )
    items = bundle.candidate_ids()
    features = {"age": 30, "gender": "F", "occupation": "job1"}
    picky = bundle.query_embedding_from_features(features, liked=items[:1], passed=items[1:6])
    keen = bundle.query_embedding_from_features(features, liked=items[:5], passed=items[5:6])
    assert picky.shape == keen.shape and not np.allclose(picky, keen)

"""Swipe histories as of a moment: hand-computed windows, no look-ahead in training or held-out
scoring, and a history model's save / load / featurise round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from towerkit.rec.twotower.data import InteractionData, SplitConfig
from towerkit.rec.twotower.history import (
    NEVER,
    PAD,
    SMOOTHING,
    from_item_lists,
    history_as_of,
)
from towerkit.rec.twotower.model import TwoTowerModel
from towerkit.rec.twotower.prepare import FeatureConfig, PreparedData, prepare

# user 0: t=1 like 10, t=2 pass 11, t=3 like 12, t=3 like 13 (same instant), t=5 pass 14
# user 1: t=2 like 20
LOG = {
    "users": np.array([0, 1, 0, 0, 0, 0]),
    "items": np.array([12, 20, 10, 11, 13, 14]),
    "labels": np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]),
    "times": np.array([3, 2, 1, 2, 3, 5]),
}


def as_of(users: list[int], times: list[int], history_len: int = 2, prior: float = 0.5):
    return history_as_of(
        LOG["users"], LOG["items"], LOG["labels"], LOG["times"],
        np.array(users), np.array(times), history_len, prior,
    )  # fmt: skip


def test_history_holds_what_came_strictly_before_most_recent_last() -> None:
    got = as_of([0, 0, 0, 0, 1, 2], [1, 3, 4, NEVER, 2, NEVER])
    assert got.liked.tolist() == [
        [PAD, PAD],  # nothing before t=1
        [PAD, 10],  # t=3: the likes at t=3 itself are not history yet
        [12, 13] if got.liked[2, 0] == 12 else [13, 12],  # both t=3 likes, the last two
        [12, 13] if got.liked[3, 0] == 12 else [13, 12],
        [PAD, PAD],  # user 1 at t=2: their own like at t=2 is not before it
        [PAD, PAD],  # a user with no log
    ]
    assert got.passed.tolist() == [
        [PAD, PAD],
        [PAD, 11],
        [PAD, 11],
        [11, 14],
        [PAD, PAD],
        [PAD, PAD],
    ]
    counts = [0, 2, 4, 5, 0, 0]
    likes = [0, 1, 3, 3, 0, 0]
    np.testing.assert_allclose(got.stats[:, 0].numpy(), np.log1p(counts) / 5.0, rtol=1e-6)
    rates = [(lk + SMOOTHING * 0.5) / (n + SMOOTHING) for lk, n in zip(likes, counts, strict=True)]
    np.testing.assert_allclose(got.stats[:, 1].numpy(), rates, rtol=1e-6)


def test_history_len_keeps_the_latest_and_item_lists_agree() -> None:
    whole = as_of([0], [NEVER], history_len=1)
    assert whole.liked.tolist()[0][0] in (12, 13) and whole.passed.tolist() == [[14]]
    listed = from_item_lists([[10, 12, 13]], [[11, 14]], history_len=4, prior=0.5)
    full = as_of([0], [NEVER], history_len=4)
    assert listed.passed.tolist() == full.passed.tolist() == [[PAD, PAD, 11, 14]]
    assert sorted(listed.liked.tolist()[0]) == sorted(full.liked.tolist()[0])
    torch.testing.assert_close(listed.stats, full.stats)


def _prepared(data: InteractionData, history_len: int = 4) -> PreparedData:
    features = FeatureConfig(item_features=["year", "genres"], history_len=history_len)
    return prepare(data, SplitConfig(0.2, 0.2), features, None)


def _brute_force(
    prepared: PreparedData, log: list[tuple[int, int, float, int]], user: int, time: int
) -> tuple[list[int], list[int]]:
    """(liked id indices, passed id indices) of the user strictly before ``time``, by time."""
    ids = prepared.artifacts.candidate_tables.ids
    before = sorted((t, i, label) for u, i, label, t in log if u == user and t < time)
    liked = [int(ids[i]) for _, i, label in before if label > 0]
    passed = [int(ids[i]) for _, i, label in before if label == 0]
    return liked, passed


def _log(*parts) -> list[tuple[int, int, float, int]]:
    out = []
    for part in parts:
        out += list(zip(part.user_rows, part.item_rows, part.labels, part.times, strict=True))
    return out


def _check(history, row: int, liked: list[int], passed: list[int], n: int) -> None:
    got_liked = [v for v in history.liked[row].tolist() if v != PAD]
    got_passed = [v for v in history.passed[row].tolist() if v != PAD]
    # same multiset of the latest n (ties in time may order either way)
    assert sorted(got_liked) == sorted(liked[-n:]) if len(liked) <= n else len(got_liked) == n
    assert sorted(got_passed) == sorted(passed[-n:]) if len(passed) <= n else len(got_passed) == n
    assert float(history.stats[row, 0]) == pytest.approx(np.log1p(len(liked) + len(passed)) / 5)


def test_training_and_held_out_histories_never_look_ahead(synthetic_data: InteractionData) -> None:
    prepared = _prepared(synthetic_data, history_len=50)
    train, val, test = prepared.train, prepared.val, prepared.test
    assert prepared.train_history is not None and len(prepared.train_history) == len(train)
    for row in range(0, len(train), 7):
        liked, passed = _brute_force(
            prepared, _log(train), int(train.user_rows[row]), int(train.times[row])
        )
        _check(prepared.train_history, row, liked, passed, 50)
    histories = prepared.histories("test")
    assert histories is not None
    ranking, events = histories
    assert len(ranking) == prepared.n_users and len(events) == len(test)
    log = _log(train, val, test)
    for row in range(0, len(test), 3):
        user, time = int(test.user_rows[row]), int(test.times[row])
        liked, passed = _brute_force(prepared, log, user, time)
        _check(events, row, liked, passed, 50)
        # ranking for the test split sees train + val only
        liked, passed = _brute_force(prepared, _log(train, val), user, NEVER)
        _check(ranking, user, liked, passed, 50)
    # the saved history is the training split's end
    assert prepared.artifacts.query_history is not None
    for user in range(0, prepared.n_users, 5):
        liked, passed = _brute_force(prepared, _log(train), user, NEVER)
        _check(prepared.artifacts.query_history, user, liked, passed, 50)


def test_history_model_trains_saves_and_reloads(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    from towerkit.rec.twotower.api import load_bundle
    from towerkit.rec.twotower.recipe import train

    outcome = train(None, fast, data=synthetic_data, promote="never", runs_root=tmp_path)
    model = outcome.model
    assert model.config.history_len == 10 and model.config.like_head
    assert model.query_tower.id_embedding is None  # the quick recipe leaves user ids out
    assert 0.0 <= outcome.table["two_tower"]["auc"] <= 1.0
    bundle = load_bundle(str(outcome.run_dir))
    assert isinstance(bundle.model, TwoTowerModel)
    loaded = bundle.features.query_history
    assert loaded is not None and model.artifacts is not None
    torch.testing.assert_close(loaded.liked, model.artifacts.query_history.liked)  # type: ignore[union-attr]
    users = bundle.features.query_keys[:5]
    from towerkit.rec.twotower.evaluation import embed_tables

    queries, _ = embed_tables(model, model.artifacts)
    np.testing.assert_allclose(
        bundle.query_embeddings(users), queries.output.embedding[:5].numpy(), atol=1e-6
    )
    assert bundle.query_embeddings([]).shape == (0, bundle.dim)  # no users, no rows
    # a described user: their swipes move the query; unknown items are refused
    features = {"age": 30, "gender": "F", "occupation": "job1"}
    items = bundle.candidate_ids()
    plain = bundle.query_embedding_from_features(features)
    swiped = bundle.query_embedding_from_features(features, liked=items[:3], passed=items[3:5])
    assert not np.allclose(plain, swiped)
    with pytest.raises(Exception, match="liked: item 'nope' is not in the model's catalogue"):
        bundle.query_embedding_from_features(features, liked=["nope"])


def test_a_history_model_needs_its_history() -> None:
    from towerkit.rec.twotower.model import TowerSpec, TwoTowerConfig

    model = TwoTowerModel(
        TwoTowerConfig(query=TowerSpec(n_ids=3), candidate=TowerSpec(n_ids=5), history_len=2)
    )
    model.eval()  # no dropout: equal inputs give equal outputs
    ids = torch.tensor([0, 1])
    empty = (ids.new_zeros((2, 0)), ids.new_zeros((2, 0, 1)))
    inputs = (ids, *empty, torch.zeros((2, 0)), torch.zeros((2, 0, 1)))
    with pytest.raises(ValueError, match="reads the user's history"):
        model.encode_query(inputs)
    history = from_item_lists([[1], []], [[2, 3], []], history_len=2, prior=0.5)
    out = model.encode_query(inputs, history.inputs())
    assert out.embedding.shape == (2, 64)
    # padding contributes nothing: a history of only padding equals an empty one
    padded = from_item_lists([[], []], [[], []], history_len=2, prior=0.5)
    again = model.encode_query(inputs, padded.inputs())
    assert not torch.allclose(out.embedding[0], again.embedding[0])
    torch.testing.assert_close(out.embedding[1], again.embedding[1])


def test_history_into_like_leaves_the_retrieval_embedding_alone() -> None:
    from towerkit.core.errors import ConfigError
    from towerkit.rec.twotower.model import TowerSpec, TwoTowerConfig

    specs = {"query": TowerSpec(n_ids=3), "candidate": TowerSpec(n_ids=5)}
    with pytest.raises(ConfigError, match="history_into=like needs like_head"):
        TwoTowerConfig(**specs, history_len=2, history_into="like")
    with pytest.raises(ConfigError, match="history_into: expected both or like"):
        TwoTowerConfig(**specs, history_into="retrieval")
    model = TwoTowerModel(
        TwoTowerConfig(**specs, history_len=2, history_into="like", like_head=True, user_bias=True)
    ).eval()
    ids = torch.tensor([0, 0])
    inputs = (ids, ids.new_zeros((2, 0)), ids.new_zeros((2, 0, 1)), torch.zeros((2, 0)))
    inputs = (*inputs, torch.zeros((2, 0, 1)))
    history = from_item_lists([[1, 2], []], [[], [3]], history_len=2, prior=0.5)
    out = model.encode_query(inputs, history.inputs())
    # same user, different swipes: one retrieval embedding, two like embeddings and biases
    torch.testing.assert_close(out.embedding[0], out.embedding[1])
    assert not torch.allclose(out.like[0], out.like[1])
    assert float(out.bias[0]) != float(out.bias[1])

"""Featurisation: vocabularies with hashed OOV rows, train-only statistics, round trips."""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch

from towerkit.core.errors import TowerkitError
from towerkit.rec.twotower.features import MISSING, SideFeaturizer, Vocabulary, stable_bucket

KINDS = {"gender": "categorical", "age": "numeric", "tags": "multi_categorical"}


def _users() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "gender": ["F", "M", "F", None],
            "age": [20.0, 30.0, 40.0, None],
            "tags": [["x", "y"], ["y"], [], None],
        },
        schema={
            "user_id": pl.String,
            "gender": pl.String,
            "age": pl.Float64,
            "tags": pl.List(pl.String),
        },
    )


def _fitted() -> SideFeaturizer:
    # only a and b interact in training: c and d are unknown ids
    return SideFeaturizer.fit(_users(), "user_id", KINDS, ["a", "b"], oov_buckets=4)


def test_vocabulary_missing_known_and_hashed_oov() -> None:
    vocab = Vocabulary.fit(["b", "a", "a", None], oov_buckets=3)
    assert vocab.values == ["a", "b"] and vocab.size == 1 + 2 + 3
    assert vocab.index(None) == MISSING
    assert (vocab.index("a"), vocab.index("b")) == (1, 2)
    assert vocab.index("zzz") == 3 + stable_bucket("zzz", 3)
    assert vocab.index("zzz") == vocab.index("zzz")  # stable
    assert 3 <= vocab.index("another") < vocab.size
    assert Vocabulary.fit(["a", "a", "b"], 2, min_count=2).values == ["a"]


def test_stable_bucket_is_crc32_not_salted_hash() -> None:
    # a fixed value: the same in every process and every Python version
    assert stable_bucket("user-42", 1000) == 2097592435 % 1000


def test_fit_uses_the_training_entities_only() -> None:
    side = _fitted()
    assert side.ids.values == ["a", "b"]
    assert side.categorical["gender"].values == ["F", "M"]
    assert side.numeric["age"].mean == pytest.approx(25.0)  # of a and b, not of c
    assert side.numeric["age"].std == pytest.approx(7.0710678)
    assert side.multi_categorical["tags"].values == ["x", "y"]
    assert side.multi_max_len == 2


def test_transform_shapes_values_and_oov() -> None:
    side = _fitted()
    t = side.transform(_users())
    assert t.ids.tolist() == [1, 2, side.ids.oov_index("c"), side.ids.oov_index("d")]
    assert t.oov_ids.tolist() == [side.ids.oov_index(k) for k in "abcd"]
    assert t.cat.shape == (4, 1) and t.cat[:, 0].tolist() == [1, 2, 1, MISSING]
    assert t.multi.shape == (4, 1, 2)
    assert t.multi[0, 0].tolist() == [1, 2] and t.multi[1, 0].tolist() == [2, 0]
    assert t.multi[3, 0].tolist() == [0, 0]
    expected_age = [(20 - 25) / 7.0710678, (30 - 25) / 7.0710678, (40 - 25) / 7.0710678, 0.0]
    assert t.num[:, 0].tolist() == pytest.approx(expected_age, rel=1e-5)
    assert t.text.shape == (4, 0, 0)


def test_state_round_trip_featurises_identically() -> None:
    side = _fitted()
    restored = SideFeaturizer.from_dict(json.loads(json.dumps(side.to_dict())))
    before, after = side.transform(_users()), restored.transform(_users())
    for name in before.FIELDS:
        assert torch.equal(getattr(before, name), getattr(after, name)), name


def test_transform_one_describes_a_new_user() -> None:
    side = _fitted()
    one = side.transform_one({"gender": "M", "age": 35, "tags": ["x", "new-tag"]})
    assert one.cat[0, 0] == 2
    assert one.multi[0, 0, 0] == 1 and one.multi[0, 0, 1] == side.multi_categorical[
        "tags"
    ].oov_index("new-tag")
    assert float(one.num[0, 0]) == pytest.approx((35 - 25) / 7.0710678, rel=1e-5)
    with pytest.raises(TowerkitError, match="unknown key 'height'"):
        side.transform_one({"height": 180})


def test_bad_kind_and_missing_column_are_named() -> None:
    with pytest.raises(TowerkitError, match="feature 'gender': kind 'colour'"):
        SideFeaturizer.fit(_users(), "user_id", {"gender": "colour"}, ["a"])
    with pytest.raises(TowerkitError, match="feature 'shoe'"):
        SideFeaturizer.fit(_users(), "user_id", {"shoe": "numeric"}, ["a"])
    with pytest.raises(TowerkitError, match="text features"):
        SideFeaturizer.fit(
            _users().with_columns(bio=pl.lit("hi")), "user_id", {"bio": "text"}, ["a"]
        )

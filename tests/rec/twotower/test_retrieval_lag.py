"""features.retrieval_lag_days: retrieval trains on each user's history as it stood a lag before
the event, the like path on the history as of the event; checked against the log by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.rec.twotower.data import InteractionData, SplitConfig
from towerkit.rec.twotower.history import from_item_lists
from towerkit.rec.twotower.model import TowerSpec, TwoTowerConfig, TwoTowerModel
from towerkit.rec.twotower.prepare import MICROSECONDS_A_DAY, FeatureConfig, prepare


def test_the_lag_is_checked() -> None:
    with pytest.raises(ConfigError, match="retrieval_lag_days lags the history"):
        FeatureConfig(retrieval_lag_days=3)
    with pytest.raises(ConfigError, match="retrieval_lag_days: expected >= 0"):
        FeatureConfig(history_len=5, retrieval_lag_days=-1)


def test_lagged_histories_hold_what_came_a_lag_before(synthetic_data: InteractionData) -> None:
    lag_days = 2.0
    features = FeatureConfig(item_features=["year"], history_len=50, retrieval_lag_days=lag_days)
    prepared = prepare(synthetic_data, SplitConfig(0.2, 0.2), features, None)
    train, fresh, lagged = prepared.train, prepared.train_history, prepared.retrieval_history
    assert fresh is not None and lagged is not None and train.times is not None
    assert len(lagged) == len(train)
    lag = lag_days * MICROSECONDS_A_DAY
    differs = 0
    for row in range(0, len(train), 3):
        user, moment = int(train.user_rows[row]), int(train.times[row])
        before = (train.user_rows == user) & (train.times < moment - lag)
        assert float(lagged.stats[row, 0]) == pytest.approx(float(torch.log1p(torch.tensor(
            float(before.sum())))) / 5, rel=1e-5)  # fmt: skip
        differs += int(float(lagged.stats[row, 0]) < float(fresh.stats[row, 0]))
    assert differs > 0  # the lag leaves out swipes the fresh history has
    unlagged = prepare(
        synthetic_data, SplitConfig(0.2, 0.2), FeatureConfig(["age"], ["year"], history_len=5), None
    )
    assert unlagged.retrieval_history is None


def test_the_retrieval_embedding_reads_the_lagged_history_the_like_path_the_fresh() -> None:
    specs = {"query": TowerSpec(n_ids=3), "candidate": TowerSpec(n_ids=5)}
    config = TwoTowerConfig(**specs, history_len=2, like_towers=True, history_into="both")
    model = TwoTowerModel(config).eval()
    ids = torch.tensor([0, 0])
    inputs = (ids, ids.new_zeros((2, 0)), ids.new_zeros((2, 0, 1)), torch.zeros((2, 0)))
    inputs = (*inputs, torch.zeros((2, 0, 1)))
    fresh = from_item_lists([[1, 2], [1, 2]], [[3], [3]], history_len=2, prior=0.5).inputs()
    old = from_item_lists([[1], []], [[], [4]], history_len=2, prior=0.5).inputs()
    both = model.encode_query(inputs, fresh, retrieval_history=old)
    plain_fresh, plain_old = model.encode_query(inputs, fresh), model.encode_query(inputs, old)
    torch.testing.assert_close(both.embedding, plain_old.embedding)
    torch.testing.assert_close(both.like, plain_fresh.like)
    torch.testing.assert_close(both.bias, plain_fresh.bias)


def test_a_lag_needs_a_retrieval_that_reads_the_history(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    from towerkit.rec.twotower.api import load_bundle
    from towerkit.rec.twotower.recipe import train

    overrides = [*fast, "features.retrieval_lag_days=1", "model.like_towers=true"]
    with pytest.raises(TowerkitError, match=r"set model\.history_into=both"):
        train(None, [*overrides, "model.history_into=like"], data=synthetic_data,
              promote="never", runs_root=tmp_path)  # fmt: skip
    outcome = train(None, [*overrides, "model.history_into=both"], data=synthetic_data,
                    promote="never", runs_root=tmp_path)  # fmt: skip
    assert 0.0 <= outcome.table["two_tower"]["auc"] <= 1.0
    assert outcome.model.retrieval_history
    # the run keeps the lag and the model that trained with it
    saved = yaml.safe_load((outcome.run_dir / "config.yaml").read_text())
    assert saved["features"]["retrieval_lag_days"] == 1.0
    assert saved["model"]["history_into"] == "both"
    written = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert {k: written[k] for k in outcome.metrics} == outcome.metrics
    assert written["test_two_tower_auc"] == outcome.table["two_tower"]["auc"]
    reloaded = load_bundle(str(outcome.run_dir)).model
    assert reloaded.retrieval_history
    weights, again = outcome.model.state_dict(), reloaded.state_dict()
    assert list(again) == list(weights)
    assert all(torch.equal(again[name], weights[name]) for name in weights)

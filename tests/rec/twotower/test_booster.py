"""The like booster: exact cosines, out-of-sample fitting, the blend, and its files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from towerkit.core.errors import ConfigError, ModelLoadError
from towerkit.core.metrics import roc_auc
from towerkit.rec.twotower import booster as booster_module
from towerkit.rec.twotower.booster import (
    SMALL_PREDICT,
    BoosterConfig,
    FitLog,
    LikeBooster,
    SwipeStats,
    attach_booster,
    booster_features,
)
from towerkit.rec.twotower.data import InteractionData
from towerkit.rec.twotower.evaluation import model_scorer
from towerkit.rec.twotower.model import TwoTowerModel
from towerkit.rec.twotower.recipe import build_model, build_prepared, evaluate, load_recipe, train

# 3 users x 4 items: user 0 likes 0, 1 and passes 2; user 1 likes 0 and passes 1, 3; user 2 likes 2
USERS = np.array([0, 0, 0, 1, 1, 1, 2])
IDS = np.array([0, 1, 2, 0, 1, 3, 2])
LABELS = np.array([1, 1, 0, 1, 0, 0, 1])


def dense_cosines(values: np.ndarray) -> np.ndarray:
    matrix = np.zeros((4, 3))
    matrix[IDS, USERS] = values
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit @ unit.T


@pytest.mark.parametrize("dense_ids", [0, 4], ids=["sparse products", "dense tables"])
def test_cosines_are_exact_and_padding_is_zero(
    monkeypatch: pytest.MonkeyPatch, dense_ids: int
) -> None:
    monkeypatch.setattr(booster_module, "_CHUNK_CELLS", 4)  # one candidate per chunk
    monkeypatch.setattr(booster_module, "DENSE_IDS", dense_ids)
    stats = SwipeStats.of_log(USERS, IDS, LABELS, n_users=3, n_ids=4, prior=0.5)
    candidates = np.array([0, 3, 2])
    history = np.array([[1, 2, -1], [0, 1, 2], [-1, -1, -1]])
    (signed,), (swiped,) = stats.cosines(candidates, history)
    for got, values in ((signed, np.where(LABELS > 0, 1.0, -1.0)), (swiped, np.ones(7))):
        full = dense_cosines(values)
        expected = np.where(history >= 0, full[candidates[:, None], np.maximum(history, 0)], 0)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert signed[0, 0] == pytest.approx(0.0)  # item 0 (+1, +1) vs item 1 (+1, -1)
    np.testing.assert_allclose(stats.count, np.log1p([2, 2, 2, 1]))
    np.testing.assert_allclose(stats.rate[3], (0 + 5 * 0.5) / (1 + 5))


def test_dense_tables_give_the_sparse_products_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    users, ids = rng.integers(0, 50, 400), rng.integers(0, 30, 400)
    labels = rng.integers(0, 2, 400)
    candidates, history = rng.integers(0, 30, 64), rng.integers(-1, 30, (64, 12))
    got = []
    for dense_ids in (0, 30):
        monkeypatch.setattr(booster_module, "DENSE_IDS", dense_ids)
        stats = SwipeStats.of_log(users, ids, labels, n_users=50, n_ids=30, prior=0.5)
        got.append(stats.cosines(candidates, history, history[::-1]))
    for sparse_lists, dense_lists in zip(*got, strict=True):
        for a, b in zip(sparse_lists, dense_lists, strict=True):
            np.testing.assert_array_equal(a, b)


def test_features_are_item_stats_user_stats_and_list_cosines() -> None:
    stats = SwipeStats.of_log(USERS, IDS, LABELS, n_users=3, n_ids=4, prior=0.5)
    liked, passed = np.array([[0, 1]]), np.array([[-1, -1]])
    user = np.array([[0.3, 0.6]], dtype=np.float32)
    features = booster_features(stats, np.array([3]), liked, passed, user)
    assert features.shape == (1, 2 + 2 + 8)
    signed = dense_cosines(np.where(LABELS > 0, 1.0, -1.0))[3, [0, 1]]
    np.testing.assert_allclose(features[0, :4], [np.log1p(1), 2.5 / 6, 0.3, 0.6], rtol=1e-6)
    np.testing.assert_allclose(features[0, 4:6], [signed.mean(), signed.max()], atol=1e-6)
    np.testing.assert_array_equal(features[0, 8:], 0.0)  # no passes: means and maxima 0


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"booster\.weight"):
        BoosterConfig(weight=1.5)
    with pytest.raises(ConfigError, match=r"booster\.fit_fraction"):
        BoosterConfig(fit_fraction=1.0)
    with pytest.raises(ConfigError, match="expected >= 1"):
        BoosterConfig(trees=0)


def _log(synthetic_data: InteractionData, fast: list[str]) -> tuple[FitLog, object]:
    config = load_recipe(None, fast)
    prepared = build_prepared(config, synthetic_data)
    model = build_model(config, prepared)
    attach_booster(BoosterConfig(enabled=True, trees=20), model, prepared, seed=0)
    return model, prepared  # type: ignore[return-value]


def test_fitted_booster_scores_with_the_whole_logs_statistics(
    synthetic_data: InteractionData, fast: list[str]
) -> None:
    model, prepared = _log(synthetic_data, fast)
    booster = model.booster  # type: ignore[attr-defined]
    assert isinstance(booster, LikeBooster)
    train = prepared.train  # type: ignore[attr-defined]
    ids = prepared.artifacts.candidate_tables.ids.numpy()[train.item_rows]  # type: ignore[attr-defined]
    whole = SwipeStats.of_log(
        train.user_rows, ids, train.labels, prepared.n_users,  # type: ignore[attr-defined]
        booster.stats.n_ids, prepared.like_prior,  # type: ignore[attr-defined]
    )  # fmt: skip
    np.testing.assert_array_equal(booster.stats.count, whole.count)
    assert (booster.stats.signed != whole.signed).nnz == 0


def test_small_and_large_batches_score_the_same(
    synthetic_data: InteractionData, fast: list[str]
) -> None:
    model, prepared = _log(synthetic_data, fast)
    booster = model.booster  # type: ignore[attr-defined]
    train, history = prepared.train, prepared.train_history  # type: ignore[attr-defined]
    rows = np.resize(np.arange(len(train.labels)), 3 * SMALL_PREDICT)  # over the threshold
    ids = prepared.artifacts.candidate_tables.ids.numpy()[train.item_rows]  # type: ignore[attr-defined]
    args = tuple(
        a[rows] for a in (ids, history.liked.numpy(), history.passed.numpy(), history.stats.numpy())
    )
    whole = booster.logits(*args)  # every core
    chunks = [booster.logits(*(a[i : i + 10] for a in args)) for i in range(0, len(rows), 10)]
    np.testing.assert_array_equal(whole, np.concatenate(chunks))  # one thread each


def test_booster_learns_the_genre_signal_and_the_blend_is_the_weighted_sum(
    synthetic_data: InteractionData, fast: list[str]
) -> None:
    model, prepared = _log(synthetic_data, fast)
    assert isinstance(model, TwoTowerModel)
    held = prepared.test  # type: ignore[attr-defined]
    scorer = model_scorer(model, prepared.artifacts, prepared.histories("test"))  # type: ignore[attr-defined]
    blended = scorer.pair_scores(held.user_rows, held.item_rows)
    booster, model.booster = model.booster, None
    network = scorer.pair_scores(held.user_rows, held.item_rows)
    assert booster is not None
    model.booster = replace_weight(booster, 1.0)
    alone = scorer.pair_scores(held.user_rows, held.item_rows)
    w = booster.weight
    np.testing.assert_allclose(blended, (1 - w) * network + w * alone, rtol=1e-5, atol=1e-5)
    # likes follow the user's genre, which the cosines to their earlier likes carry
    assert roc_auc(held.labels.astype(np.int64), alone) > 0.8


def replace_weight(booster: LikeBooster, weight: float) -> LikeBooster:
    return LikeBooster(booster.model, booster.stats, replace(booster.config, weight=weight))


def test_booster_needs_the_history(synthetic_data: InteractionData, fast: list[str]) -> None:
    config = load_recipe(None, [*fast, "features.history_len=0", "features.recent_swipes=0"])
    prepared = build_prepared(config, synthetic_data)
    model = build_model(config, prepared)
    with pytest.raises(ConfigError, match=r"set features\.history_len"):
        attach_booster(BoosterConfig(enabled=True), model, prepared, seed=0)


def test_a_boosted_refit_run_saves_reloads_and_evaluates_the_same(
    synthetic_store: str, tmp_path: Path, fast: list[str]
) -> None:
    from towerkit.core.registry import ModelRegistry

    registry = ModelRegistry(tmp_path / "registry")
    overrides = [*fast, "refit=true", "booster.enabled=true", "booster.trees=20"]
    outcome = train(
        None, overrides, db_url=synthetic_store, promote="never", runs_root=tmp_path,
        registry=registry,
    )  # fmt: skip
    # one booster for the selection run's validation table, one for the refitted model
    assert outcome.metrics["booster_seconds"] > 0 and outcome.metrics["refit_booster_seconds"] > 0
    model_dir = outcome.run_dir / "model"
    reloaded = TwoTowerModel.from_pretrained(model_dir)
    assert reloaded.booster is not None and reloaded.booster.weight == pytest.approx(0.6)
    _, table, _ = evaluate(str(outcome.run_dir), registry=registry)
    assert table["two_tower"]["auc"] == pytest.approx(outcome.table["two_tower"]["auc"], abs=1e-9)
    assert_served_probabilities_are_blended(outcome.run_dir)
    (model_dir / "like_booster.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="like booster files unreadable"):
        TwoTowerModel.from_pretrained(model_dir)


def test_like_logits_without_a_booster_are_unchanged_by_the_stats_field() -> None:
    from towerkit.rec.twotower.towers import TowerOutput

    out = TowerOutput(torch.ones(2, 3), torch.zeros(2), torch.ones(2, 3), None, torch.ones(2, 2))
    assert out.take(torch.tensor([1])).stats is not None
    assert TowerOutput.cat([out, out]).stats.shape == (4, 2)  # type: ignore[union-attr]


def assert_served_probabilities_are_blended(run_dir: Path) -> None:
    """What `POST /recommend` serves as like_probability carries the booster's logit."""
    from towerkit.rec.twotower.api import load_bundle

    bundle = load_bundle(str(run_dir))
    model = bundle.model
    assert isinstance(model, TwoTowerModel) and model.booster is not None
    user = next(u for u in bundle.features.query_keys if len(bundle.seen_items(u)) >= 3)
    items = bundle.candidate_ids()[:6]
    served = bundle.like_probabilities(bundle.query_outputs([user]), items)
    rows = np.array([bundle.features.candidate_row(i) for i in items])
    user_rows = np.full(len(rows), bundle.features.query_row(user))
    logits = model_scorer(model, bundle.features).pair_scores(user_rows, rows)
    np.testing.assert_allclose(served, 1 / (1 + np.exp(-logits)), atol=1e-6)
    booster, model.booster = model.booster, None
    network = model_scorer(model, bundle.features).pair_scores(user_rows, rows)
    model.booster = booster
    assert not np.allclose(logits, network)
    # a user described by features and swipes gets the booster too
    liked, passed = sorted(bundle.seen_items(user))[:2], []
    query = bundle.query_output_from_features({}, liked, passed)
    assert query.stats is not None and query.items is not None
    assert bundle.like_probabilities(query, items).shape == (6,)


def test_cli_trains_a_boosted_model_and_says_so(
    synthetic_store: str, tmp_path: Path, fast: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from towerkit.cli import main

    boosted = ["booster.enabled=true", "booster.trees=20", "refit=true"]
    assert main(["rec", "train", "--db", synthetic_store, *fast, *boosted]) == 0
    out = capsys.readouterr().out
    assert "refit on train + validation: " in out
    assert "like booster (LightGBM, blended into the like logit): fitted in " in out
    run = sorted((tmp_path / "runs" / "rec" / "two-tower-quick").iterdir())[-1]
    assert {p.name for p in (run / "model").iterdir()} >= {
        "like_booster.txt", "like_booster_stats.npz", "like_booster.json"
    }  # fmt: skip
    assert main(["rec", "train", "--db", synthetic_store, *fast, "booster.weight=2"]) == 2
    assert "booster.weight: expected 0..1, got 2" in capsys.readouterr().err


@pytest.mark.slow
def test_booster_raises_validation_auc_on_movielens(ml100k_home: Path, tmp_path: Path) -> None:
    """Real data: the quick recipe's network, then its booster; the blend must beat both."""
    from towerkit.core.trainer import Trainer
    from towerkit.rec.twotower.prepare import InteractionDataset, collate
    from towerkit.rec.twotower.recipe import build_loss, default_config_path
    from towerkit.rec.twotower.sources import movielens_data

    config = load_recipe(default_config_path("quick"), ["trainer.progress=false"])
    prepared = build_prepared(config, movielens_data())
    model = build_model(config, prepared)
    Trainer(
        model, replace(config.trainer, early_stopping_metric=None), InteractionDataset(prepared.train),
        build_loss(config, prepared), tmp_path, collate_fn=collate,
    ).fit()  # fmt: skip
    val, histories = prepared.val, prepared.histories("val")

    def auc() -> float:
        scorer = model_scorer(model, prepared.artifacts, histories)
        return roc_auc(
            val.labels.astype(np.int64), scorer.pair_scores(val.user_rows, val.item_rows)
        )

    network = auc()
    attach_booster(BoosterConfig(enabled=True), model, prepared, seed=0)
    blended = auc()
    assert model.booster is not None
    model.booster = replace_weight(model.booster, 1.0)
    alone = auc()
    assert alone > 0.78 and network > 0.75
    print(f"validation AUC: network {network:.4f}, booster {alone:.4f}, blend {blended:.4f}")
    assert blended > network + 0.02 and blended > alone + 0.002

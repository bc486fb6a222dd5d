"""The like path apart from retrieval: its own towers (model.like_towers), which parameters feed
only the like logit, and the recipe's like_selection that keeps the like path's weights of the
best validation AUC while the rest follows the trainer's early-stopping metric."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from towerkit.core.errors import ConfigError
from towerkit.core.trainer import Trainer
from towerkit.rec.twotower.data import InteractionData
from towerkit.rec.twotower.history import from_item_lists
from towerkit.rec.twotower.model import TowerSpec, TwoTowerConfig, TwoTowerModel
from towerkit.rec.twotower.prepare import InteractionDataset, collate
from towerkit.rec.twotower.recipe import build_loss, build_model, build_prepared, load_recipe, train
from towerkit.rec.twotower.selection import SNAPSHOT_FILE, like_selection_callbacks

LIKE_STAGE = (
    "trainer.stages=[{name: like, epochs: 3, lr: 0.01, trainable: ['like_*', 'attention.*', "
    "'bce_*']}, {name: retrieval, epochs: 1, lr: 0.01, trainable: ['query_tower.*', "
    "'candidate_tower.*']}]"
)
SPECS = {"query": TowerSpec(n_ids=3, categorical=[4]), "candidate": TowerSpec(n_ids=8)}


def _model(**extra: object) -> TwoTowerModel:
    config = TwoTowerConfig(
        **SPECS, history_len=3, user_bias=True, item_bias=True, like_attention=True,
        attention_dim=8, hidden_dims=[16], embedding_dim=8, **extra,
    )  # fmt: skip
    return TwoTowerModel(config).eval()


def _pairs(model: TwoTowerModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(retrieval embeddings, like logits) of two users and two movies."""
    ids = torch.tensor([0, 1])
    query = (ids, torch.tensor([[1], [2]]), ids.new_zeros((2, 0, 1)), torch.zeros((2, 0)),
             torch.zeros((2, 0, 1)))  # fmt: skip
    candidate = (torch.tensor([1, 4]), *(t[:, :0] if t.ndim == 2 else t for t in query[1:]))
    history = from_item_lists([[1, 2], [5]], [[3], [6, 7]], history_len=3, prior=0.5).inputs()
    with torch.no_grad():
        q, c = model(query, candidate, history)
        retrieval = torch.cat(
            [q.embedding, model.encode_query(query, history, like=False).embedding]
        )
        return torch.cat([retrieval, c.embedding]), model.like_logits(q, c)


def _perturb(model: TwoTowerModel, names: set[str]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param.add_(torch.randn_like(param) * 0.5 + 0.1)


def test_like_towers_share_no_parameter_with_retrieval() -> None:
    torch.manual_seed(0)
    model = _model(like_towers=True)
    like = set(model.like_path_names())
    params = {n for n, _ in model.named_parameters()}
    assert any(n.startswith("like_query_tower.body") for n in like)
    assert not any(n.startswith(("query_tower.", "candidate_tower.")) for n in like)
    assert {"bce_scale", "bce_bias", "attention.key.weight"} <= like
    # the retrieval towers carry no like-vs-pass head of their own
    assert model.query_tower.bias_head is None and model.candidate_tower.like_head is None
    retrieval, logits = _pairs(model)
    _perturb(model, like)
    retrieval_after, logits_after = _pairs(model)
    torch.testing.assert_close(retrieval_after, retrieval, rtol=0, atol=0)
    assert not torch.allclose(logits_after, logits)
    _perturb(model, params - like)
    retrieval_moved, logits_same = _pairs(model)
    torch.testing.assert_close(logits_same, logits_after, rtol=0, atol=0)
    assert not torch.allclose(retrieval_moved, retrieval)


def test_shared_towers_like_path_is_the_heads() -> None:
    model = _model(like_head=True)
    like = set(model.like_path_names())
    assert "query_tower.bias_head.weight" in like and "candidate_tower.like_head.bias" in like
    assert not any(".body." in n or n.startswith("query_tower.head.") for n in like)
    # the default model is unchanged: no second towers, so older saved weights still load
    assert model.like_query_tower is None and not any("like_query" in k for k in model.state_dict())


def test_history_into_like_with_like_towers_keeps_retrieval_static() -> None:
    model = _model(like_towers=True, history_into="like")
    assert not model.retrieval_history
    ids = torch.tensor([0])
    query = (ids, torch.tensor([[1]]), ids.new_zeros((1, 0, 1)), torch.zeros((1, 0)),
             torch.zeros((1, 0, 1)))  # fmt: skip
    one = from_item_lists([[1, 2]], [[3]], history_len=3, prior=0.5).inputs()
    two = from_item_lists([[5]], [[6, 7]], history_len=3, prior=0.5).inputs()
    with torch.no_grad():
        a, b = model.encode_query(query, one), model.encode_query(query, two)
    torch.testing.assert_close(a.embedding, b.embedding, rtol=0, atol=0)
    assert not torch.allclose(a.like, b.like)


def test_like_selection_keeps_the_like_path_of_the_best_auc_evaluation(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    """Scripted validation numbers: recall@10 is best at the third evaluation, AUC at the
    second; the trained model ends with the like path of the second and the rest of the third."""
    config = load_recipe(
        None,
        [*fast, "model.like_towers=true", "like_selection.metric=auc",
         "trainer.stages=[{epochs: 4, lr: 0.05}]", "trainer.early_stopping_patience=5"],
    )  # fmt: skip
    prepared = build_prepared(config, synthetic_data)
    model = build_model(config, prepared)
    recall, auc = [0.1, 0.2, 0.3, 0.25], [0.6, 0.9, 0.7, 0.8]
    states: list[dict[str, torch.Tensor]] = []

    def scripted(unwrapped: object) -> dict[str, float]:
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        i = len(states) - 1
        return {"recall@10": recall[i], "auc": auc[i]}

    loss = build_loss(config, prepared)
    callbacks = like_selection_callbacks(config, model, tmp_path)
    trainer = Trainer(
        model, config.trainer, InteractionDataset(prepared.train), loss, tmp_path,
        eval_fn=scripted, collate_fn=collate, callbacks=callbacks,
    )  # fmt: skip
    fit = trainer.fit()
    assert len(states) == 4 and fit.best_metric == 0.3
    like = set(model.like_path_names())
    final = model.state_dict()
    moved = [k for k in like if not torch.equal(states[1][k], states[2][k])]
    assert moved  # the like path did change between the two evaluations
    for name, tensor in final.items():
        expected = states[1][name] if name in like else states[2][name]
        assert torch.equal(tensor, expected), name
    with safe_open(str(tmp_path / SNAPSHOT_FILE), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["metric"] == "auc" and float(meta["value"]) == 0.9
    assert int(meta["step"]) == 2 * (fit.global_step // 4)  # the second of four epochs


def test_like_towers_with_like_selection_train_serve_and_export(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    from towerkit.rec.serving.export import export_model
    from towerkit.rec.twotower.api import load_bundle

    overrides = [*fast, "model.like_towers=true", "like_selection.metric=auc",
                 "model.like_attention=true", "model.attention_init=svd",
                 "model.attention_fixed=true", "model.history_into=like", LIKE_STAGE,
                 "trainer.early_stopping_patience=3"]  # fmt: skip
    outcome = train(None, overrides, data=synthetic_data, promote="never", runs_root=tmp_path)
    # the like path is the kept one, from the like stage (the first three epochs)
    kept = load_file(outcome.run_dir / SNAPSHOT_FILE)
    with safe_open(str(outcome.run_dir / SNAPSHOT_FILE), framework="pt") as handle:
        step = int(handle.metadata()["step"])
    assert set(kept) == set(outcome.model.like_path_names())
    assert 1 <= step <= 3 * outcome.metrics["train_steps"] / 4
    for name, tensor in kept.items():
        assert torch.equal(outcome.model.state_dict()[name], tensor), name
    assert 0.0 <= outcome.table["two_tower"]["auc"] <= 1.0
    exported = export_model(str(outcome.run_dir), tmp_path / "export")
    assert exported.manifest["onnx"]["parity"]["ok"]
    bundle = load_bundle(str(outcome.run_dir))
    assert bundle.model.like_query_tower is not None
    for name, tensor in outcome.model.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[name], tensor), name


def test_like_selection_config_errors(synthetic_data: InteractionData, fast: list[str]) -> None:
    with pytest.raises(ConfigError, match="like_selection"):
        load_recipe(None, ["like_selection.mode=up"])
    # a stage of the like path alone: retrieval stands still in it, so the trainer's early
    # stopping would cut it after `patience` evaluations; refused unless the patience covers it
    settings = [*fast, "model.like_towers=true", "like_selection.metric=auc", LIKE_STAGE,
                "model.like_attention=true"]  # fmt: skip
    config = load_recipe(None, [*settings, "trainer.early_stopping_patience=2"])
    model = build_model(config, build_prepared(config, synthetic_data))
    with pytest.raises(ConfigError, match="trains only the like path for 3 epochs"):
        like_selection_callbacks(config, model, None)
    config = load_recipe(None, [*settings, "trainer.early_stopping_patience=3"])
    assert len(like_selection_callbacks(config, model, None)) == 1

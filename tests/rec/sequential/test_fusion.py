"""UR4Rec fusion: each strategy's arithmetic, the rerank contract, gradients and round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from towerkit.core.errors import ConfigError
from towerkit.rec.sequential.fusion import FusionConfig, UR4Rec, UR4RecConfig, rerank
from towerkit.rec.sequential.retrievers import TextRetrieverConfig
from towerkit.rec.sequential.sasrec import SASRecConfig

N_ITEMS = 30


def _model(strategy: str = "weighted", alpha: float = 0.3, k: int = 5) -> UR4Rec:
    torch.manual_seed(0)
    config = UR4RecConfig(
        sasrec=SASRecConfig(n_items=N_ITEMS, hidden=16, blocks=1, max_len=8, dropout=0.0),
        text=TextRetrieverConfig(n_items=N_ITEMS, n_users=4, text_dim=8, dim=8, dropout=0.0),
        fusion=FusionConfig(strategy=strategy, alpha=alpha, rerank_k=k),  # type: ignore[arg-type]
    )
    model = UR4Rec(config)
    model.retriever.set_texts(torch.randn(4, 8), torch.randn(N_ITEMS + 1, 8))  # type: ignore[operator]
    return model.eval()


USERS = torch.tensor([0, 1, 2])
HISTORY = torch.tensor([[0, 0, 0, 0, 0, 3, 7, 9], [0] * 6 + [1, 2], [4, 5, 6, 7, 8, 9, 10, 11]])


def test_weighted_is_a_mix_of_log_probabilities() -> None:
    model = _model()
    seq, ret, _, _ = model.components(USERS, HISTORY)
    fused = model.score_all(USERS, HISTORY)
    expected = 0.7 * F.log_softmax(seq[:, 1:], -1) + 0.3 * F.log_softmax(ret[:, 1:], -1)
    assert torch.allclose(fused[:, 1:], expected, atol=1e-6)
    assert torch.isinf(fused[:, 0]).all()
    # alpha 0 ranks exactly as SASRec, alpha 1 exactly as the retriever; never NaN
    only_seq = model.score_all(USERS, HISTORY, alpha=0.0)
    only_ret = model.score_all(USERS, HISTORY, alpha=1.0)
    assert not only_seq[:, 1:].isnan().any() and not only_ret[:, 1:].isnan().any()
    assert torch.equal(only_seq[:, 1:].argsort(-1), seq[:, 1:].argsort(-1))
    assert torch.equal(only_ret[:, 1:].argsort(-1), ret[:, 1:].argsort(-1))


def test_gate_mixes_per_user_and_learns() -> None:
    model = _model("gate").train()
    seq, ret, state, user = model.components(USERS, HISTORY)
    g = model.gate_value(state, user)
    assert g.shape == (3, 1) and ((g > 0) & (g < 1)).all()
    fused = model.score_all(USERS, HISTORY)
    expected = (1 - g) * F.log_softmax(seq[:, 1:], -1) + g * F.log_softmax(ret[:, 1:], -1)
    assert torch.allclose(fused[:, 1:], expected, atol=1e-5)
    loss = F.cross_entropy(fused, torch.tensor([5, 6, 12]))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for prefix in ("gate.", "sasrec.item_emb", "retriever.user_proj", "retriever.item_proj"):
        assert any(
            g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(prefix)
        )


def test_rerank_reorders_only_sasrecs_top_k() -> None:
    model = _model("rerank", alpha=1.0, k=5)
    seq, ret, *_ = model.components(USERS, HISTORY)
    fused = model.score_all(USERS, HISTORY)
    for row in range(3):
        masked = seq[row].clone()
        masked[HISTORY[row]] = float("-inf")
        candidates = set(masked.topk(5).indices.tolist())
        top5 = fused[row].topk(5).indices.tolist()
        assert set(top5) == candidates  # the same five items, no history item among them
        assert not candidates & set(HISTORY[row].tolist())
        order = sorted(candidates, key=lambda i: -ret[row, i].item())
        assert top5 == order  # ordered by the retriever (alpha = 1)
        rest = [i for i in fused[row].argsort(descending=True).tolist() if i not in candidates]
        assert rest[:-1] == [
            i for i in seq[row].argsort(descending=True).tolist() if i not in candidates and i != 0
        ]


def test_rerank_helper_keeps_base_order_below() -> None:
    base = torch.tensor([[float("-inf"), 5.0, 4.0, 3.0, 2.0, 1.0]])
    blended = torch.tensor([[0.0, 1.0, 2.0, 9.0, 0.0, 0.0]])
    out = rerank(base, blended, k=2, history=torch.tensor([[0, 1]]))
    # history item 1 is skipped: candidates are 2 and 3, ordered by blended (3 first)
    assert out[0].argsort(descending=True).tolist()[:5] == [3, 2, 1, 4, 5]


def test_round_trip_and_config_errors(tmp_path: Path) -> None:
    model = _model("gate")
    model.save_pretrained(tmp_path / "m")
    loaded = UR4Rec.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.score_all(USERS, HISTORY), model.score_all(USERS, HISTORY))
    with pytest.raises(ConfigError, match="alpha in"):
        FusionConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="sasrec has 30 items, the retriever 31"):
        UR4Rec(
            UR4RecConfig(
                sasrec=SASRecConfig(n_items=30, hidden=16),
                text=TextRetrieverConfig(n_items=31, n_users=2),
            )
        )


def test_the_recipe_starts_from_the_same_weights_for_the_same_seed() -> None:
    import dataclasses

    from towerkit.core.config import load_config
    from towerkit.rec.sequential.ur4rec import UR4RecRecipeConfig, config_path, initial_model

    config = load_config(UR4RecRecipeConfig, config_path("quick"))
    m = config.model
    config.model = dataclasses.replace(
        m,
        sasrec=dataclasses.replace(m.sasrec, n_items=50),
        text=dataclasses.replace(m.text, n_items=50, n_users=20),
        multimodal=dataclasses.replace(m.multimodal, n_items=50, n_users=20),
    )
    first = initial_model(config).state_dict()
    torch.rand(7)  # whatever ran before, the draw starts from trainer.seed
    second = initial_model(config).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    config.trainer.seed += 1
    other = initial_model(config).state_dict()
    assert not torch.equal(first["sasrec.item_emb.weight"], other["sasrec.item_emb.weight"])

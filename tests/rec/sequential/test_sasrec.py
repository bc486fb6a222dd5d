"""SASRec: shapes, causality, padding, each loss's backward, round trip, and that it learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, create_model
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.metrics import evaluate_next_item
from towerkit.rec.sequential.metrics.evaluate import pad_left
from towerkit.rec.sequential.sasrec import SASRec, SASRecConfig
from towerkit.rec.sequential.training import NextItemDataset, sasrec_loss, sasrec_scorer


def _model(**kw: object) -> SASRec:
    torch.manual_seed(0)
    config = SASRecConfig(**{"n_items": 12, "hidden": 16, "heads": 2, "max_len": 8, **kw})  # type: ignore[arg-type]
    return SASRec(config).eval()


def test_shapes_and_padding_column() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert model(seq).shape == (2, 5, 16)
    scores = model.score_all(seq)
    assert scores.shape == (2, 13) and torch.isinf(scores[:, 0]).all()
    items = torch.tensor([2, 7])
    assert torch.allclose(model.score_items(seq, items), scores[:, items], atol=1e-5)
    per_user = torch.tensor([[1, 2], [3, 4]])
    assert torch.allclose(model.score_items(seq, per_user), scores.gather(1, per_user), atol=1e-5)


def test_causal_and_padding_invariant() -> None:
    model = _model()
    a = model(torch.tensor([[0, 1, 2, 3, 4]]))
    b = model(torch.tensor([[0, 1, 2, 3, 9]]))
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)  # the future does not leak back
    assert not torch.allclose(a[:, 4], b[:, 4])
    short = model.user_vector(torch.tensor([[0, 5, 6]]))
    long = model.user_vector(torch.tensor([[0, 0, 0, 0, 0, 5, 6]]))
    assert torch.allclose(short, long, atol=1e-6)  # more left padding changes nothing


@pytest.mark.parametrize("loss", ["bce", "bpr", "ce", "sampled_softmax"])
def test_each_loss_backward(loss: str) -> None:
    model = _model(loss=loss, num_negatives=3).train()
    seq = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    targets = torch.tensor([[0, 0, 2, 3, 4], [5, 6, 7, 8, 9]])
    negatives = torch.randint(1, 13, (2, 5, 3))
    value = model.loss(seq, targets, negatives)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    grad = model.item_emb.weight.grad
    assert grad is not None and grad[1:].abs().sum() > 0
    assert grad[0].abs().sum() == 0  # padding row never learns


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="n_items"):
        SASRec(SASRecConfig())
    with pytest.raises(ConfigError, match="hidden"):
        SASRecConfig(n_items=3, hidden=10, heads=3)


def test_round_trip(tmp_path: Path) -> None:
    model = create_model("sasrec", n_items=12, hidden=16, max_len=8)
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert isinstance(loaded, SASRec)
    seq = torch.tensor([[0, 3, 4, 5]])
    model.eval()
    assert torch.equal(model.score_all(seq), loaded.score_all(seq))


def _cyclic_data(n_items: int = 12, n_users: int = 24) -> SeqDataset:
    rng = np.random.default_rng(0)
    sequences = []
    for _ in range(n_users):  # each user walks the items in a fixed cycle from a random start
        start = int(rng.integers(n_items))
        sequences.append(np.array([(start + k) % n_items + 1 for k in range(10)]))
    return SeqDataset(
        name="cycle",
        sequences=sequences,
        timestamps=[np.arange(10) for _ in sequences],
        n_items=n_items,
        user_ids=[str(u) for u in range(n_users)],
        item_ids=["<pad>", *[str(i) for i in range(1, n_items + 1)]],
        item_texts=[""] * (n_items + 1),
    )


def test_learns_a_cycle() -> None:
    data = _cyclic_data()
    model = _model(loss="ce", dropout=0.0).train()
    samples = NextItemDataset(data, 8, 1)
    batch = torch.utils.data.default_collate([samples[i] for i in range(len(samples))])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        sasrec_loss(model, batch).backward()
        opt.step()
    model.eval()
    result = evaluate_next_item(
        sasrec_scorer(model),
        data.histories("test"),
        data.targets("test"),
        12,
        max_len=8,
        ks=(1,),
        mask_history=False,  # all 12 items compete
    )
    assert result.metrics["hr@1"] >= 0.75  # chance: 1 / 12


def test_windows_cover_every_target_once() -> None:
    data = _cyclic_data()
    windows = NextItemDataset(data, 3, 2)
    targets = sum(int((windows[i]["targets"] > 0).sum()) for i in range(len(windows)))
    assert targets == sum(len(data.train_sequence(u)) - 1 for u in range(data.n_users))
    sample = windows[0]
    seen = set(data.train_sequence(0).tolist())
    negatives = sample["negatives"][sample["targets"] > 0]
    assert not seen & set(negatives.flatten().tolist())
    assert pad_left([np.array([1, 2, 3])], 2).tolist() == [[2, 3]]

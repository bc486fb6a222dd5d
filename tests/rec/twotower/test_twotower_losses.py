"""Loss maths against direct computations on tiny tensors; the streaming frequency estimator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from towerkit.rec.twotower.losses import (
    StreamingFrequency,
    log_q_correction,
    pointwise_bce_loss,
    sampled_softmax_loss,
)
from towerkit.rec.twotower.model import TowerOutput, TowerSpec, TwoTowerConfig, TwoTowerModel


def _unit(rows: list[list[float]]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def _direct(query, cands, pos, cand_items, log_q, temp):  # type: ignore[no-untyped-def]
    """Row by row, with Python loops: -log softmax of the own column over unmasked columns."""
    total = 0.0
    for i in range(query.shape[0]):
        logits = []
        for j in range(cands.shape[0]):
            if j != i and cand_items[j] == pos[i]:
                continue  # accidental hit
            value = float(query[i] @ cands[j]) / temp - (
                float(log_q[j]) if log_q is not None else 0.0
            )
            logits.append((j, value))
        own = next(v for j, v in logits if j == i)
        total += -(own - math.log(sum(math.exp(v) for _, v in logits)))
    return total / query.shape[0]


def test_sampled_softmax_matches_a_direct_computation() -> None:
    query = _unit([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0.1]])
    cands = _unit([[0.9, 0.1, 0], [0, 1, 0.2], [0.3, 0.3, 0.3], [1, 1, 0], [0, 0, 1]])
    pos = torch.tensor([10, 11, 12])
    cand_items = torch.tensor([10, 11, 12, 13, 14])
    log_q = torch.tensor([-1.0, -2.0, -0.5, -3.0, -3.0])
    got = sampled_softmax_loss(query, cands, pos, cand_items, log_q, 0.1)
    assert float(got) == pytest.approx(_direct(query, cands, pos, cand_items, log_q, 0.1), rel=1e-5)
    plain = sampled_softmax_loss(query, cands, pos, cand_items, None, 0.5)
    assert float(plain) == pytest.approx(
        _direct(query, cands, pos, cand_items, None, 0.5), rel=1e-5
    )


def test_accidental_hits_are_masked() -> None:
    # rows 0 and 1 share item 7; uniform column 3 drew item 7 again
    query = _unit([[1, 0], [0.8, 0.6], [0, 1]])
    cands = _unit([[1, 0.1], [1, 0.1], [0, 1], [1, 0.1]])
    pos = torch.tensor([7, 7, 9])
    cand_items = torch.tensor([7, 7, 9, 7])
    got = sampled_softmax_loss(query, cands, pos, cand_items, None, 0.1)
    expected = _direct(query, cands, pos, cand_items, None, 0.1)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # row 0 sees only its own column and item 9: the duplicates of item 7 are gone
    logits = query[0] @ cands.T / 0.1
    row0 = -(logits[0] - torch.logsumexp(logits[[0, 2]], 0))
    unmasked = -(logits[0] - torch.logsumexp(logits, 0))
    assert float(row0) < float(unmasked)
    assert float(got) < float(F.cross_entropy(query @ cands[:3].T / 0.1, torch.arange(3)) + 10)


def test_log_q_shifts_each_column_by_its_log_probability() -> None:
    query = _unit([[1, 0], [0, 1]])
    cands = _unit([[1, 0], [0, 1]])
    items = torch.tensor([0, 1])
    # subtracting log q from column j equals adding -log q to it: compare with manual logits
    log_q = torch.tensor([math.log(0.5), math.log(0.01)])
    got = sampled_softmax_loss(query, cands, items, items, log_q, 1.0)
    logits = query @ cands.T - log_q.unsqueeze(0)
    assert float(got) == pytest.approx(float(F.cross_entropy(logits, items)), rel=1e-6)
    # the frequent item's column is pushed down: as a positive it costs more, as a negative less
    frequent_pos = sampled_softmax_loss(query[:1], cands, items[:1], items, log_q, 1.0)
    rare_pos = sampled_softmax_loss(
        query[1:], cands[[1, 0]], items[1:], items[[1, 0]], log_q[[1, 0]], 1.0
    )
    uncorrected = sampled_softmax_loss(query[:1], cands, items[:1], items, None, 1.0)
    assert float(frequent_pos) > float(uncorrected) > float(rare_pos)


def test_streaming_frequency_estimates_the_gap_between_sightings() -> None:
    estimator = StreamingFrequency(buckets=4096, hashes=2, alpha=0.1)
    for step in range(1, 401):
        batch = [1]  # item 1 in every batch
        if step % 4 == 0:
            batch.append(2)  # item 2 in every fourth
        estimator.update(torch.tensor(batch + batch))  # repeats count once
    p = estimator.probability(torch.tensor([1, 2, 3]))
    assert float(p[0]) == pytest.approx(1.0, abs=1e-4)
    assert float(p[1]) == pytest.approx(0.25, abs=0.01)
    assert float(p[2]) == 1.0  # never seen: no evidence of rarity
    assert int(estimator.step) == 400


def test_log_q_correction_uses_expected_counts() -> None:
    estimator = StreamingFrequency(buckets=64, hashes=1, alpha=1.0)
    for _ in range(3):
        estimator.update(torch.tensor([5]))
    correction = log_q_correction(estimator, torch.tensor([5, 5]), n_uniform=3, n_items=30)
    # in-batch: log(batch size x p) with p = 1; uniform: log(3 / 30)
    expected = torch.tensor([math.log(2.0), math.log(2.0), *[math.log(0.1)] * 3])
    assert torch.allclose(correction, expected)


def test_pointwise_bce_on_the_like_logit() -> None:
    model = TwoTowerModel(
        TwoTowerConfig(query=TowerSpec(n_ids=3), candidate=TowerSpec(n_ids=3), item_bias=True)
    )
    with torch.no_grad():
        model.bce_scale.fill_(5.0)
        model.bce_bias.fill_(-1.0)
    query = _unit([[1, 0], [0, 1]])
    cands = _unit([[1, 0], [1, 0]])
    item_bias, user_bias = torch.tensor([0.5, -0.5]), torch.tensor([0.25, 0.0])
    logits = model.like_logits(
        TowerOutput(query, user_bias, query), TowerOutput(cands, item_bias, cands)
    )
    assert logits.tolist() == pytest.approx([5.0 + 0.5 + 0.25 - 1.0, 0.0 - 0.5 - 1.0])
    labels = torch.tensor([1.0, 0.0])
    got = pointwise_bce_loss(logits, labels)
    p = torch.sigmoid(logits)
    expected = -(math.log(p[0]) + math.log(1 - p[1])) / 2
    assert float(got) == pytest.approx(expected, rel=1e-6)

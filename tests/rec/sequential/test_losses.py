"""UR4Rec losses against hand-computed values, and Kendall uncertainty weighting's optimum."""

from __future__ import annotations

import math

import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.rec.sequential.losses import (
    UncertaintyWeighting,
    bce_loss,
    bpr_loss,
    diversity_regulariser,
    info_nce,
    joint_loss,
    modality_consistency,
    retrieval_loss,
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_bpr_and_bce_match_hand_values() -> None:
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    expected_bpr = -(math.log(_sigmoid(1.0)) + math.log(_sigmoid(-1.0))) / 2
    assert bpr_loss(pos, neg).item() == pytest.approx(expected_bpr, rel=1e-6)
    many = torch.tensor([[1.0, 3.0], [1.0, 1.0]])  # [B, N]: averaged over all pairs
    expected = -(math.log(_sigmoid(1)) + math.log(_sigmoid(-1)) + 2 * math.log(_sigmoid(-1))) / 4
    assert bpr_loss(pos, many).item() == pytest.approx(expected, rel=1e-6)
    expected_bce = -(math.log(_sigmoid(2)) + math.log(_sigmoid(0))) / 2 - math.log(1 - _sigmoid(1))
    assert bce_loss(pos, neg).item() == pytest.approx(expected_bce, rel=1e-6)


def test_retrieval_loss_kinds() -> None:
    scores = torch.tensor([[9.0, 1.0, 2.0, 0.0], [9.0, 0.0, 0.0, 3.0]])
    targets = torch.tensor([2, 3])
    # ce ignores the padding column 0 even though it scores highest
    row0 = -(2.0 - math.log(math.e + math.e**2 + 1.0))
    row1 = -(3.0 - math.log(1.0 + 1.0 + math.e**3))
    assert retrieval_loss(scores, targets, "ce").item() == pytest.approx((row0 + row1) / 2, 1e-6)
    negatives = torch.tensor([[1], [2]])
    bpr = retrieval_loss(scores, targets, "bpr", negatives).item()
    assert bpr == pytest.approx(-(math.log(_sigmoid(1)) + math.log(_sigmoid(3))) / 2, 1e-6)
    with pytest.raises(ConfigError, match="needs sampled negatives"):
        retrieval_loss(scores, targets, "bce")


def test_info_nce_and_modality_consistency() -> None:
    eye = torch.eye(4)
    aligned = info_nce(eye, eye, temperature=0.1).item()
    # each row: -log(e^10 / (e^10 + 3 e^0))
    assert aligned == pytest.approx(-math.log(math.e**10 / (math.e**10 + 3)), rel=1e-3)
    shuffled = info_nce(eye, eye[[1, 2, 3, 0]], temperature=0.1).item()
    assert shuffled > 9.0  # every positive is orthogonal, one negative is identical
    assert modality_consistency(eye, eye).item() == pytest.approx(aligned, rel=1e-6)


def test_diversity_is_one_when_collapsed_and_zero_when_orthogonal() -> None:
    assert diversity_regulariser(torch.ones(5, 3)).item() == pytest.approx(1.0, rel=1e-6)
    assert diversity_regulariser(torch.eye(3) * 7).item() == pytest.approx(0.0, abs=1e-7)
    assert diversity_regulariser(torch.ones(1, 3)).item() == 0.0


def test_uncertainty_weights_converge_to_log_of_each_loss() -> None:
    weighting = UncertaintyWeighting(["a", "b"])
    losses = {"a": torch.tensor(4.0), "b": torch.tensor(0.25)}
    optimiser = torch.optim.Adam(weighting.parameters(), lr=0.05)
    for _ in range(300):
        optimiser.zero_grad()
        weighting(losses).backward()
        optimiser.step()
    assert weighting.log_vars.detach().tolist() == pytest.approx(
        [math.log(4.0), math.log(0.25)], abs=0.02
    )
    # the weight exp(-s) of the larger loss is the smaller one: 1/4 and 4
    assert weighting.weights() == pytest.approx({"a": 0.25, "b": 4.0}, rel=0.03)


def test_joint_loss_fixed_weights_and_uncertainty() -> None:
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    assert joint_loss(losses, {"a": 0.5}).item() == pytest.approx(4.0)
    weighting = UncertaintyWeighting(["a", "b"])
    assert joint_loss(losses, uncertainty=weighting).item() == pytest.approx(5.0)  # s = 0
    with pytest.raises(ConfigError, match="no task losses"):
        joint_loss({})

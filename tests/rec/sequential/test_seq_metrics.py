"""Leave-one-out ranking against hand-computed ranks; chunking; sampled protocol; bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics import sample_negatives
from towerkit.rec.sequential.metrics import (
    ItemScorer,
    evaluate_next_item,
    metrics_from_ranks,
    paired_bootstrap,
)

# rows: users; columns: item ids 0 (padding) .. 5
SCORES = torch.tensor(
    [
        [0.0, 9.0, 8.0, 5.0, 7.0, 1.0],
        [0.0, 2.0, 2.0, 3.0, 0.0, 10.0],
    ]
)
HISTORIES = [np.array([1, 2]), np.array([5])]
TARGETS = np.array([3, 1])


def matrix_scorer(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
    rows = SCORES[users]
    return lambda items: rows[:, items] if items.ndim == 1 else rows.gather(1, items)


def test_full_ranks_by_hand() -> None:
    # user 0: item 4 (7) is above item 3 (5); items 1, 2 are history -> rank 2
    # user 1: item 3 (3) above, item 2 ties (counted above), item 5 is history -> rank 3
    result = evaluate_next_item(matrix_scorer, HISTORIES, TARGETS, 5, max_len=4, ks=(1, 2, 3))
    assert result.ranks.tolist() == [2, 3]
    m = result.metrics
    assert m["hr@1"] == 0.0 and m["hr@2"] == 0.5 and m["hr@3"] == 1.0
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m["mean_rank"] == 2.5 and m["n_users"] == 2.0


def test_unmasked_history_counts() -> None:
    result = evaluate_next_item(matrix_scorer, HISTORIES, TARGETS, 5, max_len=4, mask_history=False)
    assert result.ranks.tolist() == [4, 4]  # user 1: items 2, 3, 5 now above


@pytest.mark.parametrize(("user_chunk", "item_chunk"), [(1, 1), (1, 2), (2, 3), (5, 100)])
def test_chunking_does_not_change_ranks(user_chunk: int, item_chunk: int) -> None:
    result = evaluate_next_item(
        matrix_scorer,
        HISTORIES,
        TARGETS,
        5,
        max_len=4,
        user_chunk=user_chunk,
        item_chunk=item_chunk,
    )
    assert result.ranks.tolist() == [2, 3]


def test_sampled_protocol_never_offers_history_or_target() -> None:
    result = evaluate_next_item(
        matrix_scorer, HISTORIES, TARGETS, 5, max_len=4, num_negatives=2, seed=7
    )
    # the same draw by hand: user 0 can only get items 4 and 5; 0 is padding, never a candidate
    _, candidates = sample_negatives(
        [[3], [1]], 6, 2, [np.array([1, 2, 0]), np.array([5, 0])], seed=7
    )
    assert sorted(candidates[0, 1:].tolist()) == [4, 5]
    assert not set(candidates[1, 1:].tolist()) & {0, 1, 5}
    scores = SCORES.gather(1, torch.from_numpy(candidates))
    expected = 1 + (scores[:, 1:] >= scores[:, :1]).sum(1)
    assert result.ranks.tolist() == expected.tolist()
    assert result.ranks[0] == 2


def test_bad_targets_and_shapes_are_one_line_errors() -> None:
    with pytest.raises(TowerkitError, match=r"targets: item ids must lie in 1..5"):
        evaluate_next_item(matrix_scorer, HISTORIES, np.array([0, 1]), 5, max_len=4)

    def wrong(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
        return lambda items: torch.zeros(len(users), 1)

    with pytest.raises(TowerkitError, match=r"scorer: returned shape"):
        evaluate_next_item(wrong, HISTORIES, TARGETS, 5, max_len=4)


def test_constant_scores_rank_last() -> None:
    def constant(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
        return lambda items: torch.zeros(len(users), items.shape[-1])

    result = evaluate_next_item(constant, HISTORIES, TARGETS, 5, max_len=4)
    assert result.ranks.tolist() == [3, 4]  # every other non-history item ties above
    assert result.metrics["hr@20"] == 1.0 and result.metrics["hr@5"] == 1.0


def test_metrics_from_ranks_and_per_user() -> None:
    ranks = np.array([1, 10, 11])
    m = metrics_from_ranks(ranks, ks=(10,))
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(11)) / 3)
    assert m["mean_rank"] == pytest.approx(22 / 3)


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    shifted = paired_bootstrap(a, a + 0.1, n_resamples=500)
    assert shifted.diff == pytest.approx(0.1)
    assert shifted.diff_low == pytest.approx(0.1) and shifted.diff_high == pytest.approx(0.1)
    assert shifted.p_value == 0.0
    noise = paired_bootstrap(a, rng.permutation(a), n_resamples=500)
    assert noise.diff_low < 0 < noise.diff_high and noise.p_value > 0.05
    assert noise.relative_low < 0 < noise.relative_high
    with pytest.raises(TowerkitError, match="same users"):
        paired_bootstrap(a, a[:10])

"""Ranking metrics: hand-worked values, brute-force reference, scikit-learn, chunks, sampling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import ndcg_score, roc_auc_score

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics import (
    _ranking_core,
    candidates_from_full_scores,
    embedding_candidate_score_fn,
    embedding_score_fn,
    full_ranking_metrics,
    leave_one_out_metrics,
    sample_negatives,
    sampled_ranking_metrics,
    score_matrix_metrics,
)

HAND_SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    ]
)


def test_hand_computed_full_ranking() -> None:
    # user 0: item 0 masked -> list 1, 2, 3, 4, 5; positives 2 and 4 sit at positions 2 and 4.
    #   hr@1 0, hr@3 1, recall@3 1/2, precision@3 1/3, mrr 1/2, mrr@3 1/2,
    #   ndcg@3 = (1/log2 3) / (1 + 1/log2 3); rank among negatives 2 and 3 -> mean_rank 2.5;
    #   AUC: item 2 beats negatives 3, 5; item 4 beats 5 -> 3 of 6 pairs = 0.5.
    # user 1: all scores tie, so (pessimistic) positive 5 comes after the 5 negatives: position 6,
    #   mrr 1/6, mean_rank 6, AUC 0.5 (ties count half). user 2 has no positive: skipped.
    result = score_matrix_metrics(
        HAND_SCORES, [{2, 4}, {5}, set()], ks=(1, 3), exclude=[{0}, (), ()]
    )
    ndcg_user0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    expected = {
        "hr@1": 0.0,
        "recall@1": 0.0,
        "precision@1": 0.0,
        "ndcg@1": 0.0,
        "mrr@1": 0.0,
        "hr@3": 0.5,
        "recall@3": 0.25,
        "precision@3": 1 / 6,
        "ndcg@3": ndcg_user0 / 2,
        "mrr@3": 0.25,
        "mrr": (1 / 2 + 1 / 6) / 2,
        "mean_rank": (2.5 + 6) / 2,
        "auc": 0.5,
        "n_users": 2.0,
    }
    assert result == pytest.approx(expected)
    assert all(type(value) is float for value in result.values())


def test_an_excluded_positive_stays_a_positive() -> None:
    plain = score_matrix_metrics(
        HAND_SCORES, [{2, 4}, {5}, set()], ks=(1, 3), exclude=[{0}, (), ()]
    )
    overlapping = score_matrix_metrics(
        HAND_SCORES, [{2, 4}, {5}, set()], ks=(1, 3), exclude=[{0, 2, 4}, {5}, ()]
    )
    assert overlapping == pytest.approx(plain)


def _random_case(
    seed: int, n_users: int = 40, n_items: int = 30
) -> tuple[np.ndarray, list[set[int]], list[set[int]]]:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((n_users, n_items)), 1)  # one decimal: plenty of ties
    positives = [
        set(rng.choice(n_items, rng.integers(0, 5), replace=False).tolist()) for _ in range(n_users)
    ]
    exclude = [
        set(rng.choice(n_items, rng.integers(0, 8), replace=False).tolist()) for _ in range(n_users)
    ]
    return scores, positives, exclude


def _brute_force(
    scores: np.ndarray, positives: list[set[int]], exclude: list[set[int]], ks: tuple[int, ...]
) -> dict[str, float]:
    """Sort every user's list literally: score desc, negatives before positives, then item id."""
    per_user: list[dict[str, float]] = []
    for user, pos in enumerate(positives):
        if not pos:
            continue
        items = [i for i in range(scores.shape[1]) if i in pos or i not in exclude[user]]
        ranked = sorted(items, key=lambda i: (-scores[user, i], i in pos, i))
        positions = [rank + 1 for rank, item in enumerate(ranked) if item in pos]
        negatives = [i for i in items if i not in pos]
        row = scores[user]
        values = {"mrr": 1 / positions[0]}
        for k in ks:
            hits = sum(p <= k for p in positions)
            ideal = sum(1 / np.log2(r + 1) for r in range(1, min(len(pos), k) + 1))
            values[f"hr@{k}"] = float(hits > 0)
            values[f"recall@{k}"] = hits / len(pos)
            values[f"precision@{k}"] = hits / k
            values[f"ndcg@{k}"] = sum(1 / np.log2(p + 1) for p in positions if p <= k) / ideal
            values[f"mrr@{k}"] = 1 / positions[0] if positions[0] <= k else 0.0
        values["mean_rank"] = np.mean([1 + sum(row[j] >= row[i] for j in negatives) for i in pos])
        pairs = [(row[i] > row[j]) + 0.5 * (row[i] == row[j]) for i in pos for j in negatives]
        values["auc"] = float(np.mean(pairs))
        per_user.append(values)
    result = {name: float(np.mean([v[name] for v in per_user])) for name in per_user[0]}
    return {**result, "n_users": float(len(per_user))}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("direct_up_to", [0, 2, 100])  # sort only, both ways, compare only
def test_matches_brute_force_reference_with_ties_and_masks(
    seed: int, direct_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ranking_core, "DIRECT_COUNT_MAX_POSITIVES", direct_up_to)
    scores, positives, exclude = _random_case(seed)
    scores[0, :] = float("-inf")  # a model that rules items out: ties at -inf with the fillers
    scores[1, ::2] = float("inf")
    positives[0], positives[1] = {3, 7}, {0, 1, 5}
    ks = (1, 5, 10)
    result = score_matrix_metrics(torch.from_numpy(scores), positives, ks, exclude, chunk_size=7)
    assert result == pytest.approx(_brute_force(scores, positives, exclude, ks))


def test_ndcg_and_auc_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random((50, 40))  # continuous: no ties, where sklearn's tie rule would differ
    single = rng.integers(0, 40, size=50)
    relevance = np.zeros_like(scores)
    relevance[np.arange(50), single] = 1.0
    result = score_matrix_metrics(scores, [{int(t)} for t in single], ks=(5, 10))
    for k in (5, 10):
        assert result[f"ndcg@{k}"] == pytest.approx(ndcg_score(relevance, scores, k=k))
    # several positives and masked items: AUC per user over the unmasked items
    _, positives, exclude = _random_case(4, n_users=50, n_items=40)
    result = score_matrix_metrics(scores, positives, ks=(5,), exclude=exclude)
    per_user = []
    for user, pos in enumerate(positives):
        kept = [i for i in range(40) if i in pos or i not in exclude[user]]
        labels = np.isin(kept, list(pos))
        if 0 < labels.sum() < len(kept):
            per_user.append(roc_auc_score(labels, scores[user, kept]))
    assert result["auc"] == pytest.approx(np.mean(per_user))


def _recording(
    score_fn: Callable[..., torch.Tensor], calls: list[int]
) -> Callable[..., torch.Tensor]:
    def wrapped(users: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        calls.append(len(users))
        return score_fn(users, *rest)

    return wrapped


def test_chunked_equals_unchunked_and_chunk_size_is_respected() -> None:
    rng = np.random.default_rng(5)
    user_emb, item_emb = torch.randn(150, 8), torch.randn(120, 8)
    positives = [
        set(rng.choice(120, rng.integers(0, 6), replace=False).tolist()) for _ in range(150)
    ]
    exclude = [set(rng.choice(120, 10, replace=False).tolist()) for _ in range(150)]
    with_positives = sum(1 for p in positives if p)
    results = []
    for chunk_size in (1, 37, 1024):
        calls: list[int] = []
        score_fn = _recording(embedding_score_fn(user_emb, item_emb), calls)
        results.append(full_ranking_metrics(score_fn, positives, (5, 20), exclude, chunk_size))
        assert max(calls) <= chunk_size
        assert sum(calls) == with_positives  # every user with a positive, once
    assert results[0] == pytest.approx(results[1]) and results[1] == pytest.approx(results[2])
    with_bar = full_ranking_metrics(
        embedding_score_fn(user_emb, item_emb), positives, (5, 20), exclude, progress=True
    )
    assert with_bar == pytest.approx(results[0])
    dense = (user_emb @ item_emb.T).numpy()
    assert score_matrix_metrics(dense, positives, (5, 20), exclude) == pytest.approx(results[0])


def test_sparse_matrix_inputs_equal_item_sets() -> None:
    scores, positives, exclude = _random_case(6)

    def to_csr(sets: list[set[int]]) -> sp.csr_matrix:
        rows = [u for u, s in enumerate(sets) for _ in s]
        cols = [i for s in sets for i in sorted(s)]
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=scores.shape)

    from_sets = score_matrix_metrics(scores, positives, (3,), exclude)
    assert score_matrix_metrics(scores, to_csr(positives), (3,), to_csr(exclude)) == pytest.approx(
        from_sets
    )


def test_sampled_negatives_never_hit_positives_or_masked_items() -> None:
    n_items = 60
    for seed in range(25):
        rng = np.random.default_rng(1000 + seed)
        positives = [
            set(rng.choice(n_items, rng.integers(0, 6), replace=False).tolist()) for _ in range(12)
        ]
        exclude = [
            set(rng.choice(n_items, rng.integers(0, 20), replace=False).tolist()) for _ in range(12)
        ]
        users, candidates = sample_negatives(positives, n_items, 30, exclude, seed=seed)
        assert candidates.shape == (sum(len(p) for p in positives), 31)
        for user, row in zip(users.tolist(), candidates.tolist(), strict=True):
            assert row[0] in positives[user]
            negatives = set(row[1:])
            assert len(negatives) == 30  # distinct
            assert not negatives & (positives[user] | exclude[user])
            assert all(0 <= item < n_items for item in negatives)
        again = sample_negatives(positives, n_items, 30, exclude, seed=seed)
        assert np.array_equal(again[1], candidates)  # same seed, same draw


def test_sampled_negatives_are_uniform_over_allowed_items() -> None:
    # 4000 users, positive 0, item 1 masked: each of items 2..9 should get about 4000 / 8 = 500
    _, candidates = sample_negatives([{0}] * 4000, 10, 1, [{1}] * 4000, seed=7)
    counts = np.bincount(candidates[:, 1], minlength=10)
    assert counts[0] == counts[1] == 0
    assert np.all(np.abs(counts[2:] - 500) < 100)


def test_hand_computed_sampled_metrics() -> None:
    # 4 items, item 0 masked, positive 3: the only allowed negatives are 1 and 2, whatever the seed.
    # score = -item id, so the positive is last of 3: hr@1 0, hr@3 1, mrr 1/3, ndcg@3 1/log2(4),
    # mean_rank 3, AUC 0.
    def by_low_id(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return -items.to(torch.float32)

    result = sampled_ranking_metrics(by_low_id, [{3}], 4, num_negatives=2, ks=(1, 3), exclude=[{0}])
    assert result == pytest.approx(
        {
            "hr@1": 0.0,
            "recall@1": 0.0,
            "precision@1": 0.0,
            "ndcg@1": 0.0,
            "mrr@1": 0.0,
            "hr@3": 1.0,
            "recall@3": 1.0,
            "precision@3": 1 / 3,
            "ndcg@3": 0.5,
            "mrr@3": 1 / 3,
            "mrr": 1 / 3,
            "mean_rank": 3.0,
            "auc": 0.0,
            "n_users": 1.0,
        }
    )


def test_sampled_metrics_match_reference_and_are_chunk_independent() -> None:
    scores, positives, exclude = _random_case(8, n_users=30, n_items=50)
    full_rows = torch.from_numpy(scores)
    score_fn = candidates_from_full_scores(lambda users: full_rows[users])
    users, candidates = sample_negatives(positives, 50, 10, exclude, seed=3)
    # reference: each pair is a 11-item list with one positive; users average their pairs first
    per_pair = [
        _brute_force(scores[u][candidates[r]][None, :], [{0}], [set()], (1, 5))
        for r, u in enumerate(users.tolist())
    ]
    names = [name for name in per_pair[0] if name != "n_users"]
    per_user = {
        u: [p for p, pu in zip(per_pair, users.tolist(), strict=True) if pu == u]
        for u in set(users.tolist())
    }
    expected = {
        n: np.mean([np.mean([p[n] for p in ps]) for ps in per_user.values()]) for n in names
    }
    for chunk_size in (1, 4, 1000):
        calls: list[int] = []
        result = sampled_ranking_metrics(
            _recording(score_fn, calls),
            positives,
            50,
            10,
            (1, 5),
            exclude,
            seed=3,
            chunk_size=chunk_size,
        )
        assert max(calls) <= chunk_size
        assert result == pytest.approx({**expected, "n_users": float(len(per_user))})


def test_leave_one_out_full_and_sampled() -> None:
    user_emb, item_emb = torch.randn(25, 6), torch.randn(40, 6)
    targets = torch.randint(0, 40, (25,))
    history = [
        set(np.random.default_rng(u).choice(40, 5).tolist()) - {int(targets[u])} for u in range(25)
    ]
    full_fn = embedding_score_fn(user_emb, item_emb)
    full = leave_one_out_metrics(full_fn, targets, 40, (10,), history)
    assert full == pytest.approx(
        full_ranking_metrics(full_fn, [{int(t)} for t in targets], (10,), history)
    )
    assert full["n_users"] == 25.0 and full["hr@10"] == full["recall@10"]
    sampled = leave_one_out_metrics(
        full_fn, targets.numpy(), 40, (10,), history, num_negatives=20, seed=1
    )
    direct = sampled_ranking_metrics(
        embedding_candidate_score_fn(user_emb, item_emb),
        [{int(t)} for t in targets],
        40,
        20,
        (10,),
        history,
        seed=1,
    )
    assert sampled == pytest.approx(direct)
    # 20 sampled negatives are easier to beat than all 39 other items
    assert sampled["mean_rank"] <= full["mean_rank"]


def _fixed(scores: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda users: scores


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: full_ranking_metrics(_fixed(torch.zeros(2, 5)), [{1}, {2}, {3}]),
            r"score_fn: returned shape \(2, 5\), expected \(3, n_items\)",
        ),
        (
            lambda: full_ranking_metrics(_fixed(torch.zeros(1, 5)), [{7}]),
            r"positives: item id 7 is out of range for 5 items",
        ),
        (
            lambda: full_ranking_metrics(_fixed(torch.full((1, 5), float("nan"))), [{1}]),
            r"score_fn: returned NaN",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((3, 5)), [{1}, {2}]),
            r"scores: expected shape \(2, n_items\)",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((2, 5)), [{1}, {2}], exclude=[{0}]),
            r"exclude: expected 2 users",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((2, 5)), [{1}, {-2}]),
            r"positives\[1\]: item ids must be >= 0",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((2, 5)), [set(), set()]),
            r"positives: no user has a positive",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((1, 5)), [{1}], ks=(0, 5)),
            r"ks: expected one or more cut-offs >= 1",
        ),
        (
            lambda: score_matrix_metrics(np.zeros((1, 5)), [{1}], chunk_size=0),
            r"chunk_size: expected an integer >= 1",
        ),
        (
            lambda: sample_negatives([{1}], 5, 4, [{0}]),
            r"num_negatives: 4 negatives needed but user 0 has only 3",
        ),
        (
            lambda: leave_one_out_metrics(_fixed(torch.zeros(1, 5)), [5], 5),
            r"targets: item ids must lie in 0..4",
        ),
        (
            lambda: embedding_score_fn(torch.zeros(3, 4), torch.zeros(5, 3)),
            r"item_emb: expected \(n_items, d\)",
        ),
    ],
)
def test_bad_input_gives_one_line_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(TowerkitError, match=message) as info:
        call()
    assert "\n" not in str(info.value)

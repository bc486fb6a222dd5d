"""AUC by how many swipes the user had made before each held-out pair."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from towerkit.rec.twotower.evaluation import (
    EmbeddingScorer,
    auc_by_history,
    evaluate_scorer,
    prior_swipes,
)
from towerkit.rec.twotower.prepare import EncodedInteractions


def _encoded(
    users: list[int], times: list[int], labels: list[int] | None = None
) -> EncodedInteractions:
    n = len(users)
    return EncodedInteractions(
        np.asarray(users, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.asarray(labels if labels is not None else [1] * n, dtype=np.float32),
        np.asarray(times, dtype=np.int64),
    )


def test_prior_swipes_counts_earlier_swipes_of_the_same_user_only() -> None:
    before = _encoded([0, 0, 2], [1, 2, 3])
    # held out, out of time order; user 1 is new; user 0's two swipes at t=20 tie
    held_out = _encoded([1, 0, 0, 1, 0, 2], [30, 20, 10, 40, 20, 50])
    assert prior_swipes(held_out, before).tolist() == [0, 3, 2, 1, 3, 1]


def test_auc_by_history_matches_scikit_learn_per_bucket() -> None:
    rng = np.random.default_rng(0)
    prior = rng.integers(0, 80, size=400)
    labels = rng.integers(0, 2, size=400)
    scores = labels * prior / 80 + rng.normal(size=400)  # better with more history
    got = auc_by_history(labels, scores, prior)
    for name, low, high in (
        ("lt5", 0, 5),
        ("5to19", 5, 20),
        ("20to49", 20, 50),
        ("50plus", 50, 99),
    ):
        inside = (prior >= low) & (prior < high)
        assert got[f"rows_history_{name}"] == inside.sum()
        assert np.isclose(got[f"auc_history_{name}"], roc_auc_score(labels[inside], scores[inside]))
    assert sum(got[k] for k in got if k.startswith("rows_")) == 400


def test_a_bucket_with_one_class_has_rows_but_no_auc() -> None:
    got = auc_by_history(
        np.array([1, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 30, 31])
    )
    assert got["rows_history_lt5"] == 2 and "auc_history_lt5" not in got
    assert got["rows_history_20to49"] == 2 and got["auc_history_20to49"] == 1.0
    assert got["rows_history_50plus"] == 0 and "auc_history_50plus" not in got


def test_evaluate_scorer_reports_the_buckets() -> None:
    scorer = EmbeddingScorer(torch.eye(3), torch.eye(3))
    before = _encoded([0] * 6, list(range(6)))
    held_out = EncodedInteractions(
        np.array([0, 0, 1, 1]),
        np.array([0, 1, 1, 0]),
        np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32),
        np.array([10, 11, 10, 11]),
    )
    got = evaluate_scorer(scorer, held_out, before, 3, 3, ks=(1,))
    assert got["auc"] == 1.0
    # user 0 had 6 swipes before (5to19), user 1 none (lt5)
    assert got["rows_history_5to19"] == 2 and got["auc_history_5to19"] == 1.0
    assert got["rows_history_lt5"] == 2 and got["auc_history_lt5"] == 1.0

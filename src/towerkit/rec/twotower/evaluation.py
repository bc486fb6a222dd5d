"""Held-out metrics for any scorer of (user row, item row): the two-tower model or a baseline.

- ``auc``: ROC-AUC of the scores of the split's (user, item) interactions, like/match (1) vs
  pass (0); the two-tower scores pairs with its like-vs-pass logit (a monotone function of the
  cosine unless the model has an item / user bias), baselines with their ranking scores. A
  history model scores each pair with what the user swiped before it (as a served model would).
- ``recall@K``, ``ndcg@K``, ``hr@K``: full ranking of ALL catalogue items for every user with a
  held-out like, the items the user interacted with before the split excluded
  (``towerkit.core.metrics.full_ranking_metrics``). ``warm_*`` repeats them for the users that
  have training interactions, the only ones a pure collaborative-filtering baseline knows.
- ``auc_history_*`` / ``rows_history_*``: the AUC and row count of the pairs whose user had
  made fewer than 5, 5-19, 20-49 and 50 or more swipes before it (training and earlier
  held-out swipes alike): where the like-vs-pass score loses, a new user's first swipes or
  the taste of a known one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from towerkit.core.metrics import full_ranking_metrics, roc_auc
from towerkit.core.model import eval_mode
from towerkit.rec.twotower.artifacts import FeatureArtifacts
from towerkit.rec.twotower.features import SideTensors
from towerkit.rec.twotower.history import HistoryTensors
from towerkit.rec.twotower.model import TowerOutput, TwoTowerModel
from towerkit.rec.twotower.prepare import EncodedInteractions

DEFAULT_KS = (10, 20, 50, 100)
REPORTED = ("recall", "ndcg", "hr")
# prior-swipe buckets of auc_history_*: [0, 5), [5, 20), [20, 50), [50, inf)
HISTORY_BUCKETS = (("lt5", 0, 5), ("5to19", 5, 20), ("20to49", 20, 50), ("50plus", 50, None))


class Scorer(Protocol):
    def full_scores(self, user_rows: torch.Tensor) -> torch.Tensor:
        """(n, n_items) scores of every item for these users."""
        ...

    def pair_scores(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray: ...


class EmbeddingScorer:
    """Dot products of fixed user and item vectors."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        self.users, self.items = users.float(), items.float()

    def full_scores(self, user_rows: torch.Tensor) -> torch.Tensor:
        return self.users[user_rows] @ self.items.T

    def pair_scores(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        u = self.users[torch.from_numpy(user_rows)]
        v = self.items[torch.from_numpy(item_rows)]
        return (u * v).sum(dim=1).numpy()


class TwoTowerScorer(EmbeddingScorer):
    """Ranking by cosine (what retrieval serves); pairs by the like-vs-pass logit. A history
    model scores each held-out pair with the user's history as of that event
    (``pair_history``, aligned with the rows ``pair_scores`` gets)."""

    def __init__(
        self,
        model: TwoTowerModel,
        queries: QueryTables,
        candidates: TowerOutput,
        pair_history: HistoryTensors | None = None,
    ) -> None:
        super().__init__(queries.output.embedding, candidates.embedding)
        self.model, self.queries, self.candidates = model, queries, candidates
        self.pair_history = pair_history

    @torch.no_grad()
    def pair_scores(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(user_rows)
        if self.pair_history is None:
            query = self.queries.output.take(rows)
        else:
            if len(self.pair_history) != len(user_rows):
                raise ValueError("pair_history must hold one history per scored pair")
            query = encode_queries(self.model, self.queries.side.take(rows), self.pair_history)
        candidate = self.candidates.take(torch.from_numpy(item_rows))
        return self.model.like_logits(query, candidate).numpy()


@dataclass
class QueryTables:
    """Every known user's tower output and the feature tables it came from."""

    side: SideTensors
    output: TowerOutput


def _chunks(n: int, size: int) -> list[torch.Tensor]:
    """Row ranges of at most ``size``; one empty range for n = 0 (zero rows still encode)."""
    return [torch.arange(s, min(s + size, n)) for s in range(0, max(n, 1), size)]


@torch.no_grad()
def encode_queries(
    model: TwoTowerModel,
    side: SideTensors,
    history: HistoryTensors | None,
    batch_size: int = 4096,
    like: bool = True,
) -> TowerOutput:
    """The query tower's output for aligned query rows and histories, in eval mode
    (``like=False``: retrieval only, see ``TwoTowerModel.encode_query``)."""
    with eval_mode(model):
        parts = [
            model.encode_query(
                side.take(rows).inputs(),
                history.take(rows).inputs() if history is not None else None,
                like=like,
            )
            for rows in _chunks(len(side), batch_size)
        ]
    return TowerOutput.cat(parts)


@torch.no_grad()
def encode_candidates(
    model: TwoTowerModel, candidates: SideTensors, batch_size: int = 4096
) -> TowerOutput:
    """The candidate tower's output for every row of ``candidates``, in eval mode."""
    with eval_mode(model):
        return TowerOutput.cat(
            [
                model.encode_candidate(candidates.take(rows).inputs())
                for rows in _chunks(len(candidates), batch_size)
            ]
        )


@torch.no_grad()
def embed_tables(
    model: TwoTowerModel,
    artifacts: FeatureArtifacts,
    history: HistoryTensors | None = None,
    batch_size: int = 4096,
) -> tuple[QueryTables, TowerOutput]:
    """Every known user (with ``history``, default the artifacts' end-of-training one) and every
    catalogue item through their towers."""
    queries, candidates = artifacts.query_tables, artifacts.candidate_tables
    history = history if history is not None else artifacts.query_history
    users = encode_queries(model, queries, history, batch_size)
    return QueryTables(queries, users), encode_candidates(model, candidates, batch_size)


def model_scorer(
    model: TwoTowerModel,
    artifacts: FeatureArtifacts,
    histories: tuple[HistoryTensors, HistoryTensors] | None = None,
) -> TwoTowerScorer:
    """The scorer of one held-out split; ``histories`` is ``PreparedData.histories(split)``."""
    ranking, events = histories if histories is not None else (None, None)
    queries, candidates = embed_tables(model, artifacts, ranking)
    return TwoTowerScorer(model, queries, candidates, events)


def evaluate_scorer(
    scorer: Scorer,
    held_out: EncodedInteractions,
    before: EncodedInteractions,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = DEFAULT_KS,
    warm_users: np.ndarray | None = None,
) -> dict[str, float]:
    """auc, {recall,ndcg,hr}@K over all users with a held-out like, and warm_* over warm ones."""
    metrics: dict[str, float] = {}
    labels = held_out.labels
    if 0 < labels.sum() < len(labels):
        scores = scorer.pair_scores(held_out.user_rows, held_out.item_rows)
        metrics["auc"] = roc_auc(labels.astype(np.int64), scores)
        if held_out.times is not None and before.times is not None:
            metrics.update(auc_by_history(labels, scores, prior_swipes(held_out, before)))
    positives = held_out.positives(n_users)
    exclude = seen_item_lists(before, n_users)
    metrics.update(_ranking(scorer, positives, exclude, n_items, ks, ""))
    if warm_users is not None:
        warm = set(warm_users.tolist())
        warm_positives = [p if u in warm else [] for u, p in enumerate(positives)]
        if any(warm_positives):
            metrics.update(_ranking(scorer, warm_positives, exclude, n_items, ks, "warm_"))
    return metrics


def _ranking(
    scorer: Scorer,
    positives: list[list[int]],
    exclude: list[list[int]],
    n_items: int,
    ks: Sequence[int],
    prefix: str,
) -> dict[str, float]:
    if not any(positives):
        return {}
    result = full_ranking_metrics(scorer.full_scores, positives, ks, exclude, n_items=n_items)
    kept = {f"{prefix}{name}@{k}": result[f"{name}@{k}"] for name in REPORTED for k in ks}
    kept[f"{prefix}n_users"] = result["n_users"]
    return kept


def seen_item_lists(encoded: EncodedInteractions, n_users: int) -> list[list[int]]:
    """Per user row, the item rows of their interactions in ``encoded`` (what ranking excludes)."""
    rows: list[list[int]] = [[] for _ in range(n_users)]
    for user, item in zip(encoded.user_rows, encoded.item_rows, strict=True):
        rows[user].append(int(item))
    return rows


def warm_users(train: EncodedInteractions) -> np.ndarray:
    """User rows with at least one training interaction."""
    return np.unique(train.user_rows)


def prior_swipes(held_out: EncodedInteractions, before: EncodedInteractions) -> np.ndarray:
    """For each held-out pair, how many swipes its user made strictly before it: all of
    ``before`` (which ends where the split starts) and the user's earlier held-out swipes."""
    assert held_out.times is not None and before.times is not None
    counts = np.zeros(len(held_out), dtype=np.int64)
    earlier = np.bincount(before.user_rows, minlength=int(held_out.user_rows.max(initial=-1)) + 1)
    order = np.lexsort((held_out.times, held_out.user_rows))
    users, times = held_out.user_rows[order], held_out.times[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    for block in np.split(np.arange(len(order)), bounds):
        if len(block) == 0:
            continue
        block_times = times[block]
        # ties in time are not "before": the index of the first equal instant
        within = np.searchsorted(block_times, block_times, side="left")
        counts[order[block]] = earlier[users[block[0]]] + within
    return counts


def auc_by_history(labels: np.ndarray, scores: np.ndarray, prior: np.ndarray) -> dict[str, float]:
    """``auc_history_<bucket>`` (where the bucket holds both classes) and ``rows_history_<bucket>``
    for the buckets of ``HISTORY_BUCKETS``."""
    out: dict[str, float] = {}
    for name, low, high in HISTORY_BUCKETS:
        inside = (prior >= low) & (prior < high if high is not None else True)
        out[f"rows_history_{name}"] = float(inside.sum())
        picked = labels[inside]
        if 0 < picked.sum() < len(picked):
            out[f"auc_history_{name}"] = roc_auc(picked.astype(np.int64), scores[inside])
    return out

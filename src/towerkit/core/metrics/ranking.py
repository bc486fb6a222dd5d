"""Ranking metrics for recommenders, as RecBole and its peers report them.

Hand-written because no maintained dependency fits: scikit-learn has no HR / MRR / recall@K
over per-user positive sets, and its ndcg_score needs the dense relevance matrix in memory
and cannot mask training items; RecBole has these metrics but pins old dependencies.

Three entry points, all returning ``{"hr@K", "ndcg@K", "recall@K", "precision@K", "mrr@K"
for each K, "mrr", "auc", "mean_rank", "n_users"}`` as floats, each the mean over users that
have at least one positive (each user first averages over its own positives where needed):

- ``full_ranking_metrics`` ranks every item for every user, in chunks of users;
- ``sampled_ranking_metrics`` ranks each (user, positive) pair against N sampled negatives;
- ``leave_one_out_metrics`` is either of them for one held-out next item per user (SASRec).

Definitions: positions are 1-based in the user's ranked list after removing ``exclude``
items (an item in both ``positives`` and ``exclude`` stays a positive). recall@K = hits / number
of positives; precision@K = hits / K; NDCG@K has binary gains and ideal DCG over
min(K, positives); MRR uses the first positive anywhere in the list; mean_rank is the mean over
positives of 1 + the negatives placed above it; AUC is the share of (positive, negative) pairs
ordered correctly. Ties: see ``_ranking_core`` (pessimistic; AUC gives ties one half).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from rich.progress import Progress

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics._inputs import ArrayLike, as_1d
from towerkit.core.metrics._ranking_core import (
    ItemSets,
    ItemSetsCsr,
    UserMeans,
    as_item_sets,
    check_items_below,
    check_ks,
    check_positive_int,
    check_scores,
    positive_positions,
    rank_full_rows,
    row_metrics,
)

# user_idx (n,) -> scores (n, n_items)
FullScoreFn = Callable[[torch.Tensor], ArrayLike]
# user_idx (n,), item_idx (n, c) -> scores (n, c)
CandidateScoreFn = Callable[[torch.Tensor, torch.Tensor], ArrayLike]
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


def full_ranking_metrics(
    score_fn: FullScoreFn,
    positives: ItemSets,
    ks: Iterable[int] = DEFAULT_KS,
    exclude: ItemSets | None = None,
    chunk_size: int = 1024,
    n_items: int | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Rank all items for every user with a positive; score_fn sees at most chunk_size users.

    ``positives[u]`` / ``exclude[u]`` are user u's held-out and already-seen (masked) items.
    Peak memory is about 24 bytes x chunk_size x n_items on the scores' device.
    """
    pos = as_item_sets(positives, "positives")
    excl = None if exclude is None else as_item_sets(exclude, "exclude", pos.n_rows)
    cutoffs, chunk_size = check_ks(ks), check_positive_int(chunk_size, "chunk_size")
    users = np.flatnonzero(pos.counts > 0)
    if users.size == 0:
        raise TowerkitError("positives: no user has a positive item, so there is nothing to rank")
    means = UserMeans(pos.n_rows)
    if n_items is not None:
        _check_item_ranges(pos, excl, n_items)
    with torch.no_grad():
        for batch in _chunks(users, chunk_size, progress, "ranking users"):
            scores = check_scores(
                score_fn(torch.from_numpy(batch)), len(batch), n_items, "score_fn"
            )
            if n_items is None:  # the first chunk tells how many items there are
                n_items = int(scores.shape[1])
                _check_item_ranges(pos, excl, n_items)
            means.add(batch, row_metrics(rank_full_rows(scores, pos, excl, batch), cutoffs))
    return means.result()


def _check_item_ranges(pos: ItemSetsCsr, excl: ItemSetsCsr | None, n_items: int) -> None:
    check_items_below(pos, n_items, "positives")
    if excl is not None:
        check_items_below(excl, n_items, "exclude")


def score_matrix_metrics(
    scores: ArrayLike,
    positives: ItemSets,
    ks: Iterable[int] = DEFAULT_KS,
    exclude: ItemSets | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """``full_ranking_metrics`` on a precomputed (n_users, n_items) score matrix."""
    matrix = scores if isinstance(scores, torch.Tensor) else torch.from_numpy(np.asarray(scores))
    pos = as_item_sets(positives, "positives")
    if matrix.ndim != 2 or matrix.shape[0] != pos.n_rows:
        raise TowerkitError(
            f"scores: expected shape ({pos.n_rows}, n_items) with one row per user in positives, "
            f"got {tuple(matrix.shape)}"
        )
    return full_ranking_metrics(
        lambda users: matrix[users.to(matrix.device)], pos, ks, exclude, chunk_size, matrix.shape[1]
    )


def sample_negatives(
    positives: ItemSets,
    n_items: int,
    num_negatives: int = 100,
    exclude: ItemSets | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One candidate row per (user, positive): ``(pair_users (R,), candidates (R, 1 + N))``.

    Column 0 is the positive; the other N are distinct items drawn uniformly from the items the
    user has neither as a positive nor in ``exclude``. Same seed, same draw.
    """
    pos = as_item_sets(positives, "positives")
    excl = None if exclude is None else as_item_sets(exclude, "exclude", pos.n_rows)
    n_items = check_positive_int(n_items, "n_items")
    num_negatives = check_positive_int(num_negatives, "num_negatives")
    _check_item_ranges(pos, excl, n_items)
    rng = np.random.default_rng(seed)
    users: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for user in np.flatnonzero(pos.counts > 0).tolist():
        user_positives = pos.row(user)
        forbidden = user_positives if excl is None else np.union1d(user_positives, excl.row(user))
        negatives = _draw_allowed(rng, forbidden, n_items, num_negatives, len(user_positives), user)
        rows.append(np.concatenate([user_positives[:, None], negatives], axis=1))
        users.append(np.full(len(user_positives), user, dtype=np.int64))
    if not rows:
        raise TowerkitError("positives: no user has a positive item, so there is nothing to rank")
    return np.concatenate(users), np.concatenate(rows)


def _draw_allowed(
    rng: np.random.Generator,
    forbidden: np.ndarray,
    n_items: int,
    count: int,
    n_rows: int,
    user: int,
) -> np.ndarray:
    """n_rows rows of count distinct items from range(n_items) minus the sorted ``forbidden``."""
    n_allowed = n_items - forbidden.shape[0]
    if n_allowed < count:
        raise TowerkitError(
            f"num_negatives: {count} negatives needed but user {user} has only {n_allowed} items "
            "outside its positives and exclude"
        )
    picks = np.stack([rng.choice(n_allowed, size=count, replace=False) for _ in range(n_rows)])
    # the k-th allowed item is k plus the number of forbidden items at or below it
    return picks + np.searchsorted(forbidden - np.arange(forbidden.shape[0]), picks, side="right")


def sampled_ranking_metrics(
    score_fn: CandidateScoreFn,
    positives: ItemSets,
    n_items: int,
    num_negatives: int = 100,
    ks: Iterable[int] = DEFAULT_KS,
    exclude: ItemSets | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
    progress: bool = False,
) -> dict[str, float]:
    """Rank each positive against ``num_negatives`` sampled negatives (see ``sample_negatives``).

    score_fn gets at most chunk_size (user, candidate-row) pairs per call. Each pair is its own
    list of 1 + N candidates with one relevant item; a user's pairs are averaged first.
    """
    cutoffs, chunk_size = check_ks(ks), check_positive_int(chunk_size, "chunk_size")
    pos = as_item_sets(positives, "positives")
    pair_users, candidates = sample_negatives(pos, n_items, num_negatives, exclude, seed)
    means = UserMeans(pos.n_rows)
    with torch.no_grad():
        for rows in _chunks(np.arange(len(pair_users)), chunk_size, progress, "ranking pairs"):
            users, items = torch.from_numpy(pair_users[rows]), torch.from_numpy(candidates[rows])
            scores = check_scores(score_fn(users, items), len(rows), items.shape[1], "score_fn")
            means.add(pair_users[rows], row_metrics(_rank_candidates(scores), cutoffs))
    return means.result()


def _rank_candidates(scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """Candidate rows whose column 0 is the one positive and the rest are negatives."""
    is_negative = torch.ones_like(scores, dtype=torch.bool)
    is_negative[:, 0] = False
    first_column = torch.zeros(scores.shape[0], 1, dtype=torch.long, device=scores.device)
    return positive_positions(scores, is_negative, first_column, first_column == 0)


def leave_one_out_metrics(
    score_fn: FullScoreFn,
    targets: ArrayLike,
    n_items: int,
    ks: Iterable[int] = DEFAULT_KS,
    exclude: ItemSets | None = None,
    num_negatives: int | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
    progress: bool = False,
) -> dict[str, float]:
    """Next-item evaluation with one held-out item per user: ``targets[u]`` for user (row) u.

    ``num_negatives=None`` ranks all items (masking ``exclude``, usually the user's history);
    an integer ranks the target against that many sampled negatives, scored by gathering from
    score_fn's full rows. For a scorer of candidates only, call ``sampled_ranking_metrics``.
    """
    target_array = as_1d(targets, "targets")
    if not np.issubdtype(target_array.dtype, np.integer):
        raise TowerkitError(f"targets: expected integer item ids, got dtype {target_array.dtype}")
    n_items = check_positive_int(n_items, "n_items")
    if target_array.min() < 0 or target_array.max() >= n_items:
        raise TowerkitError(
            f"targets: item ids must lie in 0..{n_items - 1}, "
            f"got values from {target_array.min()} to {target_array.max()}"
        )
    one_each = ItemSetsCsr(np.arange(len(target_array) + 1), target_array.astype(np.int64))
    if num_negatives is None:
        return full_ranking_metrics(score_fn, one_each, ks, exclude, chunk_size, n_items, progress)
    candidate_fn = candidates_from_full_scores(score_fn)
    return sampled_ranking_metrics(
        candidate_fn, one_each, n_items, num_negatives, ks, exclude, seed, chunk_size, progress
    )


def candidates_from_full_scores(score_fn: FullScoreFn) -> CandidateScoreFn:
    """A candidate scorer that computes full rows with score_fn and picks the candidates."""

    def score_candidates(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        full = check_scores(score_fn(users), len(users), None, "score_fn")
        return full.gather(1, items.to(full.device))

    return score_candidates


def embedding_score_fn(user_emb: torch.Tensor, item_emb: torch.Tensor) -> FullScoreFn:
    """Dot-product scores of users (n_users, d) against all items (n_items, d)."""
    _check_embeddings(user_emb, item_emb)
    return lambda users: user_emb[users.to(user_emb.device)] @ item_emb.T


def embedding_candidate_score_fn(
    user_emb: torch.Tensor, item_emb: torch.Tensor
) -> CandidateScoreFn:
    """Dot-product scores of users against only their candidate items (for sampled metrics)."""
    _check_embeddings(user_emb, item_emb)

    def score_candidates(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        chosen_users = user_emb[users.to(user_emb.device)].unsqueeze(1)
        return (chosen_users * item_emb[items.to(item_emb.device)]).sum(dim=-1)

    return score_candidates


def _check_embeddings(user_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
    if user_emb.ndim != 2 or item_emb.ndim != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise TowerkitError(
            f"item_emb: expected (n_items, d) with the d of user_emb (n_users, d), got "
            f"user_emb {tuple(user_emb.shape)} and item_emb {tuple(item_emb.shape)}"
        )


def _chunks(values: np.ndarray, size: int, progress: bool, label: str) -> Iterator[np.ndarray]:
    starts: Sequence[int] = range(0, len(values), size)
    if not progress:
        yield from (values[start : start + size] for start in starts)
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=len(values))
        for start in starts:
            yield values[start : start + size]
            bar.advance(task, min(size, len(values) - start))

"""The arithmetic under the ranking metrics: item sets, positions of positives, per-row values.

Tie rule (pessimistic, deterministic): the ranked list of a user orders candidates by score,
highest first; a positive that ties with a negative is placed after it, and positives that tie
with each other keep ascending item-index order. A model that gives every item the same score
therefore scores HR@K = 0, not a lucky K / n_items. AUC is the exception: a tied
(positive, negative) pair counts one half, so it equals scikit-learn's roc_auc_score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics._inputs import to_numpy

# positives / exclude: one collection of item ids per user, or a scipy.sparse matrix
# (users x items, stored non-zeros are the items).
ItemSets = Sequence[Iterable[int]] | Any


# Up to this many positives per row, counting with one comparison pass per positive is cheaper
# than sorting the row (measured on CPU: one sort of 50k items costs about 10 passes).
DIRECT_COUNT_MAX_POSITIVES = 8


@dataclass(frozen=True)
class ItemSetsCsr:
    """Per-user item ids in CSR form: row u is indices[indptr[u]:indptr[u + 1]], sorted, unique."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def max_item(self) -> int:
        return int(self.indices.max()) if self.indices.size else -1


def as_item_sets(value: ItemSets, name: str, n_rows: int | None = None) -> ItemSetsCsr:
    """Parse a list of per-user item collections or a scipy.sparse matrix into CSR form."""
    if isinstance(value, ItemSetsCsr):
        csr = value
    elif hasattr(value, "tocsr"):
        matrix = value.tocsr(copy=True)
        matrix.eliminate_zeros()
        matrix.sort_indices()
        csr = ItemSetsCsr(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64))
    elif isinstance(value, Sequence | np.ndarray | torch.Tensor):
        csr = _csr_from_rows(value, name)
    else:
        raise TowerkitError(
            f"{name}: expected a list of item-id collections (one per user) or a scipy.sparse "
            f"matrix, got {type(value).__name__}"
        )
    if n_rows is not None and csr.n_rows != n_rows:
        raise TowerkitError(f"{name}: expected {n_rows} users to match positives, got {csr.n_rows}")
    return csr


def _csr_from_rows(rows: Iterable[Any], name: str) -> ItemSetsCsr:
    parsed: list[np.ndarray] = []
    for user, row in enumerate(rows):
        items = to_numpy(sorted(row) if isinstance(row, set | frozenset) else row, name)
        items = items.reshape(-1)
        if items.size and not np.issubdtype(items.dtype, np.integer):
            raise TowerkitError(f"{name}[{user}]: expected integer item ids, got {items.dtype}")
        if items.size and items.min() < 0:
            raise TowerkitError(f"{name}[{user}]: item ids must be >= 0, got {items.min()}")
        parsed.append(np.unique(items.astype(np.int64)))
    counts = np.array([len(items) for items in parsed], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate(parsed).astype(np.int64) if parsed else np.zeros(0, np.int64)
    return ItemSetsCsr(indptr, indices)


def check_items_below(csr: ItemSetsCsr, n_items: int, name: str) -> None:
    if csr.max_item() >= n_items:
        raise TowerkitError(
            f"{name}: item id {csr.max_item()} is out of range for {n_items} items "
            f"(0..{n_items - 1})"
        )


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    checked = tuple(sorted({int(k) for k in ks}))
    if not checked or checked[0] < 1:
        raise TowerkitError(f"ks: expected one or more cut-offs >= 1, got {tuple(ks)}")
    return checked


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise TowerkitError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def check_scores(raw: Any, n_rows: int, n_cols: int | None, name: str) -> torch.Tensor:
    """The score_fn output as a float tensor of shape (n_rows, n_cols) without NaN."""
    scores = raw if isinstance(raw, torch.Tensor) else torch.from_numpy(to_numpy(raw, name))
    expected = f"({n_rows}, {n_cols if n_cols is not None else 'n_items'})"
    if scores.ndim != 2 or scores.shape[0] != n_rows or (n_cols and scores.shape[1] != n_cols):
        raise TowerkitError(f"{name}: returned shape {tuple(scores.shape)}, expected {expected}")
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.to(torch.float32)
    if torch.isnan(scores).any():
        raise TowerkitError(f"{name}: returned NaN scores; expected finite or +-inf values")
    return scores


def batch_entries(csr: ItemSetsCsr, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the given users: (row in batch, slot within the row, item id) of every stored item."""
    starts = csr.indptr[rows]
    counts = csr.indptr[rows + 1] - starts
    batch_row = np.repeat(np.arange(rows.shape[0]), counts)
    slot = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    items = csr.indices[np.repeat(starts, counts) + slot]
    return batch_row, slot, items


def rank_full_rows(
    scores: torch.Tensor, positives: ItemSetsCsr, exclude: ItemSetsCsr | None, users: np.ndarray
) -> dict[str, torch.Tensor]:
    """Positions of each user's positives in that user's full ranked list (see tie rule)."""
    device, (n_rows, n_items) = scores.device, scores.shape
    rows, slots, items = (torch.from_numpy(a).to(device) for a in batch_entries(positives, users))
    is_positive = torch.zeros(n_rows, n_items, dtype=torch.bool, device=device)
    is_positive[rows, items] = True
    is_negative = ~is_positive
    if exclude is not None:
        ex_rows, _, ex_items = (
            torch.from_numpy(a).to(device) for a in batch_entries(exclude, users)
        )
        is_negative[ex_rows, ex_items] = False
    width = int(slots.max().item()) + 1
    pos_items = torch.zeros(n_rows, width, dtype=torch.long, device=device)
    pos_valid = torch.zeros(n_rows, width, dtype=torch.bool, device=device)
    pos_items[rows, slots] = items
    pos_valid[rows, slots] = True
    return positive_positions(scores, is_negative, pos_items, pos_valid)


def positive_positions(
    scores: torch.Tensor,
    is_negative: torch.Tensor,
    pos_items: torch.Tensor,
    pos_valid: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """1-based positions of the positives plus the negative counts AUC needs.

    ``pos_items`` (rows x slots, padded where ``pos_valid`` is False) lists each row's positives
    in ascending item order. Memory stays a few copies of ``scores``: rows with few positives
    are compared once per positive, others are sorted once and binary-searched.
    """
    n_items = scores.shape[1]
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    n_neg = is_negative.sum(dim=1)
    neg_scores = torch.where(is_negative, scores, neg_inf)
    pos_scores = torch.where(pos_valid, scores.gather(1, pos_items), neg_inf).contiguous()
    neg_greater, neg_at_least = _count_at_or_above(neg_scores, pos_scores)
    # the -inf fillers of non-negatives only count as ">=" for a positive scored -inf
    neg_at_least = neg_at_least - (n_items - n_neg).unsqueeze(1) * (pos_scores == neg_inf)
    # rank among the row's positives: higher score first, ties by ascending item id
    order = torch.argsort(pos_scores, dim=1, descending=True, stable=True)
    among_positives = torch.empty_like(order)
    slots = torch.arange(order.shape[1], device=order.device).expand_as(order)
    among_positives.scatter_(1, order, slots)
    return {
        "position": (1 + neg_at_least + among_positives).to(torch.float64),
        "neg_greater": neg_greater.to(torch.float64),
        "neg_at_least": neg_at_least.to(torch.float64),
        "valid": pos_valid,
        "n_neg": n_neg.to(torch.float64),
    }


def _count_at_or_above(
    neg_scores: torch.Tensor, pos_scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per positive: how many entries of its row of neg_scores are > and >= its score."""
    if pos_scores.shape[1] <= DIRECT_COUNT_MAX_POSITIVES:
        columns = pos_scores.split(1, dim=1)
        greater = [(neg_scores > c).sum(1, keepdim=True, dtype=torch.int32) for c in columns]
        at_least = [(neg_scores >= c).sum(1, keepdim=True, dtype=torch.int32) for c in columns]
        return torch.cat(greater, 1).long(), torch.cat(at_least, 1).long()
    n_items = neg_scores.shape[1]
    neg_sorted = torch.sort(neg_scores, dim=1).values
    greater_sorted = n_items - torch.searchsorted(neg_sorted, pos_scores, right=True)
    return greater_sorted, n_items - torch.searchsorted(neg_sorted, pos_scores, right=False)


def row_metrics(ranked: dict[str, torch.Tensor], ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-row metric values from the positions computed by ``positive_positions``."""
    position, valid = ranked["position"], ranked["valid"]
    n_pos = valid.sum(dim=1).to(torch.float64)
    first = position.masked_fill(~valid, float("inf")).min(dim=1).values
    discount = torch.where(valid, 1.0 / torch.log2(position + 1.0), 0.0)
    ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2.0, max(ks) + 2.0, dtype=torch.float64)), 0)
    ideal = torch.cat([torch.zeros(1, dtype=torch.float64), ideal]).to(position.device)
    values: dict[str, torch.Tensor] = {}
    for k in ks:
        in_top = valid & (position <= k)
        hits = in_top.sum(dim=1).to(torch.float64)
        values[f"hr@{k}"] = (hits > 0).to(torch.float64)
        values[f"recall@{k}"] = hits / n_pos
        values[f"precision@{k}"] = hits / k
        values[f"ndcg@{k}"] = (discount * in_top).sum(dim=1) / ideal[n_pos.clamp(max=k).long()]
        values[f"mrr@{k}"] = torch.where(first <= k, 1.0 / first, 0.0)
    values["mrr"] = 1.0 / first
    values["mean_rank"] = torch.where(valid, ranked["neg_at_least"] + 1.0, 0.0).sum(dim=1) / n_pos
    n_neg = ranked["n_neg"].unsqueeze(1)
    ties = ranked["neg_at_least"] - ranked["neg_greater"]
    credit = torch.where(valid, n_neg - ranked["neg_at_least"] + 0.5 * ties, 0.0).sum(dim=1)
    # a user with no negatives left has no AUC: NaN here, skipped when averaging
    values["auc"] = credit / (n_pos * ranked["n_neg"])
    return {name: tensor.cpu().numpy() for name, tensor in values.items()}


class UserMeans:
    """Sums per user, then the mean over users of each user's mean (every user weighs the same)."""

    def __init__(self, n_users: int) -> None:
        self.n_users = n_users
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}

    def add(self, users: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for name, value in values.items():
            known = ~np.isnan(value)
            if name not in self.sums:
                self.sums[name] = np.zeros(self.n_users)
                self.counts[name] = np.zeros(self.n_users, dtype=np.int64)
            # add.at, not bincount: the cost follows the chunk, not the number of users
            np.add.at(self.sums[name], users[known], value[known])
            np.add.at(self.counts[name], users[known], 1)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, sums in self.sums.items():
            seen = self.counts[name] > 0
            out[name] = (
                float(np.mean(sums[seen] / self.counts[name][seen])) if seen.any() else float("nan")
            )
        out["n_users"] = float(np.count_nonzero(self.counts["mrr"]))
        return out

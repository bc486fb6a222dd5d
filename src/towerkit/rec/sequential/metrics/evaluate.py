"""Leave-one-out next-item evaluation: one held-out target per user, ranked by a model.

A model is evaluated through a ``UserScorer``: ``scorer(users, histories)`` gets a chunk of user
rows (LongTensor [n]) and their left-padded histories ([n, L], 0 = padding) and returns an
``ItemScorer``: ``item_scorer(items)`` scores item ids given either as one list for every user
([M] -> [n, M]) or as one list per user ([n, M] -> [n, M]). Models compute the user side once per
chunk and the item side per call, so memory stays bounded on large catalogues.

Protocols (both mask the user's history the same way, except the target itself):

- full (``num_negatives=None``): the target's rank among all items 1..n_items, computed over
  chunks of ``user_chunk`` users x ``item_chunk`` items;
- sampled: the target against ``num_negatives`` distinct items drawn uniformly from the items
  outside the history and never the target (``towerkit.core.metrics.sample_negatives``).

Ranks are 1-based and pessimistic: an item scoring the same as the target counts as above it
(the core metrics' tie rule). From rank r: HR@K = [r <= K], NDCG@K = [r <= K] / log2(r + 1),
MRR = 1 / r, mean rank = r; each averaged over users. Per-user values stay in ``EvalResult`` for
paired bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import Progress

from towerkit.core.errors import TowerkitError
from towerkit.core.metrics import sample_negatives

ItemScorer = Callable[[torch.Tensor], torch.Tensor]
UserScorer = Callable[[torch.Tensor, torch.Tensor], ItemScorer]
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ranks: np.ndarray  # [n_users] 1-based rank of each user's target

    def per_user(self, metric: str) -> np.ndarray:
        """One value per user of ``hr@K``, ``ndcg@K``, ``mrr`` or ``mean_rank``."""
        return per_user_values(self.ranks, metric)


def per_user_values(ranks: np.ndarray, metric: str) -> np.ndarray:
    ranks = ranks.astype(np.float64)
    if metric == "mrr":
        return 1.0 / ranks
    if metric == "mean_rank":
        return ranks
    name, _, k_text = metric.partition("@")
    if name in ("hr", "ndcg") and k_text.isdigit():
        hit = ranks <= int(k_text)
        return (
            hit.astype(np.float64) if name == "hr" else np.where(hit, 1.0 / np.log2(ranks + 1), 0.0)
        )
    raise TowerkitError(f"metric: expected hr@K, ndcg@K, mrr or mean_rank, got {metric!r}")


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    names = [f"{m}@{k}" for k in sorted(set(ks)) for m in ("hr", "ndcg")] + ["mrr", "mean_rank"]
    out = {name: float(per_user_values(ranks, name).mean()) for name in names}
    out["n_users"] = float(len(ranks))
    return out


def pad_left(histories: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """[n, max_len] LongTensor, each history's last max_len items right-aligned, 0 before."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, history in enumerate(histories):
        tail = history[-max_len:]
        if len(tail):
            out[row, max_len - len(tail) :] = tail
    return torch.from_numpy(out)


def evaluate_next_item(
    scorer: UserScorer,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    *,
    max_len: int,
    ks: Iterable[int] = DEFAULT_KS,
    num_negatives: int | None = None,
    seed: int = 0,
    user_chunk: int = 256,
    item_chunk: int = 8192,
    mask_history: bool = True,
    progress: bool = False,
) -> EvalResult:
    """Rank ``targets[u]`` for every user u given ``histories[u]`` (item ids 1..n_items)."""
    targets = np.asarray(targets, dtype=np.int64)
    _check_inputs(histories, targets, n_items, user_chunk, item_chunk)
    if num_negatives is None:
        ranks = _full_ranks(
            scorer, histories, targets, n_items, max_len, user_chunk, item_chunk, mask_history,
            progress,
        )  # fmt: skip
    else:
        ranks = _sampled_ranks(
            scorer, histories, targets, n_items, max_len, num_negatives, seed, user_chunk,
            mask_history, progress,
        )  # fmt: skip
    return EvalResult(metrics_from_ranks(ranks, ks), ranks)


def _check_inputs(
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    user_chunk: int,
    item_chunk: int,
) -> None:
    if targets.ndim != 1 or len(targets) != len(histories) or len(targets) == 0:
        raise TowerkitError(
            f"targets: expected one item per user ({len(histories)} histories), "
            f"got shape {targets.shape}"
        )
    if targets.min() < 1 or targets.max() > n_items:
        raise TowerkitError(
            f"targets: item ids must lie in 1..{n_items}, got {targets.min()}..{targets.max()}"
        )
    if user_chunk < 1 or item_chunk < 1:
        raise TowerkitError("user_chunk, item_chunk: expected >= 1")


def _user_chunks(n_users: int, size: int, progress: bool, label: str) -> Iterator[np.ndarray]:
    starts = range(0, n_users, size)
    if not progress:
        yield from (np.arange(s, min(s + size, n_users)) for s in starts)
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=n_users)
        for start in starts:
            rows = np.arange(start, min(start + size, n_users))
            yield rows
            bar.advance(task, len(rows))


def _full_ranks(
    scorer: UserScorer,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    max_len: int,
    user_chunk: int,
    item_chunk: int,
    mask_history: bool,
    progress: bool,
) -> np.ndarray:
    ranks = np.zeros(len(targets), dtype=np.int64)
    with torch.no_grad():
        for rows in _user_chunks(len(targets), user_chunk, progress, "ranking all items"):
            score_items = scorer(
                torch.from_numpy(rows), pad_left([histories[r] for r in rows], max_len)
            )
            target = torch.from_numpy(targets[rows])
            target_score = _checked(score_items(target.unsqueeze(1)), (len(rows), 1))
            hist_rows, hist_items = _history_entries(histories, rows, mask_history)
            above = torch.zeros(len(rows), dtype=torch.long)
            for start in range(1, n_items + 1, item_chunk):
                stop = min(start + item_chunk, n_items + 1)
                items = torch.arange(start, stop)
                scores = _checked(score_items(items), (len(rows), stop - start))
                counted = torch.ones_like(scores, dtype=torch.bool)
                inside = (hist_items >= start) & (hist_items < stop)
                counted[hist_rows[inside], hist_items[inside] - start] = False
                own = (target >= start) & (target < stop)
                counted[torch.nonzero(own).squeeze(1), target[own] - start] = False
                above += ((scores >= target_score) & counted).sum(dim=1)
            ranks[rows] = (above + 1).numpy()
    return ranks


def _history_entries(
    histories: Sequence[np.ndarray], rows: np.ndarray, mask_history: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in chunk, item id) of every history item of the chunk's users."""
    if not mask_history:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    parts = [np.unique(histories[r]) for r in rows]
    chunk_rows = np.repeat(np.arange(len(rows)), [len(p) for p in parts])
    items = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return torch.from_numpy(chunk_rows).long(), torch.from_numpy(items.astype(np.int64))


def _sampled_ranks(
    scorer: UserScorer,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    max_len: int,
    num_negatives: int,
    seed: int,
    user_chunk: int,
    mask_history: bool,
    progress: bool,
) -> np.ndarray:
    # padding id 0 is never a candidate; the history is not either when it is masked
    exclude = [np.append(h, 0) if mask_history else np.zeros(1, np.int64) for h in histories]
    positives = [[int(t)] for t in targets]
    pair_users, candidates = sample_negatives(positives, n_items + 1, num_negatives, exclude, seed)
    if not np.array_equal(pair_users, np.arange(len(targets))):
        raise TowerkitError("sampled evaluation: expected exactly one candidate row per user")
    ranks = np.zeros(len(targets), dtype=np.int64)
    with torch.no_grad():
        for rows in _user_chunks(len(targets), user_chunk, progress, "ranking sampled items"):
            score_items = scorer(
                torch.from_numpy(rows), pad_left([histories[r] for r in rows], max_len)
            )
            chosen = torch.from_numpy(candidates[rows])
            scores = _checked(score_items(chosen), tuple(chosen.shape))
            above = (scores[:, 1:] >= scores[:, :1]).sum(dim=1)
            ranks[rows] = (above + 1).numpy()
    return ranks


def _checked(scores: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(scores.shape) != shape:
        raise TowerkitError(f"scorer: returned shape {tuple(scores.shape)}, expected {shape}")
    if torch.isnan(scores).any():
        raise TowerkitError("scorer: returned NaN scores")
    return scores.float().cpu()

"""A user's swipe history as of a moment: the query tower's view of what the user did so far.

For every query (a user row and an instant) ``history_as_of`` takes the user's interactions
strictly before that instant: the last ``history_len`` liked and passed items (as candidate id
indices, most recent last, ``PAD`` on the left) and two numbers, log1p(count) / 5 and the like
rate smoothed towards the training prior (with ``recent`` > 0 a third: the like rate of their
last ``recent`` swipes, smoothed the same way: a user's mood drifts within a session). This is
how a served model sees a user (everything they swiped before the request), so training examples use the same as-of view of the training
log and held-out events the log up to their own instant; model weights never see the future.
A newcomer with no history gets all padding and the prior: the static features carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from towerkit.rec.twotower.features import TensorRecord

PAD = -1
SMOOTHING = 5.0  # pseudo-interactions at the prior like rate
RECENT_SMOOTHING = 2.0  # the same for the recent window, which holds few swipes
COUNT_SCALE = 5.0  # log1p(count) / 5 stays near [0, 1.5] for counts up to thousands
NEVER = np.iinfo(np.int64).max  # "now": every logged interaction is before it


@dataclass
class HistoryTensors(TensorRecord):
    """``liked`` / ``passed`` (n, L) int64 candidate id indices (PAD = none), ``stats`` (n, 2),
    or (n, 3) with a recent window."""

    liked: Tensor
    passed: Tensor
    stats: Tensor

    FIELDS: ClassVar[tuple[str, ...]] = ("liked", "passed", "stats")

    def inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.liked, self.passed, self.stats


def history_stats(
    n_liked: np.ndarray,
    n_total: np.ndarray,
    prior: float,
    recent: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(n, 2) float32: log1p(count) / COUNT_SCALE and the smoothed like rate; (n, 3) with
    ``recent`` = (likes, swipes) in the recent window: their smoothed like rate added."""
    rate = (n_liked + SMOOTHING * prior) / (n_total + SMOOTHING)
    columns = [np.log1p(n_total) / COUNT_SCALE, rate]
    if recent is not None:
        columns.append((recent[0] + RECENT_SMOOTHING * prior) / (recent[1] + RECENT_SMOOTHING))
    return np.stack(columns, axis=1).astype(np.float32)


def from_item_lists(
    liked: list[list[int]],
    passed: list[list[int]],
    history_len: int,
    prior: float,
    recent: int = 0,
) -> HistoryTensors:
    """Histories from explicit id-index lists (oldest first), e.g. the swipes a request carries;
    counts and rates use the whole lists, the item slots their last ``history_len`` entries.

    Two lists do not say how likes and passes interleave, so with ``recent`` > 0 the recent
    window is all of a short history and, for a longer one, read at the whole history's like
    rate."""
    n = len(liked)
    out_liked = np.full((n, history_len), PAD, dtype=np.int64)
    out_passed = np.full((n, history_len), PAD, dtype=np.int64)
    for row, (likes, passes) in enumerate(zip(liked, passed, strict=True)):
        _place(out_liked[row], np.asarray(likes, dtype=np.int64))
        _place(out_passed[row], np.asarray(passes, dtype=np.int64))
    n_liked = np.array([len(x) for x in liked], dtype=np.float64)
    n_total = n_liked + np.array([len(x) for x in passed], dtype=np.float64)
    window = None
    if recent:
        swipes = np.minimum(n_total, recent)
        window = (n_liked * swipes / np.maximum(n_total, 1.0), swipes)
    stats = history_stats(n_liked, n_total, prior, window)
    return HistoryTensors(
        torch.from_numpy(out_liked), torch.from_numpy(out_passed), torch.from_numpy(stats)
    )


def _place(slots: np.ndarray, items: np.ndarray) -> None:
    """Right-align the last len(slots) items in slots (left stays PAD)."""
    if len(slots) == 0 or len(items) == 0:
        return
    tail = items[-len(slots) :]
    slots[len(slots) - len(tail) :] = tail


def history_as_of(
    log_users: np.ndarray,
    log_items: np.ndarray,
    log_labels: np.ndarray,
    log_times: np.ndarray,
    query_users: np.ndarray,
    query_times: np.ndarray,
    history_len: int,
    prior: float,
    recent: int = 0,
) -> HistoryTensors:
    """For each (query user, query time): the user's log entries strictly before that time.

    ``log_items`` are candidate id indices; times are int64 (any unit, the same for both);
    ``NEVER`` as a query time takes the whole log. ``recent`` > 0 adds the like rate of the
    last ``recent`` of those entries (ties in time in log order).
    """
    order = np.lexsort((log_times, log_users))
    users, times = log_users[order], log_times[order]
    items, liked = log_items[order], log_labels[order] > 0
    starts = np.searchsorted(users, query_users, side="left")
    ends = np.searchsorted(users, query_users, side="right")
    like_cum = np.concatenate([[0], np.cumsum(liked)])  # likes among the first i sorted entries
    like_positions = np.flatnonzero(liked)
    pass_positions = np.flatnonzero(~liked)
    n = len(query_users)
    out_liked = np.full((n, history_len), PAD, dtype=np.int64)
    out_passed = np.full((n, history_len), PAD, dtype=np.int64)
    n_liked = np.zeros(n, dtype=np.float64)
    n_total = np.zeros(n, dtype=np.float64)
    recent_liked = np.zeros(n, dtype=np.float64)
    recent_total = np.zeros(n, dtype=np.float64)
    for q in range(n):
        start, end = int(starts[q]), int(ends[q])
        cut = start + int(np.searchsorted(times[start:end], query_times[q], side="left"))
        likes = int(like_cum[cut] - like_cum[start])
        passes = (cut - start) - likes
        n_liked[q], n_total[q] = likes, cut - start
        window_start = max(start, cut - recent)
        recent_liked[q] = like_cum[cut] - like_cum[window_start]
        recent_total[q] = cut - window_start
        if history_len and likes:
            first = int(like_cum[cut]) - min(likes, history_len)
            _place(out_liked[q], items[like_positions[first : int(like_cum[cut])]])
        if history_len and passes:
            pass_cum_cut = cut - int(like_cum[cut])  # passes among the first cut entries
            first = pass_cum_cut - min(passes, history_len)
            _place(out_passed[q], items[pass_positions[first:pass_cum_cut]])
    window = (recent_liked, recent_total) if recent else None
    stats = history_stats(n_liked, n_total, prior, window)
    return HistoryTensors(
        torch.from_numpy(out_liked), torch.from_numpy(out_passed), torch.from_numpy(stats)
    )

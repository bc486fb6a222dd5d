"""Online use of a trained sequential model: top-K for one user, and its latency."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from towerkit.core.errors import TowerkitError
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.metrics.evaluate import pad_left
from towerkit.rec.sequential.training import scorer_for


def history_for(data: SeqDataset, user: str | None, items: str | None) -> np.ndarray:
    """A raw user's whole sequence, or comma-separated raw item ids (exactly one of them)."""
    if (user is None) == (items is None):
        raise TowerkitError("recommend: give exactly one of --user and --items")
    if user is not None:
        if user not in data.user_index:
            raise TowerkitError(f"--user {user!r}: not a user of {data.name}")
        return data.sequences[data.user_index[user]]
    raw = [s.strip() for s in (items or "").split(",") if s.strip()]
    unknown = [r for r in raw if r not in data.item_index]
    if unknown or not raw:
        raise TowerkitError(
            f"--items: {unknown[0]!r} is not an item of {data.name}"
            if unknown
            else "--items: expected one or more comma-separated item ids"
        )
    return np.array([data.item_index[r] for r in raw], dtype=np.int64)


def top_k(
    model: nn.Module, history: np.ndarray, n_items: int, k: int, user_row: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, scores) of the k best items not in the history; ``user_row``: the user's row
    in the training data (fused models read their preference text), -1 for a bare history."""
    max_len = int(getattr(getattr(model, "config", None), "max_len", 50))
    with torch.no_grad():
        scores = scorer_for(model)(torch.tensor([user_row]), pad_left([history], max_len))(
            torch.arange(1, n_items + 1)
        )[0]
    scores[torch.from_numpy(np.unique(history) - 1)] = float("-inf")
    best = torch.topk(scores, min(k, n_items - len(np.unique(history))))
    return best.indices.numpy() + 1, best.values.numpy()


def recommend(
    model: nn.Module, data: SeqDataset, *, user: str | None, items: str | None, k: int = 10
) -> list[tuple[str, float, str]]:
    if k < 1:
        raise TowerkitError(f"--k: expected >= 1, got {k}")
    model.eval()
    history = history_for(data, user, items)
    row = data.user_index[user] if user is not None else -1
    ids, scores = top_k(model, history, data.n_items, k, row)
    return [
        (data.item_ids[i], float(s), data.item_texts[i]) for i, s in zip(ids, scores, strict=True)
    ]


def scoring_latency(
    model: nn.Module, data: SeqDataset, n_requests: int = 300, k: int = 10, seed: int = 0
) -> dict[str, float]:
    """Milliseconds to score all items and take the top k for one random user's history, one
    request at a time on one thread (p50, p99, mean), after 20 warm-up requests."""
    model.eval()
    rng = np.random.default_rng(seed)
    users = rng.integers(data.n_users, size=n_requests + 20)
    times = []
    for index, user in enumerate(users):
        started = time.perf_counter()
        top_k(model, data.history(int(user), "test"), data.n_items, k, int(user))
        if index >= 20:
            times.append((time.perf_counter() - started) * 1000)
    values = np.array(times)
    return {
        "latency_p50_ms": float(np.percentile(values, 50)),
        "latency_p99_ms": float(np.percentile(values, 99)),
        "latency_mean_ms": float(values.mean()),
    }

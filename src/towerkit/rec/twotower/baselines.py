"""Baselines on the same split: popularity, and ALS and BPR from ``implicit`` (CPU).

All three learn from the training likes only (the implicit-feedback matrix users x items).
ALS and BPR have no vector for a user without training likes: such users get the popularity
ranking, as a deployed CF system would serve them; ``warm_*`` metrics leave them out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from towerkit.core.errors import ConfigError
from towerkit.rec.twotower.prepare import EncodedInteractions

BASELINES = ("popularity", "als", "bpr")


@dataclass
class BaselineConfig:
    names: list[str] | None = None  # None: all of popularity, als, bpr
    als_factors: int = 64
    als_regularization: float = 0.05
    als_alpha: float = 1.0
    als_iterations: int = 15
    bpr_factors: int = 64
    bpr_learning_rate: float = 0.01
    bpr_regularization: float = 0.01
    bpr_iterations: int = 100
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [n for n in self.names or [] if n not in BASELINES]
        if unknown:
            raise ConfigError(
                f"baselines.names: {unknown[0]!r} is not one of {', '.join(BASELINES)}"
            )

    @property
    def chosen(self) -> list[str]:
        return list(BASELINES) if self.names is None else list(self.names)


class PopularityScorer:
    """Every user gets the items ranked by their number of training likes."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = torch.from_numpy(counts.astype(np.float32))

    def full_scores(self, user_rows: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(user_rows), -1)

    def pair_scores(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        return self.counts.numpy()[item_rows]


class FactorScorer:
    """Dot products of learned factors; users without training likes fall back to popularity."""

    def __init__(
        self, users: np.ndarray, items: np.ndarray, known: np.ndarray, popularity: PopularityScorer
    ) -> None:
        self.users = torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32))
        self.items = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
        self.known = torch.from_numpy(known)
        self.popularity = popularity

    def full_scores(self, user_rows: torch.Tensor) -> torch.Tensor:
        scores = self.users[user_rows] @ self.items.T
        fallback = self.popularity.full_scores(user_rows)
        return torch.where(self.known[user_rows].unsqueeze(1), scores, fallback)

    def pair_scores(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        scores = (self.users[user_rows] * self.items[item_rows]).sum(dim=1).numpy()
        # one scale for AUC: unknown users are ranked by popularity rank among all items
        pop = self.popularity.pair_scores(user_rows, item_rows)
        pop_scaled = pop / max(float(pop.max()), 1.0)
        return np.where(self.known.numpy()[user_rows], scores, pop_scaled)


def like_matrix(train: EncodedInteractions, n_users: int, n_items: int) -> sp.csr_matrix:
    liked = train.labels > 0
    data = np.ones(int(liked.sum()), dtype=np.float32)
    matrix = sp.csr_matrix(
        (data, (train.user_rows[liked], train.item_rows[liked])), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def fit_baselines(
    config: BaselineConfig, train: EncodedInteractions, n_users: int, n_items: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """name -> scorer, and name -> fit seconds."""
    matrix = like_matrix(train, n_users, n_items)
    popularity = PopularityScorer(np.asarray(matrix.sum(axis=0)).ravel())
    known = np.asarray(matrix.sum(axis=1)).ravel() > 0
    scorers: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name in config.chosen:
        started = time.perf_counter()
        if name == "popularity":
            scorers[name] = popularity
        else:
            users, items = _fit_implicit(name, config, matrix)
            scorers[name] = FactorScorer(users, items, known, popularity)
        seconds[name] = time.perf_counter() - started
    return scorers, seconds


def _fit_implicit(
    name: str, config: BaselineConfig, matrix: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit warns (and slows) with threaded BLAS
        if name == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            model: Any = AlternatingLeastSquares(
                factors=config.als_factors,
                regularization=config.als_regularization,
                alpha=config.als_alpha,
                iterations=config.als_iterations,
                num_threads=config.threads,
                random_state=config.seed,
            )
        else:
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            model = BayesianPersonalizedRanking(
                factors=config.bpr_factors,
                learning_rate=config.bpr_learning_rate,
                regularization=config.bpr_regularization,
                iterations=config.bpr_iterations,
                num_threads=config.threads,
                random_state=config.seed,
            )
        model.fit(matrix, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)

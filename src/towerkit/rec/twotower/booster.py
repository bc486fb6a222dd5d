"""Like booster: gradient-boosted trees on as-of swipe statistics, blended into the like logit.

On the validation split a gradient-boosted model on a dozen hand-made as-of features scores
about as well as the network's like path, and the blend of the two better than either: the trees
and the network err differently (BENCHMARKS.md, "Rec two-tower: what the table shows"). The
features of a (user, movie) pair as of the scored moment:

- the movie's log1p(count) and like rate (smoothed towards the prior) in the stats log,
- the user's history statistics (``history.py``: count, like rate, recent like rate),
- for two item-item cosines from the stats log (like = +1 / pass = -1 vectors over users, and
  swiped-at-all vectors), the mean and max cosine of the movie to the user's last likes, and to
  their last passes.

Fitted after the network, on the last ``fit_fraction`` of the training log (by time), with the
movie statistics and cosines from the log before that part, so that its features are out of
sample as they are at prediction time; then the statistics are recomputed from the whole log,
which is what scoring uses. LightGBM, saved as its own text format (no pickle), beside the
weights. The blend is ``(1 - weight) * network logit + weight * booster logit``; the network is
trained without it. Retrieval (tower embeddings, the exported query tower) never reads it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from towerkit.core.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from towerkit.rec.twotower.model import TwoTowerModel
    from towerkit.rec.twotower.prepare import PreparedData

MODEL_FILE = "like_booster.txt"
STATS_FILE = "like_booster_stats.npz"
META_FILE = "like_booster.json"
SMOOTHING = 5.0  # pseudo-swipes at the prior for a movie's like rate
_CHUNK_CELLS = 1 << 24  # cosine rows computed at once: chunk x n_ids floats
DENSE_IDS = 4096  # up to this many ids both cosine tables are kept dense (2 x 64 MiB at most)
# up to this many rows a prediction runs on the calling thread: for a served request's few
# rows, waking OpenMP's pool costs about as much as the prediction itself (more when the cores
# are busy), and a server already runs requests in parallel; larger batches use every core
SMALL_PREDICT = 1024


@dataclass(frozen=True)
class BoosterConfig:
    enabled: bool = False
    weight: float = 0.6  # of the booster's logit in the like logit
    fit_fraction: float = 0.3  # the last part of the training log (by time) it learns from
    trees: int = 200
    learning_rate: float = 0.05
    max_depth: int = 4
    min_child_samples: int = 20

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"booster.weight: expected 0..1, got {self.weight}")
        if not 0.0 < self.fit_fraction < 1.0:
            raise ConfigError(f"booster.fit_fraction: expected 0 < x < 1, got {self.fit_fraction}")
        if min(self.trees, self.max_depth, self.min_child_samples) < 1:
            raise ConfigError("booster: trees, max_depth and min_child_samples: expected >= 1")
        if self.learning_rate <= 0:
            raise ConfigError(f"booster.learning_rate: expected > 0, got {self.learning_rate}")


class SwipeStats:
    """Per candidate id index: log1p(count) and smoothed like rate in a log, and two sparse
    id x user matrices with L2-normalised rows, whose row products are the item-item cosines."""

    def __init__(
        self,
        count: np.ndarray,
        rate: np.ndarray,
        signed: sparse.csr_matrix,
        swiped: sparse.csr_matrix,
    ) -> None:
        self.count, self.rate, self.signed, self.swiped = count, rate, signed, swiped
        self._transposes: tuple[sparse.csr_matrix, sparse.csr_matrix] | None = None
        self._dense_tables: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def of_log(
        cls, users: np.ndarray, ids: np.ndarray, labels: np.ndarray, n_users: int, n_ids: int,
        prior: float,
    ) -> SwipeStats:  # fmt: skip
        count = np.bincount(ids, minlength=n_ids).astype(np.float64)
        likes = np.bincount(ids, weights=(labels > 0).astype(np.float64), minlength=n_ids)
        rate = (likes + SMOOTHING * prior) / (count + SMOOTHING)
        signed = np.where(labels > 0, 1.0, -1.0)
        matrices = [
            _row_normalised(sparse.csr_matrix((v, (ids, users)), shape=(n_ids, n_users)))
            for v in (signed, np.ones(len(ids)))
        ]
        return cls(np.log1p(count), rate, *matrices)

    @property
    def n_ids(self) -> int:
        return int(self.count.shape[0])

    def cosines(self, candidates: np.ndarray, *histories: np.ndarray) -> list[list[np.ndarray]]:
        """For each matrix (signed, swiped) and each of ``histories`` ((n, L) ids, negative =
        padding, cosine 0), the (n, L) cosines of ``candidates`` (n,) to the history's items."""
        out = [[np.zeros(h.shape, dtype=np.float32) for h in histories] for _ in range(2)]
        if all(h.shape[1] == 0 for h in histories):
            return out
        present = [h >= 0 for h in histories]
        columns = [np.where(p, h, 0) for p, h in zip(present, histories, strict=True)]
        dense = self._dense()
        if dense is not None:  # a served request: a lookup instead of two sparse products
            for cosines, table in zip(out, dense, strict=True):
                for cosine, mask, column in zip(cosines, present, columns, strict=True):
                    cosine[:] = np.where(mask, table[candidates[:, None], column], 0.0)
            return out
        chunk = max(1, _CHUNK_CELLS // max(self.n_ids, 1))
        for start in range(0, len(candidates), chunk):
            rows = slice(start, start + chunk)
            for cosines, matrix, transposed in zip(
                out, self._matrices(), self._transposed(), strict=True
            ):
                block = (matrix[candidates[rows]] @ transposed).toarray()  # one product per chunk
                for cosine, mask, column in zip(cosines, present, columns, strict=True):
                    picked = np.take_along_axis(block, column[rows], axis=1)
                    cosine[rows] = np.where(mask[rows], picked, 0.0)
        return out

    def _dense(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Both id x id cosine tables as float32, for catalogues of up to DENSE_IDS ids (made
        once, by the same sparse products, so every value equals the chunked path's)."""
        if self.n_ids > DENSE_IDS:
            return None
        if self._dense_tables is None:
            tables = []
            for matrix, transposed in zip(self._matrices(), self._transposed(), strict=True):
                tables.append((matrix @ transposed).toarray().astype(np.float32))
            self._dense_tables = (tables[0], tables[1])
        return self._dense_tables

    def _matrices(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        return self.signed, self.swiped

    def _transposed(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """user x id CSR copies, made once: a CSR @ CSR product converts nothing per call."""
        if self._transposes is None:
            self._transposes = (self.signed.T.tocsr(), self.swiped.T.tocsr())
        return self._transposes

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"count": self.count, "rate": self.rate}
        for name, matrix in (("signed", self.signed), ("swiped", self.swiped)):
            arrays |= {f"{name}_{k}": getattr(matrix, k) for k in ("data", "indices", "indptr")}
            arrays[f"{name}_shape"] = np.asarray(matrix.shape)
        with path.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> SwipeStats:
        with np.load(path, allow_pickle=False) as saved:

            def matrix(name: str) -> sparse.csr_matrix:
                parts = (saved[f"{name}_{k}"] for k in ("data", "indices", "indptr"))
                return sparse.csr_matrix(tuple(parts), shape=tuple(saved[f"{name}_shape"]))

            return cls(saved["count"], saved["rate"], matrix("signed"), matrix("swiped"))


def _row_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    matrix.sum_duplicates()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)
    return sparse.csr_matrix(sparse.diags(scale) @ matrix)


def booster_features(
    stats: SwipeStats,
    candidates: np.ndarray,
    liked: np.ndarray,
    passed: np.ndarray,
    user_stats: np.ndarray,
) -> np.ndarray:
    """(n, 2 + user stats + 8) float32 features of the pairs (see the module docstring)."""
    columns = [stats.count[candidates, None], stats.rate[candidates, None], user_stats]
    signed, swiped = stats.cosines(candidates, liked, passed)
    for index, history in enumerate((liked, passed)):
        present = history >= 0
        count = present.sum(axis=1)
        for cosine in (signed[index], swiped[index]):
            mean = cosine.sum(axis=1) / np.maximum(count, 1)
            top = np.where(present, cosine, -1.0).max(axis=1, initial=-1.0)
            columns.append(np.stack([mean, np.where(count > 0, top, 0.0)], axis=1))
    return np.concatenate(columns, axis=1).astype(np.float32)


@dataclass
class FitLog:
    """The training log as the booster learns from it: candidate id indices, labels, times and
    each event's as-of history (liked, passed, stats), in any order."""

    users: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    times: np.ndarray
    liked: np.ndarray
    passed: np.ndarray
    user_stats: np.ndarray
    n_users: int
    n_ids: int
    prior: float


class LikeBooster:
    """A fitted LightGBM like-vs-pass model and the swipe statistics its features read."""

    def __init__(self, model: Any, stats: SwipeStats, config: BoosterConfig) -> None:
        self.model, self.stats, self.config = model, stats, config

    @property
    def weight(self) -> float:
        return self.config.weight

    @classmethod
    def fit(cls, config: BoosterConfig, log: FitLog, seed: int = 0) -> LikeBooster:
        import lightgbm as lgb

        order = np.argsort(log.times, kind="stable")
        cut = round(len(order) * (1.0 - config.fit_fraction))
        early, late = order[:cut], order[cut:]
        if len(late) == 0 or len(np.unique(log.labels[late])) < 2:
            raise ConfigError(
                f"booster.fit_fraction={config.fit_fraction}: the last part of the training log"
                " must hold both likes and passes"
            )
        before = _stats(log, early)
        features = booster_features(
            before, log.ids[late], log.liked[late], log.passed[late], log.user_stats[late]
        )
        params = {
            "objective": "binary", "learning_rate": config.learning_rate,
            "max_depth": config.max_depth, "num_leaves": 2**config.max_depth - 1,
            "min_child_samples": config.min_child_samples, "seed": seed,
            "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1,
        }  # fmt: skip
        labels = (log.labels[late] > 0).astype(np.float64)
        model = lgb.train(params, lgb.Dataset(features, labels), num_boost_round=config.trees)
        return cls(model, _stats(log, order), config)

    def logits(
        self, candidates: np.ndarray, liked: np.ndarray, passed: np.ndarray, user_stats: np.ndarray
    ) -> np.ndarray:
        if len(candidates) == 0:
            return np.zeros(0, dtype=np.float32)
        features = booster_features(self.stats, candidates, liked, passed, user_stats)
        threads = 1 if len(features) <= SMALL_PREDICT else 0  # 0: LightGBM's default, all
        raw = self.model.predict(features, raw_score=True, num_threads=threads)
        return np.asarray(raw, dtype=np.float32)

    def save(self, directory: Path) -> None:
        self.model.save_model(str(directory / MODEL_FILE))
        self.stats.save(directory / STATS_FILE)
        (directory / META_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @staticmethod
    def present(directory: Path) -> bool:
        return (directory / MODEL_FILE).is_file()

    @classmethod
    def load(cls, directory: Path) -> LikeBooster:
        import lightgbm as lgb

        try:
            config = BoosterConfig(**json.loads((directory / META_FILE).read_text()))
            model = lgb.Booster(model_file=str(directory / MODEL_FILE))
            stats = SwipeStats.load(directory / STATS_FILE)
        except (OSError, ValueError, TypeError, KeyError, lgb.basic.LightGBMError) as exc:
            raise ModelLoadError(f"{directory}: like booster files unreadable ({exc})") from exc
        return cls(model, stats, config)


def _stats(log: FitLog, rows: np.ndarray) -> SwipeStats:
    return SwipeStats.of_log(
        log.users[rows], log.ids[rows], log.labels[rows], log.n_users, log.n_ids, log.prior
    )


def attach_booster(
    config: BoosterConfig, model: TwoTowerModel, prepared: PreparedData, seed: int
) -> dict[str, float]:
    """Fit the booster on ``prepared``'s training log (a refit's: training + validation) and
    blend it into ``model``'s like logit; ``{"booster_seconds": s}``, or {} when not enabled."""
    if not config.enabled:
        return {}
    started = time.perf_counter()
    train, history = prepared.train, prepared.train_history
    if history is None or train.times is None:
        raise ConfigError("booster.enabled needs the user's history: set features.history_len")
    ids = prepared.artifacts.candidate_tables.ids.numpy()[train.item_rows]
    log = FitLog(
        train.user_rows, ids, train.labels, train.times, history.liked.numpy(),
        history.passed.numpy(), history.stats.numpy(), prepared.n_users,
        model.config.candidate.n_ids, prepared.like_prior,
    )  # fmt: skip
    model.booster = LikeBooster.fit(config, log, seed)
    return {"booster_seconds": time.perf_counter() - started}

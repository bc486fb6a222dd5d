"""What ``towerkit rec serve`` serves, without the HTTP: the model version a registry reference
names now, its candidate index, and top-k with already-seen candidates left out.

Every recommended item carries the model's like probability (the like-vs-pass logit the AUC is
measured on, through a sigmoid). ``rank_by="like"`` is the usual second stage: retrieval fetches
a ``pool`` of candidates and they are re-ranked by that probability.

``RecService.reload()`` resolves the reference again (an alias moved by ``towerkit registry
rollback`` is picked up) and swaps model and index in one assignment, so requests running
meanwhile finish on the old pair and later ones see the new pair.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.core.registry import ModelRegistry
from towerkit.rec.serving.index import INDEX_KINDS, CandidateIndex, normalize
from towerkit.rec.twotower.api import TwoTowerBundle, load_bundle
from towerkit.rec.twotower.towers import TowerOutput

DEFAULT_REF = "rec-two-tower@production"
MAX_K = 1000
Ranking = Literal["retrieval", "like"]
RANKINGS: tuple[str, ...] = get_args(Ranking)
DEFAULT_POOL = 100  # candidates retrieval hands to the like re-ranking
TUNING_USERS = 2000  # query embeddings of up to this many known users tune IVF / HNSW


class UnknownUserError(TowerkitError):
    """A user id the model has never seen (describe the user with features instead)."""


@dataclass(frozen=True)
class Recommended:
    item_id: str
    score: float  # retrieval: cosine of the query and candidate embeddings
    like_probability: float | None  # None where the request did not ask for it


@dataclass(frozen=True)
class Served:
    """One loaded model version and the index over its candidate embeddings."""

    ref: str
    bundle: TwoTowerBundle
    index: CandidateIndex
    loaded_at: str
    load_seconds: float

    @property
    def version(self) -> int | None:
        return self.bundle.version.version if self.bundle.version is not None else None

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.ref,
            "uri": self.bundle.label,
            "version": self.version,
            "n_candidates": len(self.index),
            "dim": self.bundle.dim,
            "index": self.index.report.as_dict(),
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
        }


def build_served(
    ref: str,
    index_kind: str = "exact",
    registry: ModelRegistry | None = None,
    target_recall: float = 0.95,
) -> Served:
    """Load the version ``ref`` names now and index its candidates (approximate kinds are tuned
    on the query embeddings of a sample of known users)."""
    if index_kind not in INDEX_KINDS:
        raise TowerkitError(f"--index {index_kind!r}; expected one of {', '.join(INDEX_KINDS)}")
    if not 0.0 < target_recall <= 1.0:  # before the model loads, whatever the index kind
        raise TowerkitError(f"--target-recall {target_recall}: expected a value in (0, 1]")
    started = time.perf_counter()
    bundle = load_bundle(ref, registry)
    queries = None
    if index_kind != "exact":
        users = bundle.features.query_keys
        step = max(1, len(users) // TUNING_USERS)
        queries = bundle.query_embeddings(users[::step][:TUNING_USERS])
    index = CandidateIndex.build(
        bundle.candidate_embeddings(),
        bundle.candidate_ids(),
        kind=index_kind,
        queries=queries,
        target_recall=target_recall,
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Served(ref, bundle, index, now, time.perf_counter() - started)


class RecService:
    """Thread-safe top-k over the currently loaded ``Served``."""

    def __init__(
        self,
        ref: str = DEFAULT_REF,
        index_kind: str = "exact",
        registry: ModelRegistry | None = None,
        target_recall: float = 0.95,
    ) -> None:
        self.ref, self.index_kind, self.registry = ref, index_kind, registry
        self.target_recall = target_recall
        self._reload_lock = threading.Lock()
        self.served = build_served(ref, index_kind, registry, target_recall)

    def reload(self) -> tuple[Served, Served]:
        """(before, after): the version the reference names now replaces the loaded one."""
        with self._reload_lock:
            before = self.served
            self.served = build_served(self.ref, self.index_kind, self.registry, self.target_recall)
            return before, self.served

    def recommend(
        self,
        user_id: str | None = None,
        features: Mapping[str, Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[str] = (),
        liked: Sequence[str] = (),
        passed: Sequence[str] = (),
        rank_by: Ranking = "retrieval",
        pool: int = DEFAULT_POOL,
        like_probability: bool = True,
    ) -> tuple[Served, list[Recommended]]:
        """Top ``k``, best first, without ``exclude`` and (``exclude_seen``) the items the user
        already interacted with: a known user's training interactions and the ``liked`` /
        ``passed`` ids a request with ``features`` carries (a history model also reads those as
        the user's history). ``rank_by="like"``: the best ``k`` by like probability among the
        top ``max(k, pool)`` by retrieval. ``like_probability=False`` skips the like-vs-pass
        model (its towers, attention and booster): the items carry None."""
        served = self.served  # one read: a reload meanwhile does not mix two versions
        if not 1 <= k <= MAX_K:
            raise TowerkitError(f"k={k}: expected 1 <= k <= {MAX_K}")
        if rank_by not in RANKINGS:
            raise TowerkitError(f"rank_by={rank_by!r}: expected one of {', '.join(RANKINGS)}")
        if not 1 <= pool <= MAX_K:
            raise TowerkitError(f"pool={pool}: expected 1 <= pool <= {MAX_K}")
        if rank_by == "like" and not like_probability:
            raise TowerkitError(
                "rank_by=like ranks by the like probability: drop like_probability=false"
            )
        query = _query_output(served.bundle, user_id, features, liked, passed, like_probability)
        excluded = {str(item) for item in exclude}
        if exclude_seen:
            excluded |= set(liked) | set(passed)
        if exclude_seen and user_id is not None:
            excluded |= served.bundle.seen_items(user_id)
        fetch = max(k, pool) if rank_by == "like" else k
        found = top_k_excluding(served, query.embedding.numpy(), fetch, excluded)
        if not like_probability:
            return served, [Recommended(item, score, None) for item, score in found]
        probabilities = served.bundle.like_probabilities(query, [item for item, _ in found])
        out = [
            Recommended(item, score, float(p))
            for (item, score), p in zip(found, probabilities, strict=True)
        ]
        if rank_by == "like":
            out.sort(
                key=lambda r: -(r.like_probability or 0.0)
            )  # stable: ties keep retrieval order
        return served, out[:k]


def _query_output(
    bundle: TwoTowerBundle,
    user_id: str | None,
    features: Mapping[str, Any] | None,
    liked: Sequence[str] = (),
    passed: Sequence[str] = (),
    like: bool = True,
) -> TowerOutput:
    """``like=False``: the retrieval fields only (the like tower is not run)."""
    if features is not None:
        given = dict(features)
        if user_id is not None:
            given[bundle.features.query.id_column] = user_id
        return bundle.query_output_from_features(given, liked, passed, like=like)
    if liked or passed:
        raise TowerkitError("liked / passed describe a user afresh: give features too")
    if user_id is None:
        raise TowerkitError("give user_id or features (or both)")
    if bundle.features.query_row(user_id) is None:
        raise UnknownUserError(
            f"user_id {user_id!r} is not one of the model's {len(bundle.features.query_keys)} "
            "users; describe the user with features instead"
        )
    return bundle.query_outputs([user_id], like=like)


def top_k_excluding(
    served: Served, query: np.ndarray, k: int, excluded: set[str]
) -> list[tuple[str, float]]:
    """Over-fetch ``k`` + the excluded items in the catalogue, drop those, and widen the fetch
    while an approximate index returns too few; exact scoring over all candidates is the last
    resort (a user who has seen nearly the whole catalogue)."""
    index = served.index
    n = len(index)
    blocked = sum(1 for item in excluded if item in index.position)
    want = min(k, n - blocked)
    fetch = min(n, k + blocked)
    while True:
        found = [
            (str(item), score)
            for item, score in index.search(query, fetch)[0]
            if str(item) not in excluded
        ]
        if len(found) >= want or fetch >= n:
            break
        fetch = min(n, fetch * 2)
    if len(found) < want:
        scores = normalize(served.bundle.candidate_embeddings()) @ normalize(query)[0]
        order = np.argsort(-scores, kind="stable")
        ids = index.ids
        found = [(str(ids[r]), float(scores[r])) for r in order if str(ids[r]) not in excluded]
    return found[:want]

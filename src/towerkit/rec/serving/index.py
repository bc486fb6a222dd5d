"""FAISS index of candidate embeddings: inner product on L2-normalised vectors (cosine).

Three kinds: ``exact`` (IndexFlatIP), ``ivf`` (IndexIVFFlat, nlist ~ sqrt(n)) and ``hnsw``
(IndexHNSWFlat). The approximate kinds pick their search breadth (IVF ``nprobe``, HNSW
``efSearch``) as the smallest value that reaches ``target_recall`` of recall@k against exact
search on a tuning half of the query sample, then report recall@k on the other, held-out half.
Saved as a folder (``index.faiss`` + ``ids.json`` + ``index.json``) written atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import faiss
import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir

IndexKind = Literal["exact", "ivf", "hnsw"]
INDEX_KINDS: tuple[str, ...] = ("exact", "ivf", "hnsw")
ItemId = int | str
FORMAT_VERSION = 1
# FAISS's own defaults: M=32 / efConstruction=64 buys ~2% recall at equal efSearch for twice the
# build time, and the 1M-candidate build has to fit in a few minutes on 2 cores
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
# k-means on at most this many points per centroid: FAISS's default (256) makes the 1M build
# several times slower for no measurable recall gain at the nprobe we tune to
IVF_POINTS_PER_CENTROID = 64
IVF_MIN_POINTS_PER_CENTROID = 39  # below this FAISS warns that clustering is unreliable


@dataclass(frozen=True)
class IndexReport:
    """What was built and how well it agrees with exact search on held-out queries."""

    kind: str
    n: int
    dim: int
    k: int
    params: dict[str, int] = field(default_factory=dict)
    target_recall: float | None = None
    tune_recall: float | None = None  # at the chosen params, on the tuning queries
    recall: float = 1.0  # recall@k against exact on the held-out queries
    n_tune_queries: int = 0
    n_heldout_queries: int = 0
    build_s: float = 0.0
    tune_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(vectors: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """A float32, C-contiguous, row-wise L2-normalised copy; refuses NaN/inf and zero rows."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise TowerkitError(f"{what}: expected a non-empty 2-D matrix, got shape {array.shape}")
    out = np.ascontiguousarray(array, dtype=np.float32).copy()
    if not np.isfinite(out).all():
        raise TowerkitError(f"{what}: contains NaN or infinite values")
    norms = np.linalg.norm(out, axis=1)
    if (norms == 0).any():
        raise TowerkitError(f"{what}: row {int(np.argmax(norms == 0))} is all zeros")
    faiss.normalize_L2(out)
    return out


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (row positions; -1 = no result)."""
    k = exact.shape[1]
    hits = [
        len(set(a[a >= 0].tolist()) & set(e.tolist())) for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits) / k) if hits else 1.0


def ivf_nlist(n: int) -> int:
    """~sqrt(n) lists, fewer where n is too small for FAISS to cluster reliably."""
    return max(1, min(round(math.sqrt(n)), n // IVF_MIN_POINTS_PER_CENTROID))


class CandidateIndex:
    """Top-k candidate ids by cosine similarity; ``search`` is safe to call from many threads."""

    def __init__(self, index: faiss.Index, ids: Sequence[ItemId], report: IndexReport) -> None:
        if index.ntotal != len(ids):
            raise TowerkitError(f"index holds {index.ntotal} vectors but {len(ids)} ids were given")
        self.index = index
        self.ids: list[ItemId] = list(ids)
        self.report = report
        self.position = {item: row for row, item in enumerate(self.ids)}
        if len(self.position) != len(self.ids):
            raise TowerkitError("candidate ids: the same id appears more than once")

    @property
    def kind(self) -> str:
        return self.report.kind

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        ids: Sequence[ItemId] | None = None,
        *,
        kind: str = "exact",
        k: int = 10,
        target_recall: float = 0.95,
        queries: np.ndarray | None = None,
        n_queries: int = 1000,
        seed: int = 0,
        hnsw_m: int = HNSW_M,
    ) -> CandidateIndex:
        """Index ``embeddings`` (n x d); ``ids`` default to 0..n-1. ``queries`` (m x d) tune and
        check the approximate kinds; without them a random sample of the candidates is used."""
        if kind not in INDEX_KINDS:
            raise TowerkitError(f"index kind {kind!r}; expected one of {', '.join(INDEX_KINDS)}")
        vectors = normalize(embeddings, "candidate embeddings")
        n, dim = vectors.shape
        ids = list(range(n)) if ids is None else list(ids)
        if len(ids) != n:
            raise TowerkitError(f"candidate ids: {len(ids)} ids for {n} embeddings")
        if k < 1:
            raise TowerkitError(f"k={k}: expected a positive number of results to tune for")
        k = min(k, n)
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        index = _new_index(cast(IndexKind, kind), vectors, rng, hnsw_m)
        build_s = time.perf_counter() - start
        if kind == "exact":
            report = IndexReport(kind, n, dim, k, build_s=build_s)
            return cls(index, ids, report)
        sample = _query_sample(vectors, queries, n_queries, dim, rng)
        report = _tune(index, cast(IndexKind, kind), vectors, sample, k, target_recall)
        report = IndexReport(**{**report.as_dict(), "build_s": build_s})
        return cls(index, ids, report)

    # ------------------------------------------------------------------ searching

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row positions) of the top ``k`` per query; -1 rows where fewer were found."""
        vectors = normalize(queries, "query embeddings")
        if vectors.shape[1] != self.report.dim:
            raise TowerkitError(
                f"query embeddings have {vectors.shape[1]} dimensions; the index has "
                f"{self.report.dim}"
            )
        k = max(1, min(k, len(self.ids)))
        scores, rows = self.index.search(vectors, k)
        return scores, rows

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[ItemId, float]]]:
        """Per query, up to ``k`` (item id, cosine score) pairs, best first."""
        scores, rows = self.search_rows(queries, k)
        return [
            [(self.ids[r], float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path) -> Path:
        """``index.faiss``, ``ids.json`` and ``index.json`` in one folder, replaced whole."""
        target = Path(directory)
        with atomic_dir(target) as folder:
            faiss.write_index(self.index, str(folder / "index.faiss"))
            (folder / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")
            meta = {"format_version": FORMAT_VERSION, **self.report.as_dict()}
            (folder / "index.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
        return target

    @classmethod
    def load(cls, directory: str | Path) -> CandidateIndex:
        folder = Path(directory)
        for name in ("index.faiss", "ids.json", "index.json"):
            if not (folder / name).is_file():
                raise TowerkitError(f"{folder}: not a saved candidate index (no {name})")
        meta = json.loads((folder / "index.json").read_text("utf-8"))
        if meta.pop("format_version", None) != FORMAT_VERSION:
            raise TowerkitError(
                f"{folder / 'index.json'}: expected format_version {FORMAT_VERSION}"
            )
        ids = json.loads((folder / "ids.json").read_text("utf-8"))
        if not isinstance(ids, list) or not all(isinstance(i, int | str) for i in ids):
            raise TowerkitError(f"{folder / 'ids.json'}: expected a JSON list of ints or strings")
        index = faiss.read_index(str(folder / "index.faiss"))
        report = IndexReport(**meta)
        if index.d != report.dim:
            raise TowerkitError(
                f"{folder}: index.faiss has {index.d} dimensions, index.json says {report.dim}"
            )
        _apply_params(index, report.kind, report.params)
        return cls(index, ids, report)


# ---------------------------------------------------------------------- helpers


def _new_index(
    kind: IndexKind, vectors: np.ndarray, rng: np.random.Generator, hnsw_m: int
) -> faiss.Index:
    n, dim = vectors.shape
    metric = faiss.METRIC_INNER_PRODUCT
    index: faiss.Index
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = ivf_nlist(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, metric)
        limit = nlist * IVF_POINTS_PER_CENTROID
        train = vectors if n <= limit else vectors[np.sort(rng.choice(n, limit, replace=False))]
        index.cp.seed = int(rng.integers(2**31))
        index.train(train)
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, metric)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(vectors)
    return index


def _query_sample(
    vectors: np.ndarray,
    queries: np.ndarray | None,
    n_queries: int,
    dim: int,
    rng: np.random.Generator,
) -> np.ndarray:
    if queries is None:
        take = min(n_queries, vectors.shape[0])
        return vectors[rng.choice(vectors.shape[0], take, replace=False)]
    sample = normalize(queries, "tuning queries")
    if sample.shape[1] != dim:
        raise TowerkitError(
            f"tuning queries have {sample.shape[1]} dimensions; the candidates have {dim}"
        )
    if sample.shape[0] > n_queries:
        sample = sample[rng.choice(sample.shape[0], n_queries, replace=False)]
    if sample.shape[0] < 2:
        raise TowerkitError("tuning queries: need at least 2 (one half tunes, one half checks)")
    return sample


def _param_name(kind: IndexKind) -> str:
    return "nprobe" if kind == "ivf" else "ef_search"


def _apply_params(index: faiss.Index, kind: str, params: dict[str, int]) -> None:
    if kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    elif kind == "hnsw":
        cast(Any, index).hnsw.efSearch = int(params["ef_search"])


def _ladder(kind: IndexKind, index: faiss.Index, k: int) -> list[int]:
    """Increasing candidate values: nprobe 1..nlist, efSearch k..(enough for any n)."""
    if kind == "ivf":
        top = faiss.extract_index_ivf(index).nlist
        values = [1 << i for i in range(top.bit_length()) if 1 << i < top]
        return [*values, top]
    top = max(index.ntotal, k)
    values = [max(k, 16) << i for i in range(32) if max(k, 16) << i < top]
    return [*values, top]


def _tune(
    index: faiss.Index,
    kind: IndexKind,
    vectors: np.ndarray,
    sample: np.ndarray,
    k: int,
    target: float,
) -> IndexReport:
    """Smallest ladder value (then bisected below it) reaching ``target`` on the tuning half."""
    if not 0.0 < target <= 1.0:
        raise TowerkitError(f"target recall {target}: expected a value in (0, 1]")
    start = time.perf_counter()
    half = sample.shape[0] // 2
    tune_q, check_q = sample[:half], sample[half:]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth_tune = exact.search(tune_q, k)
    _, truth_check = exact.search(check_q, k)
    name = _param_name(kind)

    def recall_with(value: int, queries: np.ndarray, truth: np.ndarray) -> float:
        _apply_params(index, kind, {name: value})
        return recall_at_k(index.search(queries, k)[1], truth)

    ladder = _ladder(kind, index, k)
    low, chosen = (0 if kind == "ivf" else k - 1), ladder[-1]  # HNSW searches max(ef, k) anyway
    for value in ladder:
        if recall_with(value, tune_q, truth_tune) >= target:
            chosen = value
            break
        low = value
    while chosen - low > max(1, chosen // 8):  # bisect to within ~12% of the smallest value
        middle = (low + chosen) // 2
        if recall_with(middle, tune_q, truth_tune) >= target:
            chosen = middle
        else:
            low = middle
    tune_recall = recall_with(chosen, tune_q, truth_tune)
    held_out = recall_with(chosen, check_q, truth_check)
    params = {name: chosen}
    if kind == "ivf":
        params["nlist"] = faiss.extract_index_ivf(index).nlist
    else:
        hnsw = cast(Any, index).hnsw
        params.update(m=int(hnsw.nb_neighbors(1)), ef_construction=int(hnsw.efConstruction))
    return IndexReport(
        kind,
        vectors.shape[0],
        vectors.shape[1],
        k,
        params=params,
        target_recall=target,
        tune_recall=tune_recall,
        recall=held_out,
        n_tune_queries=tune_q.shape[0],
        n_heldout_queries=check_q.shape[0],
        tune_s=time.perf_counter() - start,
    )

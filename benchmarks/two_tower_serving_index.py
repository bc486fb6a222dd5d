"""The index-latency part of ``benchmarks/two_tower_serving.py``: synthetic catalogues, then FAISS
exact / IVF / HNSW built, tuned to the recall target and timed one query at a time."""

from __future__ import annotations

import gc
import resource
import time
from typing import Any

import faiss
import numpy as np

KINDS = ("exact", "ivf", "hnsw")
K = 10
TARGET = 0.95
N_TUNE = 1000  # half tunes nprobe / efSearch, half is the held-out check
N_TIME = 500
WARMUP = 20


# --- synthetic catalogues ---------------------------------------------------------------------


def gaussian_like(reference: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows from N(mean, cov) of ``reference`` (float32, in chunks to bound memory)."""
    mean = reference.mean(axis=0)
    cov = np.cov(reference, rowvar=False) + 1e-6 * np.eye(reference.shape[1])
    factor = np.linalg.cholesky(cov)
    out = np.empty((n, reference.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        out[start:stop] = rng.standard_normal((stop - start, len(mean))) @ factor.T + mean
    return out


def mixture(
    n: int, dim: int, rng: np.random.Generator, centers: np.ndarray, proj: np.ndarray
) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        z = centers[rng.integers(len(centers), size=stop - start)]
        z = z + 0.8 * rng.standard_normal(z.shape)
        out[start:stop] = z @ proj + 0.1 * rng.standard_normal((stop - start, dim))
    return out


def catalogue(
    n: int, dim: int, seed: int, fit: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(n candidates, N_TUNE + N_TIME queries)."""
    rng = np.random.default_rng(seed)
    m = N_TUNE + N_TIME
    if fit is not None:
        candidates, users = fit
        return gaussian_like(candidates, n, rng), gaussian_like(users, m, rng)
    centers = rng.standard_normal((1000, 16))
    proj = rng.standard_normal((16, dim)) / 4.0
    return mixture(n, dim, rng, centers, proj), mixture(m, dim, rng, centers, proj)


# --- index latency ----------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_queries(index: Any, queries: np.ndarray) -> dict[str, float]:
    """Wall and this thread's CPU milliseconds per single-query search (on a loaded machine the
    wall p99 measures the scheduler; the CPU time measures the search)."""
    for q in queries[:WARMUP]:
        index.search_rows(q[None, :], K)
    wall, cpu = np.empty(len(queries)), np.empty(len(queries))
    for i, q in enumerate(queries):
        start, start_cpu = time.perf_counter(), time.thread_time()
        index.search_rows(q[None, :], K)
        wall[i] = (time.perf_counter() - start) * 1000
        cpu[i] = (time.thread_time() - start_cpu) * 1000
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p99_ms": float(np.percentile(wall, 99)),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
    }


def bench_size(
    n: int, dim: int, seed: int, fit: tuple[np.ndarray, np.ndarray] | None, build_threads: int
) -> dict[str, Any]:
    from towerkit.rec.serving.index import CandidateIndex, recall_at_k

    items, queries = catalogue(n, dim, seed, fit)
    tune, timing = queries[:N_TUNE], queries[N_TUNE:]
    rows: list[dict[str, Any]] = []
    truth = None
    for kind in KINDS:
        faiss.omp_set_num_threads(build_threads)
        start, start_cpu = time.perf_counter(), time.process_time()
        index = CandidateIndex.build(items, kind=kind, k=K, target_recall=TARGET, queries=tune)
        total_build = time.perf_counter() - start
        build_cpu = time.process_time() - start_cpu  # all threads: what an idle machine needs
        faiss.omp_set_num_threads(1)
        _, found = index.search_rows(timing, K)
        if truth is None:
            truth = found  # exact comes first
        report = index.report
        rows.append(
            {
                "kind": kind,
                "params": report.params,
                "build_s": report.build_s,
                "tune_s": report.tune_s,
                "total_build_s": total_build,
                "total_build_cpu_s": build_cpu,
                "recall_tune": report.tune_recall,
                "recall_heldout": report.recall,
                "recall_timing": recall_at_k(found, truth),
                **time_queries(index, timing),
            }
        )
        print(f"  n={n:,} {kind}: {rows[-1]}", flush=True)
        del index
        gc.collect()
    exact = rows[0]
    for row in rows:
        row["p50_vs_exact"] = row["p50_ms"] / exact["p50_ms"]
        row["p99_vs_exact"] = row["p99_ms"] / exact["p99_ms"]
        row["cpu_p50_vs_exact"] = row["cpu_p50_ms"] / exact["cpu_p50_ms"]
    return {"n": n, "dim": dim, "rows": rows, "peak_rss_mib": peak_rss_mib()}

"""``rec serve --threads``: the FAISS thread count reaches the worker threads that run requests
(OpenMP keeps it per OS thread, so setting it in the main thread alone does not)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import faiss
from fastapi.testclient import TestClient

from towerkit.rec.serving.app import create_app


def stub_service() -> Any:
    served = SimpleNamespace(health=lambda: {"status": "ok"})
    return SimpleNamespace(served=served)


def faiss_threads_in_a_new_thread() -> int:
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
    worker.start()
    worker.join()
    return seen[0]


def test_requests_search_with_the_threads_serve_was_given() -> None:
    default = faiss_threads_in_a_new_thread()
    wanted = 1 if default > 1 else 2  # any count other than the default (OMP_NUM_THREADS)
    with TestClient(create_app(stub_service(), threads=wanted)) as client:
        health = client.get("/health").json()
    assert health["status"] == "ok" and health["threads"]["faiss"] == wanted
    # a fresh thread's count is left as it was
    assert faiss_threads_in_a_new_thread() == default

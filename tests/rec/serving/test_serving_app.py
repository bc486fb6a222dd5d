"""``rec serve`` on tiny models trained on MovieLens-100K: answers equal brute-force cosine top-k
over the model's own embeddings with seen items left out; 4xx with reasons; reload after a
registry rollback; a real uvicorn process over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_models import NAME, TinyModels

from towerkit.cli import main
from towerkit.core.registry import ModelRegistry
from towerkit.rec.serving.app import create_app
from towerkit.rec.serving.service import RecService
from towerkit.rec.twotower.api import TwoTowerBundle, load_bundle

pytestmark = pytest.mark.slow  # the session fixture trains two models on real data


def brute_force(
    bundle: TwoTowerBundle, query: np.ndarray, k: int, excluded: set[str]
) -> list[tuple[str, float]]:
    candidates = bundle.candidate_embeddings()
    q = query / np.linalg.norm(query)
    scores = (candidates / np.linalg.norm(candidates, axis=1, keepdims=True)) @ q
    order = np.argsort(-scores, kind="stable")
    ids = bundle.candidate_ids()
    return [(ids[r], float(scores[r])) for r in order if ids[r] not in excluded][:k]


def assert_same_ranking(got: list[dict[str, object]], want: list[tuple[str, float]]) -> None:
    assert len(got) == len(want)
    np.testing.assert_allclose([g["score"] for g in got], [s for _, s in want], atol=1e-5)
    # ids agree except where two candidates tie in score
    for g, (item, score) in zip(got, want, strict=True):
        assert g["item_id"] == item or abs(float(str(g["score"])) - score) < 1e-6


@pytest.fixture
def client(tiny_models: TinyModels) -> TestClient:
    registry = ModelRegistry(tiny_models.home / "registry.db")
    return TestClient(create_app(RecService(f"{NAME}@production", "exact", registry)))


@pytest.fixture
def bundle(tiny_models: TinyModels) -> TwoTowerBundle:
    return load_bundle(f"{NAME}/{tiny_models.v2}", ModelRegistry(tiny_models.home / "registry.db"))


def test_health_names_the_version_the_alias_points_to(
    client: TestClient, tiny_models: TinyModels, bundle: TwoTowerBundle
) -> None:
    health = client.get("/health").json()
    assert health["model"] == f"{NAME}@production"
    assert health["version"] == tiny_models.v2 and health["uri"] == f"{NAME}/{tiny_models.v2}"
    assert health["n_candidates"] == len(bundle.candidate_ids()) > 100
    assert health["index"]["kind"] == "exact" and health["index"]["recall"] == 1.0


def test_known_user_gets_brute_force_top_k_without_seen_items(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    users = [u for u in bundle.features.query_keys if len(bundle.seen_items(u)) >= 10][:3]
    assert len(users) == 3  # users with a training history
    for user in users:
        seen = bundle.seen_items(user)
        body = client.post("/recommend", json={"user_id": user, "k": 15}).json()
        assert body["model"] == bundle.label
        items = body["items"]
        assert not {i["item_id"] for i in items} & seen
        assert_same_ranking(
            items, brute_force(bundle, bundle.query_embeddings([user])[0], 15, seen)
        )
    # integer ids are the same user; without exclusion seen items come back
    user = int(users[0])
    raw = client.post("/recommend", json={"user_id": user, "k": 30, "exclude_seen": False})
    want = brute_force(bundle, bundle.query_embeddings([str(user)])[0], 30, set())
    assert_same_ranking(raw.json()["items"], want)
    assert {i["item_id"] for i in raw.json()["items"]} & bundle.seen_items(str(user))


def test_user_described_by_features_and_extra_exclusions(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    features = {"age": 31, "gender": "F", "occupation": "writer", "zip_prefix": "9"}
    query = bundle.query_embedding_from_features(features)
    first = client.post("/recommend", json={"features": features, "k": 5}).json()["items"]
    assert_same_ranking(first, brute_force(bundle, query, 5, set()))
    dropped = {first[0]["item_id"], first[2]["item_id"]}
    second = client.post(
        "/recommend", json={"features": features, "k": 5, "exclude": sorted(dropped)}
    ).json()["items"]
    assert_same_ranking(second, brute_force(bundle, query, 5, dropped))


def test_a_new_user_with_swipes_gets_their_history_read_and_excluded(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    assert bundle.history_len > 0  # production was trained with the quick recipe's histories
    features = {"age": 25, "gender": "M", "occupation": "student", "zip_prefix": "5"}
    plain = client.post("/recommend", json={"features": features, "k": 8}).json()["items"]
    liked = [plain[0]["item_id"], plain[1]["item_id"]]
    passed = [plain[2]["item_id"]]
    body = {"features": features, "k": 8, "liked": liked, "passed": passed}
    got = client.post("/recommend", json=body).json()["items"]
    query = bundle.query_embedding_from_features(features, liked, passed)
    assert not np.allclose(query, bundle.query_embedding_from_features(features))
    assert_same_ranking(got, brute_force(bundle, query, 8, {*liked, *passed}))


def test_each_item_carries_the_like_probability_evaluation_scores(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    from towerkit.rec.twotower.evaluation import model_scorer

    user = next(u for u in bundle.features.query_keys if len(bundle.seen_items(u)) >= 10)
    items = client.post("/recommend", json={"user_id": user, "k": 20}).json()["items"]
    rows = np.array([bundle.features.candidate_row(i["item_id"]) for i in items])
    logits = model_scorer(bundle.model, bundle.features).pair_scores(
        np.full(len(rows), bundle.features.query_row(user)), rows
    )
    got = np.array([i["like_probability"] for i in items])
    np.testing.assert_allclose(got, 1.0 / (1.0 + np.exp(-logits)), rtol=0, atol=1e-5)
    assert len(set(np.round(got, 6))) > 1  # not a constant


def test_rank_by_like_reranks_the_retrieval_pool(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    user = next(u for u in bundle.features.query_keys if len(bundle.seen_items(u)) >= 10)
    body = {"user_id": user, "k": 30}
    pool = client.post("/recommend", json=body).json()["items"]
    ranked = client.post("/recommend", json={**body, "k": 8, "rank_by": "like", "pool": 30})
    items = ranked.json()["items"]
    by_like = sorted(pool, key=lambda i: -i["like_probability"])[:8]
    assert [i["item_id"] for i in items] == [i["item_id"] for i in by_like]
    probabilities = [i["like_probability"] for i in items]
    assert probabilities == sorted(probabilities, reverse=True)
    # the best by like are not simply the best by retrieval
    assert [i["item_id"] for i in items] != [i["item_id"] for i in pool[:8]]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_serves_and_fills_k_past_what_it_finds(
    tiny_models: TinyModels, bundle: TwoTowerBundle, kind: str
) -> None:
    registry = ModelRegistry(tiny_models.home / "registry.db")
    client = TestClient(create_app(RecService(f"{NAME}@production", kind, registry)))
    report = client.get("/health").json()["index"]
    assert report["kind"] == kind and report["tune_recall"] >= 0.95
    assert report["n_tune_queries"] + report["n_heldout_queries"] == 40  # the model's users
    user = max(bundle.features.query_keys, key=lambda u: len(bundle.seen_items(u)))
    seen = bundle.seen_items(user)
    everything = len(bundle.candidate_ids()) - len(seen)
    items = client.post("/recommend", json={"user_id": user, "k": 1000}).json()["items"]
    assert len(items) == min(1000, everything)
    assert not {i["item_id"] for i in items} & seen
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"k": 5}, 422, "body: give user_id or features"),
        ({"user_id": "1", "k": 0}, 422, "body.k: Input should be greater than or equal to 1"),
        ({"user_id": "1", "k": 1001}, 422, "body.k: Input should be less than or equal to 1000"),
        ({"user_id": "1", "k": "ten"}, 422, "body.k: Input should be a valid integer"),
        ({"user_id": "1", "top_k": 5}, 422, "body.top_k: Extra inputs are not permitted"),
        ({"user_id": "999999"}, 404, "user_id '999999' is not one of the model's 40 users"),
        ({"features": {"agee": 3}}, 422, "features: unknown key 'agee'"),
        ({"user_id": "1", "liked": ["1"]}, 422, "body: liked / passed describe a user afresh"),
        ({"features": {}, "liked": ["nope"]}, 422, "liked: item 'nope' is not in the model's"),
        (
            {"user_id": "1", "rank_by": "popularity"},
            422,
            "body.rank_by: Input should be 'retrieval' or 'like'",
        ),
        ({"user_id": "1", "pool": 0}, 422, "body.pool: Input should be greater than or equal to 1"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(
    client: TestClient, body: dict[str, object], status: int, reason: str
) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == status
    assert response.json()["detail"].startswith(reason)


def test_reload_picks_up_a_registry_rollback(tiny_models: TinyModels, tmp_path: Path) -> None:
    registry = ModelRegistry(tiny_models.registry_copy(tmp_path) / "registry.db")
    client = TestClient(create_app(RecService(f"{NAME}@production", "exact", registry)))
    before = client.get("/health").json()
    registry.rollback(NAME)
    assert client.get("/health").json()["version"] == tiny_models.v2  # loaded at startup
    after = client.post("/reload").json()
    assert after["previous"] == f"{NAME}/{tiny_models.v2}"
    assert after["version"] == tiny_models.v1
    assert after["n_candidates"] > before["n_candidates"]  # v1 saw 60 users' items, v2 40
    assert client.post("/recommend", json={"user_id": "55"}).status_code == 200  # only v1 knows


def test_serve_refuses_bad_options_in_one_line(
    tiny_home: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rec", "serve", "--index", "annoy"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --index 'annoy'; expected one of exact, ivf, hnsw"
    )
    assert main(["rec", "serve", "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["rec", "serve", "--keep-alive", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --keep-alive 0: expected whole seconds >= 1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _received(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "rec serve closed the connection before its answer was complete"
    return chunk


def _idle_connection_open_after(port: int, seconds: float) -> bool:
    """One keep-alive request on a raw socket, then ``seconds`` idle: is it still open?"""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += _received(sock)
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        assert length, head
        while len(body) < int(length.group(1)):  # the whole answer, so what follows is a close
            body += _received(sock)
        time.sleep(seconds)
        sock.setblocking(False)
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""  # b"": the server closed it
        except BlockingIOError:
            return True  # nothing to read and not closed


@contextmanager
def _rec_serve(*options: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``towerkit rec serve`` in its own process: its port and first /health answer."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "towerkit.cli", "rec", "serve", "--port", str(port)]
    command += ["--no-access-log", *options]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "rec serve did not answer within 180 s"
                time.sleep(0.5)
        yield port, health
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


def test_uvicorn_process_answers_over_http(tiny_home: TinyModels, bundle: TwoTowerBundle) -> None:
    with _rec_serve("--index", "hnsw") as (port, health):
        url = f"http://127.0.0.1:{port}"
        assert health["version"] == tiny_home.v2 and health["index"]["kind"] == "hnsw"
        response = httpx.post(f"{url}/recommend", json={"user_id": "2", "k": 10}, timeout=30)
        assert response.status_code == 200
        items = response.json()["items"]
        assert len(items) == 10 and not {i["item_id"] for i in items} & bundle.seen_items("2")
        bad = httpx.post(f"{url}/recommend", json={"user": "2"}, timeout=30)
        assert bad.status_code == 422 and "body.user: Extra inputs" in bad.json()["detail"]
        # idle past uvicorn's own default (5 s, httpx's pool expiry too): still open
        assert _idle_connection_open_after(port, seconds=6.0)


def test_keep_alive_closes_a_connection_idle_that_long(tiny_home: TinyModels) -> None:
    with _rec_serve("--keep-alive", "1") as (port, _):
        assert _idle_connection_open_after(port, seconds=0.2)
        assert not _idle_connection_open_after(port, seconds=2.5)


def test_like_probability_false_skips_the_like_model_and_keeps_the_ranking(
    client: TestClient, bundle: TwoTowerBundle
) -> None:
    user = next(u for u in bundle.features.query_keys if len(bundle.seen_items(u)) >= 10)
    full = client.post("/recommend", json={"user_id": user, "k": 12}).json()["items"]
    lean = client.post(
        "/recommend", json={"user_id": user, "k": 12, "like_probability": False}
    ).json()["items"]
    assert [(i["item_id"], i["score"]) for i in lean] == [(i["item_id"], i["score"]) for i in full]
    assert all(i["like_probability"] is None for i in lean)
    described = {"features": {}, "liked": [full[0]["item_id"]], "like_probability": False}
    assert client.post("/recommend", json=described).status_code == 200
    refused = client.post(
        "/recommend",
        json={"user_id": user, "rank_by": "like", "like_probability": False},
    )
    assert refused.status_code == 422
    assert "rank_by=like ranks by the like probability" in refused.json()["detail"]

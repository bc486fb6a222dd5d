"""Input checks shared by the metric modules: numpy or torch in, validated numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from towerkit.core.errors import TowerkitError

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(value: Any, name: str) -> np.ndarray:
    """Turn a numpy array, torch tensor or (nested) list into a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TowerkitError(
            f"{name}: expected an array or tensor, got {type(value).__name__}"
        ) from exc


def as_1d(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D array, optionally of a given length; a one-line error names the argument."""
    array = to_numpy(value, name)
    if array.ndim != 1:
        raise TowerkitError(f"{name}: expected a 1-D array of shape (n,), got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise TowerkitError(
            f"{name}: expected shape ({length},) to match y_true, got {array.shape}"
        )
    if array.shape[0] == 0:
        raise TowerkitError(f"{name}: expected at least one value, got an empty array")
    return array


def as_float(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A finite float64 array, optionally of an exact shape."""
    array = to_numpy(value, name)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TowerkitError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if shape is not None and array.shape != shape:
        raise TowerkitError(f"{name}: expected shape {shape}, got {array.shape}")
    if array.size == 0:
        raise TowerkitError(f"{name}: expected at least one value, got an empty array")
    if not np.isfinite(array).all():
        raise TowerkitError(f"{name}: contains NaN or infinite values")
    return array


def as_int_labels(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D array of integer class labels (bools and integral floats are accepted)."""
    array = as_1d(value, name, length)
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise TowerkitError(f"{name}: expected integer class labels, got non-integer floats")
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise TowerkitError(f"{name}: expected integer class labels, got dtype {array.dtype}")
    return array.astype(np.int64)

"""Fixtures shared by the Trainer tests (test_trainer_steps.py, test_trainer_runs.py).

``one_thread`` is not autouse here: those two files ask for it with ``pytestmark``, so the other
tests in this folder keep torch's thread count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset


@pytest.fixture
def one_thread() -> Iterator[None]:
    # bit-level comparisons need one reduction order; also far faster on a busy 2-core box
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> TensorDataset:
    data = load_digits()
    x = torch.tensor(data.data[:256], dtype=torch.float32) / 16.0
    return TensorDataset(x, torch.tensor(data.target[:256]))

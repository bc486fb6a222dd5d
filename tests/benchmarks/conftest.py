"""Benchmark scripts are files, not a package: the tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from towerkit.forecast.dataset import Panel

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(filename: str) -> ModuleType:
    """benchmarks/<filename> as a module (registered, so dataclasses can resolve it), loaded
    with benchmarks/ on sys.path as when it runs: some scripts import their neighbours."""
    spec = importlib.util.spec_from_file_location(
        f"{Path(filename).stem}_benchmark", BENCHMARKS / filename
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("seqrec.py")``: the script as a module."""
    return _load


ANCHOR_TARGETS = ["activity", "stars"]


@pytest.fixture
def anchor_panel() -> Panel:
    """A small panel for the forecast anchors' tests: random-walk counts of ANCHOR_TARGETS for 8
    repositories over 40 months from 2019-01; repository 1 starts 10 months late, repository 2
    lacks stars."""
    rng = np.random.default_rng(0)
    repos, months = 8, 40
    steps = rng.normal(0.5, 3.0, size=(repos, months, len(ANCHOR_TARGETS)))
    values = np.maximum(0.0, 20.0 + np.cumsum(steps, axis=1)).round()
    first = np.zeros(repos, dtype=np.int64)
    first[1] = 10
    values[1, :10] = np.nan
    values[2, :, 1] = np.nan
    orgs = [[""] * months for _ in range(repos)]
    return Panel([f"o/r{i}" for i in range(repos)], ANCHOR_TARGETS, 2019 * 12, values, first, orgs)

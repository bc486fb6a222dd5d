"""Benchmark scripts are files, not a package: the tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(filename: str) -> ModuleType:
    """benchmarks/<filename> as a module (registered, so dataclasses can resolve it)."""
    spec = importlib.util.spec_from_file_location(
        f"{Path(filename).stem}_benchmark", BENCHMARKS / filename
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("seqrec.py")``: the script as a module."""
    return _load

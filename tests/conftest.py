"""Shared fixtures: every test gets its own TOWERKIT_HOME and runs directory, and no hub access."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED = Path(
    os.environ.get("TOWERKIT_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "towerkit-home"
    monkeypatch.setenv("TOWERKIT_HOME", str(home))
    monkeypatch.setenv("TOWERKIT_RUNS", str(tmp_path / "runs"))
    return home

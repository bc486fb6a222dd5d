"""Where towerkit keeps things: TOWERKIT_HOME (cache, registry) and run directories."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path


def towerkit_home() -> Path:
    home = Path(os.environ.get("TOWERKIT_HOME", Path.home() / ".towerkit")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def runs_root() -> Path:
    return Path(os.environ.get("TOWERKIT_RUNS", "runs")).expanduser()


def repo_root() -> Path:
    """The source checkout (holds configs/); valid for editable installs."""
    return Path(__file__).resolve().parents[3]


def new_run_dir(domain: str, recipe: str, root: Path | None = None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = (root or runs_root()) / domain / recipe / stamp
    path.mkdir(parents=True, exist_ok=False)
    return path

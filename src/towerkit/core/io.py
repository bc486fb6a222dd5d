"""Atomic file writes: write to a temporary path beside the target, then rename over it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Linux shows it in /proc/self/status; elsewhere reading it means
    setting it (process-wide) and putting it straight back, so that is done under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``target`` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; use what open() would
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``target`` (a directory) whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp makes the folder 0700; the finished one gets what a plain mkdir would (umask)
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if target.exists():
            # rename the old one aside first so the target is never half-written
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json_object(path: str | Path, hint: str = "") -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is one-line TowerkitError naming the
    file (``hint``, e.g. "run `towerkit ... prepare` again", is added to the message)."""
    from towerkit.core.errors import TowerkitError

    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TowerkitError(f"{path}: not found{tail}") from None
    except (OSError, ValueError) as exc:
        raise TowerkitError(f"{path}: not valid JSON ({exc}){tail}") from None
    if not isinstance(data, dict):
        raise TowerkitError(f"{path}: expected a JSON object, got {type(data).__name__}{tail}")
    return data


def read_parquet(path: str | Path, hint: str = "") -> Any:
    """A Parquet file as a polars DataFrame; a missing, empty or corrupt file is one-line
    TowerkitError naming it instead of polars' own error and a traceback."""
    import polars as pl

    from towerkit.core.errors import TowerkitError

    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise TowerkitError(f"{path}: not found{tail}")
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise TowerkitError(f"{path}: not a readable Parquet file ({reason}){tail}") from None

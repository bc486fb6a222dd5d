"""A content fingerprint of a data set: which files, how big, and exactly what is in them.

The registry stores it beside each model version so two versions can be told apart by the data
they were trained on. Content is hashed in full (streamed in chunks by hashlib.file_digest), not
sampled, so a changed byte anywhere changes the fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from towerkit.core.errors import TowerkitError


def _named_files(path: Path) -> list[tuple[str, Path]]:
    """(name, file) pairs: a file is named by its base name, a directory's files by
    ``dir/relative/path`` so moving the data set elsewhere keeps the fingerprint."""
    if path.is_file():
        return [(path.name, path)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return [(f"{path.name}/{p.relative_to(path).as_posix()}", p) for p in files]
    raise TowerkitError(f"data_fingerprint: '{path}' does not exist (expected a file or directory)")


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def data_fingerprint(paths: Iterable[str | Path]) -> str:
    """sha256 (64 hex characters) over every file's name, size and full content.

    Directories are walked recursively; the order the paths are given in does not matter.
    """
    named: list[tuple[str, Path]] = []
    for path in paths:
        named.extend(_named_files(Path(path).expanduser()))
    if not named:
        raise TowerkitError("data_fingerprint: no files found in the given paths")
    total = hashlib.sha256()
    for name, path in sorted(named, key=lambda item: (item[0], str(item[1]))):
        size = path.stat().st_size
        total.update(f"{name}\0{size}\0{_file_digest(path)}\n".encode())
    return total.hexdigest()

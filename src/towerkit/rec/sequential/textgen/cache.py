"""A JSON-lines cache of generated texts, keyed by the sha256 of backend + prompt + input.

Each finished batch is appended and fsynced, so a run killed half way loses at most the batch
in flight; the next run reads the file and skips everything already written. A line cut short
by a crash (the last one) is ignored; any other unreadable line is an error naming the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from towerkit.core.errors import TowerkitError


class TextCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self.entries[str(entry["key"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                if number == len(lines):  # cut short by a crash while writing
                    continue
                raise TowerkitError(
                    f"{self.path}: line {number} is not a cache entry (expected JSON with 'key')"
                ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def add(self, entries: Iterable[dict[str, Any]]) -> None:
        batch = list(entries)
        if not batch:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_cut_line()
        with open(self.path, "a", encoding="utf-8") as fh:
            for entry in batch:
                fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for entry in batch:
            self.entries[str(entry["key"])] = entry

    def _drop_cut_line(self) -> None:
        """A file that ends mid-line (a crash while writing) loses that partial line."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

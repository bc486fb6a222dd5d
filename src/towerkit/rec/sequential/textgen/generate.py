"""Runs a backend over many requests in batches, resumably, with a progress bar.

``generate_texts`` skips every request whose cache key is already in the JSONL cache, writes each
finished batch to it, and returns the texts of all requests. ``write_texts`` then writes the
``texts.json`` the retrievers read: ``{"users": {raw_id: text}, "items": {...}, "info": {...}}``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.rec.sequential.textgen.backends import Backend, TemplateBackend
from towerkit.rec.sequential.textgen.cache import TextCache
from towerkit.rec.sequential.textgen.requests import TextRequest

TEXTS_FILE = "texts.json"
CACHE_FILE = "cache.jsonl"
# chat models like to open with a pleasantry or a label; the text is embedded, so drop them
_PREAMBLE = re.compile(
    r"^(sure[,!.]?|certainly[,!.]?|here is[^:]*:|here's[^:]*:|summary:|description:)\s*", re.I
)


@dataclass
class GenerationReport:
    backend: str
    requested: int = 0
    generated: int = 0  # by the backend in this run
    cached: int = 0  # found in the cache
    template: int = 0  # past the limit, or the backend returned nothing usable
    seconds: float = 0.0
    batches: list[float] = field(default_factory=list)

    @property
    def seconds_per_text(self) -> float:
        return self.seconds / self.generated if self.generated else 0.0


def clean_text(text: str, max_chars: int) -> str:
    """One line, no preamble, at most ``max_chars`` (cut at a word boundary)."""
    text = " ".join(text.replace("*", " ").split())
    text = _PREAMBLE.sub("", text).strip(" \"'")
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return text


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def generate_texts(
    requests: Sequence[TextRequest],
    backend: Backend,
    cache: TextCache,
    batch_size: int = 8,
    limit: int | None = None,
) -> tuple[list[str], GenerationReport]:
    """Texts for every request, in order. Only the first ``limit`` requests (None: all) go to
    the backend; the others, and empty answers, get the deterministic template text."""
    report = GenerationReport(backend=backend.identity, requested=len(requests))
    template = TemplateBackend()
    keys = [r.cache_key(backend.identity) for r in requests]
    allowed = len(requests) if limit is None else max(0, limit)
    todo = [i for i in range(min(allowed, len(requests))) if keys[i] not in cache]
    report.cached = min(allowed, len(requests)) - len(todo)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"writing texts ({backend.identity})", total=len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            t0 = time.perf_counter()
            outputs = backend.generate([requests[i] for i in chunk])
            seconds = time.perf_counter() - t0
            report.batches.append(seconds)
            cache.add(
                {
                    "key": keys[i],
                    "kind": requests[i].kind,
                    "id": requests[i].key,
                    "backend": backend.identity,
                    "raw": raw,
                    "seconds": round(seconds / len(chunk), 4),
                }
                for i, raw in zip(chunk, outputs, strict=True)
            )
            bar.advance(task, len(chunk))
    report.generated = len(todo)
    report.seconds = time.perf_counter() - started
    texts = []
    for i, request in enumerate(requests):
        entry = cache.get(keys[i]) if i < allowed else None
        text = clean_text(str(entry["raw"]), request.max_chars) if entry else ""
        if len(text) < 3:
            text = clean_text(template.generate([request])[0], request.max_chars)
            report.template += 1
        texts.append(text)
    return texts, report


def write_texts(
    folder: str | Path,
    requests: Sequence[TextRequest],
    texts: Sequence[str],
    info: dict[str, Any],
) -> Path:
    """``texts.json`` in ``folder``, written atomically (merged with the kinds not rewritten)."""
    path = Path(folder) / TEXTS_FILE
    data: dict[str, Any] = {"users": {}, "items": {}, "info": {}}
    if path.is_file():
        data = read_texts(path)
    kinds = {r.kind for r in requests}
    for kind in kinds:
        data[f"{kind}s"] = {}
        data["info"][kind] = info
    for request, text in zip(requests, texts, strict=True):
        data[f"{request.kind}s"][request.key] = text
    write_json_atomic(path, data)
    return path


def read_texts(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / TEXTS_FILE
    if not path.is_file():
        raise TowerkitError(f"{path}: no generated texts; run `towerkit rec seq generate-text`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TowerkitError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or not {"users", "items"} <= set(data):
        raise TowerkitError(f"{path}: expected keys 'users' and 'items'")
    data.setdefault("info", {})
    return data

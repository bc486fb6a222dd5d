"""``towerkit rec seq generate-text``: a prepared dataset in, ``texts.json`` + the cache out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from towerkit.core.errors import ConfigError
from towerkit.rec.sequential.textgen.backends import BackendConfig, make_backend
from towerkit.rec.sequential.textgen.cache import TextCache
from towerkit.rec.sequential.textgen.generate import (
    CACHE_FILE,
    GenerationReport,
    generate_texts,
    write_texts,
)
from towerkit.rec.sequential.textgen.prompts import load_prompts
from towerkit.rec.sequential.textgen.requests import Kind, dataset_requests

DEFAULT_PROMPTS = "configs/rec/prompts/ur4rec.yaml"


def run_generation(
    dataset: Any,
    out_dir: str | Path,
    prompts_path: str | Path,
    backend_config: BackendConfig,
    kinds: Sequence[Kind] = ("item", "user"),
    limit: int | None = None,
) -> dict[str, GenerationReport]:
    """Write every requested kind; ``limit``: at most this many texts per kind from the backend
    (the rest from the template), for slow local models."""
    unknown = sorted(set(kinds) - {"item", "user"})
    if unknown or not kinds:
        raise ConfigError(f"generate-text: kinds: expected item and/or user, got {list(kinds)}")
    prompts = load_prompts(prompts_path)
    backend = make_backend(backend_config)
    out_dir = Path(out_dir)
    cache = TextCache(out_dir / CACHE_FILE)
    reports: dict[str, GenerationReport] = {}
    for kind in kinds:  # items first: the cheaper kind is done when a long user run stops
        requests = dataset_requests(dataset, prompts, [kind])
        texts, report = generate_texts(requests, backend, cache, backend_config.batch_size, limit)
        info = {
            "backend": backend.identity,
            "prompts": str(prompts_path),
            "dataset": getattr(dataset, "name", ""),
            "limit": limit,
            **{
                k: v
                for k, v in dataclasses.asdict(report).items()
                if k not in ("batches", "backend")
            },
        }
        write_texts(out_dir, requests, texts, info)
        reports[kind] = report
    return reports

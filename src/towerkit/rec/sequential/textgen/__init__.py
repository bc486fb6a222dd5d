"""The offline text generator: user preference summaries and item descriptions, written once by a
language model (or a template) so that serving never calls one.

``run_generation`` is what ``towerkit rec seq generate-text`` runs: requests from a prepared
``SeqDataset`` (users: training prefix only), a backend, the resumable JSONL cache and
``texts.json``.
"""

from __future__ import annotations

from towerkit.rec.sequential.textgen.backends import BackendConfig, make_backend
from towerkit.rec.sequential.textgen.generate import (
    GenerationReport,
    generate_texts,
    read_texts,
    write_texts,
)
from towerkit.rec.sequential.textgen.prompts import PromptSet, load_prompts
from towerkit.rec.sequential.textgen.requests import TextRequest, dataset_requests
from towerkit.rec.sequential.textgen.run import run_generation

__all__ = [
    "BackendConfig",
    "GenerationReport",
    "PromptSet",
    "TextRequest",
    "dataset_requests",
    "generate_texts",
    "load_prompts",
    "make_backend",
    "read_texts",
    "run_generation",
    "write_texts",
]

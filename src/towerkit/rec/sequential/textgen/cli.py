"""``towerkit rec seq generate-text``: user preference summaries and item descriptions, offline.

Resumable: the JSONL cache in OUT keeps every finished batch, and a second run (after a crash or
Ctrl-C) only writes what is missing. API keys come from the environment only.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.console import Console
from rich.table import Table

from towerkit.core.errors import TowerkitError
from towerkit.rec.sequential.textgen.requests import Kind

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("generate-text")(generate_text_command)


def generate_text_command(
    data: Path | None = typer.Option(
        None, "--data", help="a prepared dataset folder (default runs/rec/seq-data/ml-100k)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="folder for texts.json + cache.jsonl (default runs/rec/seq-text/...)"
    ),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="prompt file (default configs/rec/prompts/ur4rec.yaml)"
    ),
    backend: str = typer.Option("template", "--backend", help="template, hf, openai, anthropic"),
    model: str = typer.Option(
        "", "--model", help="hf: asset or folder (default SmolLM2-135M); API: the model id"
    ),
    base_url: str = typer.Option("", "--base-url", help="OpenAI-compatible / Anthropic endpoint"),
    api_key_env: str = typer.Option(
        "", "--api-key-env", help="env var holding the key (default: the provider's usual one)"
    ),
    kinds: str = typer.Option("item,user", "--kinds", help="item, user or both (comma-separated)"),
    limit: int | None = typer.Option(
        None, "--limit", help="at most N texts per kind from the backend; the rest: the template"
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="requests per batch"),
    concurrency: int = typer.Option(4, "--concurrency", help="parallel HTTP requests"),
    temperature: float = typer.Option(0.0, "--temperature", help="0: greedy / deterministic"),
) -> None:
    """Write a preference summary per user (from their training items) and a description per
    item (from its metadata), in batches, cached by content hash."""
    from towerkit.core.paths import repo_root, runs_root
    from towerkit.rec.sequential.data import SeqDataset
    from towerkit.rec.sequential.recipe import prepared_dir
    from towerkit.rec.sequential.textgen import BackendConfig, run_generation
    from towerkit.rec.sequential.textgen.run import DEFAULT_PROMPTS

    folder = data or prepared_dir("ml-100k")
    dataset = SeqDataset.load(folder)
    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    if not wanted or set(wanted) - {"item", "user"}:
        raise TowerkitError(f"--kinds: expected item, user or item,user, got {kinds!r}")
    if limit is not None and limit < 0:
        raise TowerkitError(f"--limit: expected >= 0, got {limit}")
    config = BackendConfig(
        backend=backend,  # type: ignore[arg-type]
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        temperature=temperature,
        batch_size=batch_size,
        concurrency=concurrency,
    )
    target = out or runs_root() / "rec" / "seq-text" / f"{dataset.name}-{backend}"
    prompt_file = prompts or repo_root() / DEFAULT_PROMPTS
    reports = run_generation(dataset, target, prompt_file, config, cast(list[Kind], wanted), limit)
    table = Table(title=f"{dataset.name}: texts by {backend}")
    for column in ("kind", "requested", "generated", "cached", "template", "seconds", "s/text"):
        table.add_column(column, justify="right")
    for kind, r in reports.items():
        table.add_row(
            kind, str(r.requested), str(r.generated), str(r.cached), str(r.template),
            f"{r.seconds:.1f}", f"{r.seconds_per_text:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"texts: {target / 'texts.json'}")

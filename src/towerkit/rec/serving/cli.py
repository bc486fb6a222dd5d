"""``towerkit rec serve`` and ``towerkit rec export-model`` (Serving and export).

A MODEL reference is a registry reference (``rec-two-tower@production``, ``rec-two-tower/3``) or
a run / model directory. ``serve`` resolves it at startup and on POST /reload, so after
``towerkit registry rollback rec-two-tower`` a reload or a restart serves the earlier version.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from towerkit.core.errors import TowerkitError

console = Console(soft_wrap=True)
# uvicorn's default is 5 s, the same as httpx's pool expiry: a server closing an idle connection
# just as a client reuses it resets that request. Clients close their idle connections first
# when the server waits longer (75 s also outlasts a load balancer's usual 60 s idle limit).
KEEP_ALIVE_SECONDS = 75


def serve_command(
    model: str = typer.Option(
        "rec-two-tower@production", "--model", "-m", help="registry reference or model directory"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free port)"),
    index: str = typer.Option("exact", "--index", help="candidate index: exact, ivf or hnsw"),
    target_recall: float = typer.Option(
        0.95, "--target-recall", help="recall@10 against exact that ivf / hnsw are tuned to"
    ),
    threads: int = typer.Option(
        1, "--threads", help="torch and FAISS threads per request (requests run in parallel)"
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log"),
    keep_alive: int = typer.Option(
        KEEP_ALIVE_SECONDS,
        "--keep-alive",
        help="seconds an idle connection stays open; keep it above the clients' own idle limit",
    ),
) -> None:
    """HTTP top-K recommendations: GET /health, POST /recommend, POST /reload."""
    import faiss
    import torch
    import uvicorn

    from towerkit.rec.serving.app import create_app
    from towerkit.rec.serving.service import RecService

    if not 0 <= port <= 65535:
        raise TowerkitError(f"--port {port}: expected 0..65535")
    if threads < 1:
        raise TowerkitError(f"--threads {threads}: expected a positive integer")
    if keep_alive < 1:
        raise TowerkitError(f"--keep-alive {keep_alive}: expected whole seconds >= 1")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    service = RecService(model, index, target_recall=target_recall)
    health = service.served.health()
    report = health["index"]
    console.print(
        f"serving {health['uri']} ({model}): {health['n_candidates']} candidates, "
        f"{report['kind']} index {report['params'] or ''} recall@{report['k']} "
        f"{report['recall']:.3f} vs exact"
    )
    app = create_app(service, threads=threads)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_keep_alive=keep_alive,
    )


def export_model_command(
    model: str = typer.Argument(..., help="registry reference or model directory"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder (default <run>/export)"),
    coreml: bool = typer.Option(False, "--coreml", help="also write query_tower.mlpackage"),
) -> None:
    """Query tower -> ONNX (parity checked) [+ Core ML], candidate embeddings as float16."""
    from towerkit.rec.serving.export import export_model

    outcome = export_model(model, out, coreml=coreml)
    manifest = outcome.manifest
    onnx = manifest["onnx"]
    console.print(f"model: {manifest['uri']}")
    console.print(
        f"onnx: {outcome.out_dir / onnx['file']} (parity ok on batches {onnx['parity']['batches']},"
        f" max |diff| {outcome.parity_max_abs_diff:.2e})"
    )
    if "coreml" in manifest:
        console.print(f"coreml: {outcome.out_dir / manifest['coreml']['file']}")
    candidates = manifest["candidates"]
    overlap = outcome.overlap
    console.print(
        f"candidates: {outcome.out_dir / candidates['file']} float16 {candidates['shape']} + "
        f"{candidates['ids_file']}; top-10 overlap with float32 over {int(overlap['n_queries'])} "
        f"users: mean {overlap['mean']:.4f}, min {overlap['min']:.2f}"
    )


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``towerkit rec`` app."""
    app.command("serve")(serve_command)
    app.command("export-model")(export_model_command)

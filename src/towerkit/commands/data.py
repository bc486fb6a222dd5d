"""``towerkit data ...``: list, fetch and describe named datasets and pretrained models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from towerkit.core.assets import asset_status, fetch, get_asset, list_assets, read_manifest

app = typer.Typer(no_args_is_help=True, help="Named datasets and pretrained models.")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Asset name (see `data list`).")]


def _console(soft_wrap: bool = False) -> Console:
    return Console(highlight=False, soft_wrap=soft_wrap)


def _size(total_bytes: int) -> str:
    size = float(total_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@app.command("list")
def list_command() -> None:
    """Every registered asset with its status and its sources, best first."""
    table = Table(title="assets", title_justify="left")
    table.add_column("name", no_wrap=True)  # copied into commands: never split across lines
    for column in ("kind", "status", "sources"):
        table.add_column(column, overflow="fold")
    for asset in list_assets():
        status = asset_status(asset.name)
        via = f" ({status.source_kind})" if status.source_kind else ""
        via = " (downloads not checked)" if status.state == "remote" else via
        sources = " → ".join(source.kind for source in asset.sources)
        table.add_row(Text(asset.name), asset.kind, status.state + via, sources)
    _console().print(table)
    print("details and paths: towerkit data info NAME")


@app.command("get")
def get_command(
    name: NameArg,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ignore the cache and try the sources again.")
    ] = False,
) -> None:
    """Fetch an asset (cache, then its sources in order) and print its path."""
    print(fetch(name, refresh=refresh))


@app.command("info")
def info_command(name: NameArg) -> None:
    """Description, license, citation, sources and cache state of one asset."""
    asset = get_asset(name)
    status = asset_status(name)
    lines = [
        f"{asset.name} ({asset.kind})",
        f"description: {asset.description}",
        f"license: {asset.license}",
        f"citation: {asset.citation or '-'}",
        f"homepage: {asset.homepage or '-'}",
        f"returns: {'the file ' + asset.file if asset.file else 'a folder'}",
        "sources (tried in order):",
        *(f"  {i}. {source.describe()}" for i, source in enumerate(asset.sources, 1)),
        f"status: {status.summary()}",
    ]
    if status.path is not None:
        lines.append(f"path: {status.path}")
    manifest = read_manifest(name) if status.state == "cached" else None
    if manifest is not None:
        files = manifest.get("files", {})
        total = sum(int(entry.get("bytes", 0)) for entry in files.values())
        lines.append(
            f"fetched: {manifest.get('fetched_at', '?')}, {len(files)} files, {_size(total)}"
        )
        lines.extend(f"skipped: {reason}" for reason in manifest.get("skipped", []))
    console = _console(soft_wrap=True)  # long paths and URLs stay whole
    for line in lines:
        console.print(Text(line))

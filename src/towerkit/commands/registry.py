"""``towerkit registry ...``: list, show, alias, rollback, tag and delete registered models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from towerkit.core.errors import TowerkitError
from towerkit.core.registry import DEFAULT_ALIAS, ModelRegistry, ModelVersion, parse_ref

app = typer.Typer(no_args_is_help=True, help="Registered models, versions and aliases.")

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Registry database file (default: $TOWERKIT_HOME/registry.db)."),
]
RefArg = Annotated[str, typer.Argument(metavar="NAME[/V|@ALIAS]", show_default=False)]


def _console() -> Console:
    return Console(highlight=False)


def _metrics_text(metrics: dict[str, float], limit: int = 4) -> str:
    shown = [f"{key}={value:.4g}" for key, value in sorted(metrics.items())[:limit]]
    return ", ".join(shown) + (", ..." if len(metrics) > limit else "")


def _when(iso: str) -> str:
    """ "2026-05-09T07:35:25+00:00" -> "2026-05-09 07:35" (UTC) for narrow table columns."""
    return iso[:16].replace("T", " ")


def _pairs(mapping: dict[str, str] | dict[str, int], sep: str = "=") -> str:
    return ", ".join(f"{key}{sep}{value}" for key, value in mapping.items()) or "-"


@app.command("list")
def list_models(db: DbOption = None) -> None:
    """Models with their latest version and aliases."""
    registry = ModelRegistry(db)
    models = registry.models()
    console = _console()
    if not models:
        console.print(f"no models registered in {registry.db_path}")
        return
    table = Table(title=f"models in {registry.db_path}", title_justify="left")
    for column in ("model", "versions", "latest", "aliases", "tags", "created (UTC)"):
        table.add_column(column, overflow="fold")
    for model in models:
        table.add_row(
            model.name,
            str(len(model.versions)),
            str(model.latest) if model.latest is not None else "-",
            _pairs(model.aliases, sep="→"),
            _pairs(model.tags),
            _when(model.created_at),
        )
    console.print(table)


def _show_model(registry: ModelRegistry, name: str, console: Console) -> None:
    model = registry.get_model(name)
    console.print(f"[bold]{name}[/bold]  tags: {_pairs(model.tags)}")
    for alias, version in model.aliases.items():
        earlier = registry.alias_history(name, alias)
        history = f" (before: {', '.join(map(str, reversed(earlier)))})" if earlier else ""
        console.print(f"  {alias} → {version}{history}")
    table = Table(title_justify="left")
    for column in ("version", "aliases", "created (UTC)", "metrics", "parent", "description"):
        table.add_column(column, overflow="fold")
    for v in registry.list_versions(name):
        table.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            _when(v.created_at),
            _metrics_text(v.metrics),
            v.parent or "-",
            v.description or "-",
        )
    console.print(table)


def _show_version(registry: ModelRegistry, version: ModelVersion, console: Console) -> None:
    lineage = " ← ".join([version.uri, *registry.lineage(version.uri)])
    table = Table(title=version.uri, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in (
        ("aliases", ", ".join(version.aliases) or "-"),
        ("created", version.created_at),
        ("model dir", version.model_dir),
        ("run dir", version.run_dir or "-"),
        ("config hash", version.config_hash or "-"),
        ("data fingerprint", version.data_fingerprint or "-"),
        ("git commit", version.git_commit or "-"),
        ("description", version.description or "-"),
        ("lineage", lineage),
        ("tags", _pairs(version.tags)),
    ):
        table.add_row(field, value)
    console.print(table)
    if version.metrics:
        metrics = Table(title="metrics", title_justify="left")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for metric, number in sorted(version.metrics.items()):
            metrics.add_row(metric, f"{number:.6g}")
        console.print(metrics)


@app.command()
def show(ref: RefArg, db: DbOption = None) -> None:
    """A model's versions (NAME) or one version in detail (NAME/V, NAME@ALIAS)."""
    registry = ModelRegistry(db)
    name, version, alias = parse_ref(ref)
    if version is None and alias is None:
        _show_model(registry, name, _console())
    else:
        _show_version(registry, registry.resolve(ref), _console())


@app.command()
def alias(
    name: Annotated[str, typer.Argument(show_default=False)],
    alias: Annotated[str, typer.Argument(show_default=False)],
    version: Annotated[int | None, typer.Argument(show_default=False)] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    db: DbOption = None,
) -> None:
    """Point ALIAS of model NAME at VERSION (or remove it with --delete)."""
    registry = ModelRegistry(db)
    if delete:
        registry.delete_alias(name, alias)
        _console().print(f"removed {name}@{alias} (rollback brings it back)")
        return
    if version is None:
        raise TowerkitError(f"registry: alias needs a VERSION for '{name}@{alias}' (or --delete)")
    before = registry.get_model(name).aliases.get(alias)
    registry.set_alias(name, alias, version)
    was = f" (was {name}/{before})" if before is not None and before != version else ""
    _console().print(f"{name}@{alias} → {name}/{version}{was}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(show_default=False)],
    alias: Annotated[str, typer.Option("--alias", help="The alias to move back.")] = DEFAULT_ALIAS,
    db: DbOption = None,
) -> None:
    """Move an alias back to the version it pointed at before (repeat to go further back)."""
    registry = ModelRegistry(db)
    before = registry.get_model(name).aliases.get(alias)
    restored = registry.rollback(name, alias)
    was = f"{name}/{before}" if before is not None else "(none)"
    _console().print(f"{name}@{alias}: {was} → {restored.uri}")


def _confirm_or_refuse(what: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise TowerkitError(f"registry: refusing to delete {what} without --yes (not interactive)")
    if not typer.confirm(f"delete {what}?", default=False):
        raise typer.Abort()


@app.command()
def delete(
    ref: Annotated[str, typer.Argument(metavar="NAME[/V]", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Delete one version (NAME/V) or a whole model (NAME). Version numbers are never reused."""
    registry = ModelRegistry(db)
    name, version, alias = parse_ref(ref)
    if alias is not None:
        raise TowerkitError(f"registry: delete takes NAME or NAME/VERSION, not an alias ({ref!r})")
    if version is None:
        count = len(registry.get_model(name).versions)
        _confirm_or_refuse(f"model '{name}' and its {count} version(s)", yes)
        registry.delete_model(name)
        _console().print(f"deleted model {name} ({count} version(s))")
        return
    dropped = registry.get(name, version).aliases
    _confirm_or_refuse(f"'{name}/{version}'", yes)
    registry.delete_version(name, version)
    note = f" and its aliases {', '.join(dropped)}" if dropped else ""
    _console().print(f"deleted {name}/{version}{note}")


@app.command()
def tag(
    ref: RefArg,
    key: Annotated[str, typer.Argument(show_default=False)],
    value: Annotated[str | None, typer.Argument(show_default=False)] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the tag.")] = False,
    db: DbOption = None,
) -> None:
    """Set tag KEY=VALUE on a model (NAME) or on one version (NAME/V, NAME@ALIAS)."""
    registry = ModelRegistry(db)
    name, version, alias = parse_ref(ref)
    if alias is not None:
        version = registry.resolve(ref).version
    target = name if version is None else f"{name}/{version}"
    if delete:
        registry.delete_tag(name, version, key)
        _console().print(f"removed tag {key} from {target}")
        return
    if value is None:
        raise TowerkitError(f"registry: tag needs a VALUE for {key!r} on '{target}' (or --delete)")
    registry.set_tag(name, version, key, value)
    _console().print(f"tagged {target}: {key}={value}")

"""Placeholder until this command group lands (being written now)."""

import typer

app = typer.Typer(no_args_is_help=True)

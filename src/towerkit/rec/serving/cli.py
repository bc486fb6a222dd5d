"""``towerkit rec`` commands of this part (Serving and export)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``towerkit rec`` app."""

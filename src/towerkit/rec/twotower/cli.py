"""``towerkit rec train`` and ``towerkit rec evaluate``: the two-tower model and its baselines.

A MODEL reference is a registry reference (``rec-two-tower`` follows the ``production`` alias,
else the latest version; ``rec-two-tower@production``; ``rec-two-tower/3``) or a run / model
directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.console import Console
from rich.table import Table

from towerkit.core.errors import TowerkitError

console = Console(soft_wrap=True)
COLUMNS = ("auc", "recall@10", "recall@50", "ndcg@10", "ndcg@50", "warm_recall@50")


def results_table(
    title: str, table: dict[str, dict[str, float]], ks: list[int] | None = None
) -> Table:
    """Models as rows, the headline metrics as columns."""
    columns = list(COLUMNS)
    if ks:
        columns = ["auc", *(f"recall@{k}" for k in ks), *(f"ndcg@{k}" for k in ks)]
        columns += [f"warm_recall@{max(ks)}"]
    present = [c for c in columns if any(c in row for row in table.values())]
    out = Table(title=title)
    out.add_column("model")
    for column in present:
        out.add_column(column, justify="right")
    for name, row in table.items():
        out.add_row(name, *(f"{row[c]:.4f}" if c in row else "-" for c in present))
    return out


def train_command(
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides of the recipe"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="recipe YAML (default: configs/rec/two-tower-quick.yaml)"
    ),
    data: Path | None = typer.Option(None, "--data", help="a `towerkit rec export` folder"),
    db: str | None = typer.Option(None, "--db", help="a store URL (exported into the run first)"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue an interrupted run directory from its last checkpoint"
    ),
    promote: str = typer.Option(
        "auto",
        help="point production at the new version: auto (if its test recall is at least "
        "production's), always, never",
    ),
) -> None:
    """Train the two-tower model on an exported store; evaluate it and the baselines on the
    future (time split); register it as rec-two-tower."""
    from towerkit.rec.twotower.recipe import Promote, train

    if promote not in ("auto", "always", "never"):
        raise TowerkitError(f"--promote: expected auto, always or never, got {promote!r}")
    if data is not None and db is not None:
        raise TowerkitError("--data and --db: give one of them")
    outcome = train(
        config,
        overrides or [],
        data_dir=data,
        db_url=db,
        resume=resume,
        promote=cast(Promote, promote),
    )
    console.print(f"data: {outcome.description}")
    console.print(f"run dir: {outcome.run_dir}")
    console.print(results_table("test split (future interactions)", outcome.table))
    for line in training_lines(outcome.metrics):
        console.print(line)
    if outcome.version is not None:
        state = " (now production)" if outcome.promoted else ""
        console.print(f"registered: {outcome.version.uri}{state}")
    for plot in outcome.plots:
        console.print(f"plot: {plot}")


def training_lines(metrics: dict[str, float]) -> list[str]:
    """What training took: the run, its refit and their like boosters, where there were any."""
    lines = [
        f"training: {metrics['train_seconds']:.1f} s, "
        f"{metrics['train_examples_per_second']:,.0f} examples/s, {metrics['train_steps']:.0f} steps"
    ]
    if "refit_seconds" in metrics:
        lines.append(
            f"refit on train + validation: {metrics['refit_seconds']:.1f} s, "
            f"{metrics['refit_steps']:.0f} steps (the tested model)"
        )
    boosters = [metrics[k] for k in ("booster_seconds", "refit_booster_seconds") if k in metrics]
    if boosters:
        seconds = " + ".join(f"{b:.1f} s" for b in boosters)
        lines.append(f"like booster (LightGBM, blended into the like logit): fitted in {seconds}")
    return lines


def evaluate_command(
    model: str = typer.Argument(..., help="registry reference or run / model directory"),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides (e.g. data.path=)"),
) -> None:
    """Two-tower and baselines on the test split of the data the model was trained on."""
    from towerkit.rec.twotower.recipe import evaluate

    bundle, table, description = evaluate(model, overrides or [])
    console.print(f"model: {bundle.label}")
    console.print(f"data: {description}")
    console.print(results_table("test split (future interactions)", table))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``towerkit rec`` app."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)

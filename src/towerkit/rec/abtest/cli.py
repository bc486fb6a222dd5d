"""``towerkit rec abtest ...``: assign a user, simulate an A/B test between model versions, analyse.

Events live in the store's own database (tables ab_experiments, ab_exposures, ab_outcomes, created
if absent). A MODEL reference is a registry reference (``rec-two-tower/3``,
``rec-two-tower@production``) or a run / model directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from towerkit.rec.abtest.workflow import Outputs

console = Console(soft_wrap=True)
abtest = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)

_DB_HELP = "the store: SQLite file path, sqlite:///FILE, or postgresql+psycopg://USER@HOST/DB"
_SCHEMA_HELP = "Postgres schema of the store (the A/B tables go there too)"


@abtest.command("assign")
def assign_command(
    user_id: str = typer.Argument(..., help="the user id"),
    salt: str = typer.Option("towerkit-abtest", "--salt", help="the experiment's salt"),
    weights: str = typer.Option("0.5,0.5", "--weights", help="comma-separated, one per variant"),
    variants: str = typer.Option("A,B", "--variants", help="comma-separated names, control first"),
    db: str | None = typer.Option(
        None, "--db", help=f"{_DB_HELP}; with --experiment: use its stored salt and weights"
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="a logged experiment"),
    schema: str | None = typer.Option(None, "--schema", help=_SCHEMA_HELP),
) -> None:
    """The variant of one user: sha256(salt, user id) -> weighted variants; same everywhere."""
    from towerkit.core.errors import TowerkitError
    from towerkit.rec.abtest.assign import Assigner, parse_weights, unit_interval

    if (db is None) != (experiment is None):
        raise TowerkitError("--db and --experiment: give both (or neither, with --salt)")
    if db is not None and experiment is not None:
        from towerkit.rec.abtest.workflow import open_log

        assigner = open_log(db, schema).experiment(experiment).assigner
    else:
        names = tuple(v.strip() for v in variants.split(","))
        assigner = Assigner(salt, names, tuple(parse_weights(weights, len(names))))
    shown = ", ".join(
        f"{v}={w:.3g}" for v, w in zip(assigner.variants, assigner.weights, strict=True)
    )
    console.print(
        f"{assigner.assign(user_id)}  (user {user_id!r}, salt {assigner.salt!r}, "
        f"u={unit_interval(assigner.salt, user_id):.6f}, weights {shown})"
    )


@abtest.command("simulate")
def simulate_command(
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    a: str = typer.Option(..., "--a", help="model reference of variant A (the control)"),
    b: str = typer.Option(..., "--b", help="model reference of variant B (the treatment)"),
    salt: str = typer.Option("towerkit-abtest", "--salt", help="assignment salt"),
    weights: str = typer.Option("0.5,0.5", "--weights", help="A,B traffic split"),
    k: int = typer.Option(10, "--k", help="how many candidates each user is shown"),
    experiment: str | None = typer.Option(
        None, "--experiment", help="name to log under (default: 'simulate A-ref vs B-ref')"
    ),
    start: str | None = typer.Option(
        None,
        "--start",
        help="replay likes from this ISO instant (default: the later training "
        "cutoff of the two models)",
    ),
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML mapping of your tables"),
    schema: str | None = typer.Option(None, "--schema", help=_SCHEMA_HELP),
    replace: bool = typer.Option(False, "--replace", help="overwrite a logged experiment"),
    out: Path | None = typer.Option(None, "--out", help="folder for report.json and abtest.png"),
) -> None:
    """Replay held-out likes against two model versions, log the events, analyse them."""
    from towerkit.rec.abtest.workflow import SimulateOptions, save_outputs, simulate_refs

    options = SimulateOptions(
        db, a, b, salt, weights, k, experiment, start, mapping, schema, replace
    )
    report, cutoff, users = simulate_refs(options)
    console.print(
        f"replayed {users:,} users with likes from {cutoff.isoformat()} on: A = "
        f"{report.experiment.models['A']}, B = {report.experiment.models['B']}, top-{k}"
    )
    _print(save_outputs(report, out))


@abtest.command("analyse")
def analyse_command(
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    experiment: str = typer.Option(..., "--experiment", help="the logged experiment's name"),
    schema: str | None = typer.Option(None, "--schema", help=_SCHEMA_HELP),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level (intervals: 1-alpha)"),
    out: Path | None = typer.Option(None, "--out", help="folder for report.json and abtest.png"),
) -> None:
    """Analyse a logged experiment: SRM, rates and means with intervals, z / Welch / CUPED."""
    from towerkit.rec.abtest.workflow import analyse_logged, save_outputs

    report = analyse_logged(db, experiment, schema, alpha)
    _print(save_outputs(report, out))


def _print(outputs: Outputs) -> None:
    from towerkit.rec.abtest.render import comparisons_table, variants_table

    console.print(variants_table(outputs.report))
    console.print(comparisons_table(outputs.report))
    if outputs.report.srm.mismatch:
        console.print("[bold red]sample ratio mismatch: do not trust the comparisons[/]")
    console.print(f"report: {outputs.json_path}")
    console.print(f"plot: {outputs.png_path}")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``towerkit rec`` app."""
    app.add_typer(abtest, name="abtest", help="A/B tests between model versions.")

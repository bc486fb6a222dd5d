"""``towerkit zoo ...``: train, evaluate, predict and export the zoo's models.

A MODEL reference is a registry reference (``zoo-vision``, ``zoo-vision@production``,
``zoo-vision/2``, or just ``vision``) or a run / model directory. A bare name uses the version the
``production`` alias points to (else the latest), so ``towerkit registry rollback zoo-vision``
changes what ``predict`` answers with.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.console import Console
from rich.table import Table

from towerkit.core.errors import TowerkitError

app = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(soft_wrap=True)  # long paths stay on one line


def _metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    return table


@app.command("list")
def list_command() -> None:
    """Families available here and what their predict accepts."""
    from towerkit.zoo.families import get_family, list_families

    for name in list_families():
        family = get_family(name)
        console.print(
            f"{name}: {family.input_kinds}  (default config {family.default_config_path()})"
        )


@app.command("train")
def train_command(
    family: str = typer.Argument(..., help="vision, audio, text or concept"),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="recipe YAML (default: configs/zoo/<family>-quick.yaml)"
    ),
    promote: str = typer.Option(
        "auto",
        help="point the production alias at the new version: auto (if its test metric is at "
        "least production's), always, never",
    ),
    export: bool = typer.Option(True, "--export/--no-export", help="ONNX export + parity check"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue an interrupted run directory from its last checkpoint"
    ),
) -> None:
    """Train a family's recipe on its real data; the run is registered as zoo-<family>."""
    from towerkit.zoo.recipe import Promote, train

    if promote not in ("auto", "always", "never"):
        raise TowerkitError(f"--promote: expected auto, always or never, got {promote!r}")
    chosen = cast(Promote, promote)
    result = train(family, config, overrides or [], promote=chosen, export=export, resume=resume)
    console.print(f"data: {result.data_description}")
    console.print(f"run dir: {result.run_dir}")
    console.print(_metrics_table(f"zoo {family}", result.metrics))
    if result.version is not None:
        where = " (now production)" if result.promoted else ""
        console.print(f"registered: {result.version.uri}{where}")
    for outcome in result.exports:
        console.print(
            f"onnx: {outcome.path} (parity ok on {outcome.cases} cases, "
            f"max |diff| {outcome.max_abs_diff:.2e})"
        )
    for plot in result.plots:
        console.print(f"plot: {plot}")


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="registry reference or model directory"),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides of the data"),
) -> None:
    """Metrics of a saved model on the test split of the data it was trained on."""
    from towerkit.zoo.recipe import evaluate

    loaded, evaluation = evaluate(model, overrides or [])
    console.print(_metrics_table(f"{loaded.label} on the test split", evaluation.metrics))


@app.command("predict")
def predict_command(
    model: str = typer.Argument(..., help="registry reference or model directory"),
    user_input: str = typer.Argument(..., metavar="INPUT", help="file.png, file.wav or a text"),
    top_k: int = typer.Option(3, "--top-k", "-k", help="how many classes to show"),
) -> None:
    """Top classes with probabilities for an image, a recording or a text."""
    from towerkit.zoo.recipe import predict

    loaded, prediction = predict(model, user_input, top_k)
    console.print(f"model: {loaded.label}")
    for rank, (label, probability) in enumerate(prediction.top, start=1):
        console.print(f"{rank}. {label}  {probability:.4f}")


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="registry reference or model directory"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder (default <run>/export)"),
    coreml: bool = typer.Option(False, "--coreml", help="also write a Core ML .mlpackage"),
) -> None:
    """ONNX export with a parity check against PyTorch on real test batches."""
    from towerkit.zoo.recipe import export

    loaded, outcomes = export(model, out, coreml=coreml)
    console.print(f"model: {loaded.label}")
    for outcome in outcomes:
        console.print(
            f"onnx: {outcome.path} (parity ok on {outcome.cases} cases, "
            f"max |diff| {outcome.max_abs_diff:.2e})"
        )
        if outcome.coreml_path is not None:
            console.print(f"coreml: {outcome.coreml_path}")

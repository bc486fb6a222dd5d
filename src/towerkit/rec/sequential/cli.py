"""``towerkit rec seq ...``: prepare data, train, evaluate and recommend with sequential models.

MODEL is a run directory or a registry reference (``rec-seq-sasrec``, ``rec-seq-sasrec/2``,
``rec-seq-sasrec@production``; ``@alias`` and ``/N`` alone mean ``rec-seq-sasrec``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from towerkit.core.errors import TowerkitError

seq_app = typer.Typer(
    no_args_is_help=True, help="Sequential recommendation: SASRec and the UR4Rec models."
)
console = Console(soft_wrap=True)

# --model NAME -> "module:function(config_path, overrides, resume=...)" returning a result with
# run_dir, metrics and version; other sequential models add their recipe here
TRAINERS: dict[str, str] = {
    "sasrec": "towerkit.rec.sequential.recipe:train",
    "ur4rec": "towerkit.rec.sequential.ur4rec:train_ur4rec",
}


def _table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    return table


@seq_app.command("prepare")
def prepare_command(
    fmt: str = typer.Option("ml-100k", "--format", help="ml-100k, ml-1m, recbole, amazon, seqfile"),
    path: Path | None = typer.Option(None, "--path", help="file or folder (ml-100k: the asset)"),
    meta: Path | None = typer.Option(None, "--meta", help="amazon product metadata JSON lines"),
    name: str | None = typer.Option(None, "--name", help="dataset name (default: the format)"),
    user_core: int = typer.Option(5, "--user-core", help="keep users with >= N interactions"),
    item_core: int = typer.Option(5, "--item-core", help="keep items with >= N interactions"),
    out: Path | None = typer.Option(None, "--out", help="folder (default runs/rec/seq-data/NAME)"),
    force: bool = typer.Option(False, "--force", help="rebuild even if OUT is already prepared"),
) -> None:
    """Read a dataset, k-core filter it, order it in time, split it leave-one-out, save it."""
    from towerkit.rec.sequential.data import SeqDataset, build_dataset
    from towerkit.rec.sequential.formats import read_source
    from towerkit.rec.sequential.recipe import DataConfig, prepared_dir, source_path

    name = name or fmt
    target = out or prepared_dir(name)
    wanted = {"name": name, "user_core": user_core, "item_core": item_core}
    if (target / "dataset.json").is_file() and not force:
        done = SeqDataset.load(target)
        if all(done.info.get(k) == v for k, v in wanted.items()):
            console.print(f"already prepared: {done.describe()} in {target} (--force rebuilds)")
            return
    source = source_path(DataConfig(format=fmt, path=str(path) if path else None))
    data = build_dataset(read_source(fmt, source, meta), name, user_core, item_core)
    data.save(target)
    console.print(f"{data.describe()} -> {target}")


@seq_app.command("train")
def train_command(
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="recipe YAML (default configs/rec/seq-sasrec-quick.yaml)"
    ),
    model: str = typer.Option("sasrec", "--model", help="which model's recipe"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue an interrupted run directory from its last checkpoint"
    ),
) -> None:
    """Train a sequential model; the run is registered (rec-seq-<model>)."""
    if model not in TRAINERS:
        raise TowerkitError(f"--model {model!r}: expected one of {', '.join(TRAINERS)}")
    module_name, _, attr = TRAINERS[model].partition(":")
    train: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    result = train(config, overrides or [], resume=resume)
    console.print(f"run dir: {result.run_dir}")
    if getattr(result, "stopped", False):
        console.print(f"stopped early: `--resume {result.run_dir}` continues it")
        return
    console.print(_table(f"rec seq {model}", result.metrics))
    if result.version is not None:
        console.print(f"registered: {result.version.uri}")


@seq_app.command("evaluate")
def evaluate_command(
    model_ref: str = typer.Argument(..., metavar="MODEL"),
    split: str = typer.Option("test", "--split", help="test or valid"),
    negatives: int | None = typer.Option(
        None, "--negatives", help="sampled protocol with N negatives (default: full ranking)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the sampled negatives"),
) -> None:
    """Leave-one-out HR/NDCG@5/10/20, MRR and mean rank of a trained model."""
    from towerkit.rec.sequential.recipe import load_model
    from towerkit.rec.sequential.training import evaluate_model, scorer_for

    if split not in ("test", "valid"):
        raise TowerkitError(f"--split: expected test or valid, got {split!r}")
    loaded = load_model(model_ref)
    max_len = int(getattr(loaded.model.config, "max_len", 50))
    result = evaluate_model(
        scorer_for(loaded.model),
        loaded.data,
        "test" if split == "test" else "valid",
        max_len,
        negatives,
        seed,
        progress=True,
    )
    protocol = "full ranking" if negatives is None else f"{negatives} sampled negatives"
    console.print(_table(f"{loaded.data.name} {split}, {protocol}", result.metrics))


@seq_app.command("recommend")
def recommend_command(
    model_ref: str = typer.Argument(..., metavar="MODEL"),
    user: str | None = typer.Option(None, "--user", help="raw user id: their whole history"),
    items: str | None = typer.Option(
        None, "--items", help="comma-separated raw item ids, in order"
    ),
    k: int = typer.Option(10, "--k", help="how many items"),
) -> None:
    """Top-K next items for a user of the training data or for a given item history."""
    from towerkit.rec.sequential.recipe import load_model
    from towerkit.rec.sequential.serve import recommend

    loaded = load_model(model_ref)
    picks = recommend(loaded.model, loaded.data, user=user, items=items, k=k)
    table = Table(title=f"top {k} for {'user ' + user if user else 'the given items'}")
    for column in ("rank", "item", "score", "text"):
        table.add_column(column)
    for rank, (raw, score, text) in enumerate(picks, start=1):
        table.add_row(str(rank), raw, f"{score:.3f}", text[:80])
    console.print(table)


def _register_textgen() -> None:
    from towerkit.rec.sequential.textgen.cli import register

    register(seq_app)


_register_textgen()

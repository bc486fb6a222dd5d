"""``towerkit repotune ...``: analyse a repository, generate QA data, LoRA fine-tune, merge, evaluate.

Each step runs alone on folders (``analyze PATH -o OUT``, ``generate OUT``, ...); ``run PATH``
chains all five into one run directory under runs/repotune/<recipe>/.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(soft_wrap=True)

_CONFIG = typer.Option(
    None, "--config", "-c", help="recipe YAML (default configs/repotune/quick.yaml)"
)
_OVERRIDES = typer.Argument(None, help="key.sub=value overrides, e.g. finetune.max_steps=10")


def _metrics_table(metrics: dict[str, float]) -> Table:
    table = Table("metric", "value", title="finetune", title_justify="left")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4g}")
    return table


def _config(config: Path | None, overrides: list[str] | None):  # type: ignore[no-untyped-def]
    from towerkit.repotune.pipeline import load_repotune_config

    return load_repotune_config(config, overrides or [])


@app.command("analyze")
def analyze_command(
    target: str = typer.Argument(..., help="repository folder or git URL"),
    out: Path = typer.Option(Path("repotune-out"), "--out", "-o", help="output folder"),
    workers: int = typer.Option(0, help="processes (0: one per CPU)"),
    full: bool = typer.Option(False, "--full", help="re-parse every file (no incremental reuse)"),
) -> None:
    """Write OUT/repository_analysis.json (only changed files are parsed again)."""
    from towerkit.repotune.analyze import ANALYSIS_FILE, analyze_repository

    data = analyze_repository(target, out, workers=workers or None, incremental=not full)
    stats = data["stats"]
    console.print(
        f"{stats['elements']} elements in {stats['files']} files ({stats['files_parsed']} parsed, "
        f"{stats['files_reused']} reused, {stats['skipped']} skipped) in {stats['seconds']:.2f} s"
    )
    for skipped in data["skipped"]:
        console.print(f"skipped {skipped['path']}: {skipped['reason']}")
    console.print(f"wrote {out / ANALYSIS_FILE}")


@app.command("generate")
def generate_command(
    out: Path = typer.Argument(Path("repotune-out"), help="folder with repository_analysis.json"),
    data: Path | None = typer.Option(None, "--data", help="output folder (default OUT/data)"),
    config: Path | None = _CONFIG,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Write train/val/test/heldout_phrasings.jsonl and metadata.json."""
    from towerkit.repotune.generate import generate_dataset

    meta = generate_dataset(out, data or out / "data", _config(config, overrides).generate)
    console.print("samples: " + ", ".join(f"{n} {c}" for n, c in meta["counts"].items()))
    for split, reasons in meta["removed"].items():
        dropped = ", ".join(f"{reason} {count}" for reason, count in reasons.items() if count)
        console.print(f"removed from {split}: {dropped or 'none'}")
    console.print(f"{meta['samples_per_minute']:.0f} samples/minute; wrote {data or out / 'data'}")


@app.command("finetune")
def finetune_command(
    data: Path = typer.Argument(Path("repotune-out/data"), help="folder with train.jsonl"),
    run: Path = typer.Option(Path("repotune-out/finetune"), "--run", help="run folder"),
    config: Path | None = _CONFIG,
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint"),
    overrides: list[str] = _OVERRIDES,
) -> None:
    """LoRA fine-tune the base model; the adapter lands in RUN/adapter."""
    from towerkit.repotune.finetune import finetune

    metrics = finetune(data, run, _config(config, overrides).finetune, resume=resume)
    console.print(_metrics_table(metrics))


@app.command("merge")
def merge_command(
    run: Path = typer.Argument(Path("repotune-out/finetune"), help="fine-tune run folder"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="merged model folder (default RUN/merged)"
    ),
    data: Path | None = typer.Option(None, "--data", help="data folder for parity prompts"),
    config: Path | None = _CONFIG,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Merge the adapter into the base and check logit parity."""
    from towerkit.repotune.merge import merge_adapter

    report = merge_adapter(
        run, out or run / "merged", _config(config, overrides).merge, data_dir=data
    )
    console.print(
        f"merged into {out or run / 'merged'}: max |logit diff| {report['parity_max_abs_diff']:.2e}"
    )


@app.command("evaluate")
def evaluate_command(
    run: Path = typer.Argument(
        Path("repotune-out/finetune"), help="fine-tune run folder (with merged/)"
    ),
    data: Path = typer.Option(Path("repotune-out/data"), "--data", help="data folder"),
    config: Path | None = _CONFIG,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Base vs fine-tuned on the held-out sets; writes RUN/evaluation.{json,md}."""
    from towerkit.repotune.evaluate import evaluate_models
    from towerkit.repotune.finetune import adapter_base

    evaluate_models(
        adapter_base(run), run / "merged", data, run, _config(config, overrides).evaluate
    )
    console.print((run / "evaluation.md").read_text())


@app.command("run")
def run_command(
    target: str = typer.Argument(..., help="repository folder or git URL"),
    config: Path | None = _CONFIG,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """analyze -> generate -> finetune -> merge -> evaluate in one run directory."""
    from towerkit.repotune.pipeline import run_all

    result = run_all(target, _config(config, overrides))
    console.print((result.run_dir / "evaluation.md").read_text())
    console.print(f"run directory: {result.run_dir}")

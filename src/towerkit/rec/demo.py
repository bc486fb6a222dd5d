"""The rec domain's part of ``towerkit demo``: the two-tower path on MovieLens-100K.

``run_demo(out_dir)`` runs ``STEPS`` in order on one shared ``DemoContext``:

    seed-db  -> a SQLite store under out_dir filled from MovieLens-100K
    export   -> Parquet export of the store (out_dir/export)
    train    -> the quick two-tower recipe on the export, registered as rec-two-tower
    evaluate -> the registered version reloaded by reference and evaluated again (same split)
    serve, export-model -> towerkit.rec.serving.demo_steps
    abtest   -> a one-step challenger against the trained model (towerkit.rec.abtest.demo_steps)

Later parts of the path (serving, ONNX / Core ML export, A/B simulation) add their steps by
appending ``(name, function)`` to ``STEPS``; a step reads what earlier steps left on the context
(``db_url``, ``export_dir``, ``outcome``: the trained run, ``version_ref``: the registry reference)
and adds ``metrics``, ``notes`` and ``plots`` for the report. Each step's wall time is noted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from towerkit.core.errors import TowerkitError
from towerkit.core.report import DemoSection
from towerkit.rec.twotower.recipe import TWO_TOWER, TrainOutcome

HEADLINE = ("auc", "recall@50", "ndcg@50", "warm_recall@50")


@dataclass
class DemoContext:
    out_dir: Path
    overrides: list[str] = field(default_factory=list)
    db_url: str = ""
    export_dir: Path | None = None
    outcome: TrainOutcome | None = None
    version_ref: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


DemoStep = Callable[[DemoContext], None]


def seed_step(ctx: DemoContext) -> None:
    from towerkit.rec.assets import fetch
    from towerkit.rec.store.engine import create_store_engine
    from towerkit.rec.store.movielens import load_movielens_100k
    from towerkit.rec.store.seed import seed_store

    ctx.db_url = f"sqlite:///{(ctx.out_dir / 'store.db').resolve()}"
    engine = create_store_engine(ctx.db_url)
    try:
        result = seed_store(engine, load_movielens_100k(fetch("movielens-100k")), replace=True)
    finally:
        engine.dispose()
    ctx.notes.append(
        f"seed-db: {result.users:,} users, {result.items:,} movies, {result.likes:,} likes, "
        f"{result.passes:,} passes into {ctx.db_url}"
    )


def export_step(ctx: DemoContext) -> None:
    from towerkit.rec.store import export_store

    ctx.export_dir = ctx.out_dir / "export"
    result = export_store(ctx.db_url, ctx.export_dir, full=True)
    ctx.notes.append(f"export: {result.interactions:,} interactions to {ctx.export_dir}")


def train_step(ctx: DemoContext) -> None:
    from towerkit.rec.twotower.recipe import train

    outcome = train(None, ctx.overrides, data_dir=ctx.export_dir, runs_root=ctx.out_dir / "runs")
    ctx.outcome = outcome
    assert outcome.version is not None
    ctx.version_ref = outcome.version.uri
    for name, row in outcome.table.items():
        for metric in HEADLINE:
            if metric in row:
                key = f"test_{metric}" if name == TWO_TOWER else f"test_{name}_{metric}"
                ctx.metrics[key] = row[metric]
    ctx.metrics["train_seconds"] = outcome.metrics["train_seconds"]
    ctx.metrics["train_examples_per_second"] = outcome.metrics["train_examples_per_second"]
    ctx.plots.extend(p for p in outcome.plots if p.is_file())
    state = "now production" if outcome.promoted else "production unchanged"
    ctx.notes.append(f"train: {outcome.description}; registered as {ctx.version_ref} ({state})")


def evaluate_step(ctx: DemoContext) -> None:
    from towerkit.rec.twotower.recipe import evaluate

    assert ctx.version_ref is not None and ctx.outcome is not None
    bundle, table, _ = evaluate(ctx.version_ref)
    again, before = table[TWO_TOWER]["recall@50"], ctx.outcome.table[TWO_TOWER]["recall@50"]
    if abs(again - before) > 1e-9:
        raise TowerkitError(
            f"evaluate: {bundle.label} gives recall@50 {again:.6f}, training reported {before:.6f}"
        )
    ctx.notes.append(f"evaluate {bundle.label}: recall@50 {again:.4f}, the same as at training")


def _later_steps() -> list[tuple[str, DemoStep]]:
    # imported here: those modules refer back to DemoContext
    from towerkit.rec.abtest.demo_steps import abtest_step
    from towerkit.rec.serving.demo_steps import STEPS as SERVING_STEPS

    return [*SERVING_STEPS, ("abtest", abtest_step)]


STEPS: list[tuple[str, DemoStep]] = [
    ("seed-db", seed_step),
    ("export", export_step),
    ("train", train_step),
    ("evaluate", evaluate_step),
    *_later_steps(),  # serve, export-model, abtest
]


def run_demo(
    out_dir: Path, overrides: Sequence[str] = ("trainer.progress=true",)
) -> list[DemoSection]:
    """One section: the whole rec path on MovieLens-100K (a note says why when data is absent)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out_dir, list(overrides))
    started = time.perf_counter()
    for name, step in STEPS:
        step_started = time.perf_counter()
        try:
            step(ctx)
        except TowerkitError as exc:
            if name != "seed-db":
                raise
            note = f"skipped: {exc}"  # MovieLens-100K not reachable here
            return [DemoSection("rec", "rec two-tower: MovieLens-100K", notes=[note])]
        ctx.notes.append(f"{name}: {time.perf_counter() - step_started:.1f} s")
    return [
        DemoSection(
            domain="rec",
            title="rec two-tower: MovieLens-100K swipes (like / pass) -> retrieval model",
            metrics=ctx.metrics,
            plots=ctx.plots,
            notes=ctx.notes,
            run_dir=ctx.outcome.run_dir if ctx.outcome else None,
            seconds=time.perf_counter() - started,
        )
    ]

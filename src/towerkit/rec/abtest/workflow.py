"""What the ``towerkit rec abtest`` commands do, apart from printing: open, simulate, analyse, save."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.core.paths import runs_root
from towerkit.rec.abtest.analysis import ExperimentReport, analyse
from towerkit.rec.abtest.assign import parse_weights
from towerkit.rec.abtest.events import EventLog, Experiment
from towerkit.rec.abtest.render import report_png

VARIANTS = ("A", "B")  # A is the control


@dataclass(frozen=True)
class Outputs:
    report: ExperimentReport
    json_path: Path
    png_path: Path


def open_log(db: str, schema: str | None = None, *, create: bool = False) -> EventLog:
    """The event tables in the existing store behind ``db``; ``create`` makes them if absent,
    otherwise their absence is an error (reading commands change nothing)."""
    from towerkit.rec.store.engine import check_connection, create_store_engine, redact

    engine = create_store_engine(db, must_exist=True)
    check_connection(engine)
    log = EventLog(engine, schema=schema)
    if create:
        log.create()
    elif not log.exists():
        where = f" in schema {schema!r}" if schema else ""
        raise TowerkitError(
            f"--db {redact(engine.url)!r}: no A/B tables (ab_experiments, ...){where}; "
            "`towerkit rec abtest simulate` or your app's logging creates them"
        )
    return log


def save_outputs(report: ExperimentReport, out: Path | None) -> Outputs:
    folder = out or runs_root() / "rec" / "abtest" / _slug(report.experiment.name)
    json_path = folder / "report.json"
    write_json_atomic(json_path, report.to_dict())
    png_path = report_png(report, folder / "abtest.png")
    return Outputs(report, json_path, png_path)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"


def analyse_logged(
    db: str, name: str, schema: str | None = None, alpha: float = 0.05
) -> ExperimentReport:
    check_alpha(alpha)  # before the store is opened
    log = open_log(db, schema)
    experiment = log.experiment(name)
    return analyse(experiment, log.load(experiment), alpha)


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise TowerkitError(f"--alpha: expected a number between 0 and 1, got {alpha}")


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TowerkitError(f"--start: expected an ISO 8601 instant, got {text!r}") from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SimulateOptions:
    db: str
    a: str
    b: str
    salt: str = "towerkit-abtest"
    weights: str = "0.5,0.5"
    k: int = 10
    experiment: str | None = None
    start: str | None = None
    mapping: Path | None = None
    schema: str | None = None
    replace: bool = False
    alpha: float = 0.05


def simulate_refs(options: SimulateOptions) -> tuple[ExperimentReport, datetime, int]:
    """Replay the store's held-out likes against two registered model versions; analyse."""
    from towerkit.rec.abtest.heldout import read_heldout
    from towerkit.rec.abtest.simulate import (
        SIMULATION_METRICS,
        BundleRecommender,
        simulate,
        training_cutoff,
    )
    from towerkit.rec.store.mapping import bind_mapping, load_mapping
    from towerkit.rec.twotower.api import load_bundle

    # the arguments first (the --mapping file too), then the store, then the models: a bad flag
    # fails before the A/B tables are created or a model loads, a bad --db before the models load
    weights = parse_weights(options.weights, len(VARIANTS))
    if options.k < 1:
        raise TowerkitError(f"--k: expected at least 1, got {options.k}")
    check_alpha(options.alpha)
    given_start = None if options.start is None else _instant(options.start)
    mapping, source = load_mapping(options.mapping, options.schema)
    log = open_log(options.db, options.schema, create=True)
    bound = bind_mapping(log.engine, mapping, source)
    bundles = {"A": load_bundle(options.a), "B": load_bundle(options.b)}
    if given_start is not None:
        start = given_start
    else:  # the later cutoff: neither model has trained on what is replayed
        start = max(training_cutoff(b.run_dir, b.label) for b in bundles.values())
    heldout = read_heldout(log.engine, bound, start)
    experiment = Experiment(
        options.experiment or f"simulate {bundles['A'].label} vs {bundles['B'].label}",
        options.salt,
        VARIANTS,
        tuple(weights),
        SIMULATION_METRICS,
        {v: b.label for v, b in bundles.items()},
        f"replay of likes from {start.isoformat()} on, top-{options.k}",
    )
    recommenders = {v: BundleRecommender(b) for v, b in bundles.items()}
    simulate(log, experiment, heldout, recommenders, options.k, options.replace)
    report = analyse(experiment, log.load(experiment), options.alpha)
    return report, start, len(heldout.users)

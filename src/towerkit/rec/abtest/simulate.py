"""Replay held-out interactions as an A/B test between two recommenders (model versions).

Each held-out user is assigned by the experiment's salt and weights, exposed to its variant's
top-K (items it saw before the cutoff excluded), and its outcomes are computed from what it then
really liked: ``conversion`` (any held-out like in the top-K), ``hits`` (how many) and
``ndcg`` (binary gains, ideal DCG over min(K, likes): the definition of
``towerkit.core.metrics.ranking``), with ``pre_activity`` (interactions before the cutoff) as the
CUPED covariate. Exposures and outcomes go to the event tables; the analysis reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from rich.progress import Progress

from towerkit.core.config import read_yaml
from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.events import EventLog, Experiment, MetricKind
from towerkit.rec.abtest.heldout import HeldOut

if TYPE_CHECKING:
    from towerkit.rec.twotower.api import TwoTowerBundle

SIMULATION_METRICS: dict[str, MetricKind] = {
    "conversion": "binary",
    "hits": "continuous",
    "ndcg": "continuous",
    "pre_activity": "covariate",
}


class Recommender(Protocol):
    label: str

    def top_k(
        self, user_ids: Sequence[str], k: int, exclude: Sequence[set[str]]
    ) -> list[list[str]]:
        """Each user's k best candidate ids, best first, none of ``exclude[i]``."""
        ...


class BundleRecommender:
    """Top-K by inner product of a two-tower bundle's query and candidate embeddings."""

    def __init__(self, bundle: TwoTowerBundle) -> None:
        self.bundle = bundle
        self.label = bundle.label
        self.ids = np.array(bundle.candidate_ids(), dtype=object)
        self.row = {item: n for n, item in enumerate(self.ids)}
        self.items = bundle.candidate_embeddings()

    def top_k(
        self, user_ids: Sequence[str], k: int, exclude: Sequence[set[str]]
    ) -> list[list[str]]:
        if not user_ids:
            return []
        scores = self.bundle.query_embeddings(list(user_ids)) @ self.items.T
        for n, (user, items) in enumerate(zip(user_ids, exclude, strict=True)):
            masked = items | self.bundle.seen_items(user)
            rows = [self.row[i] for i in masked if i in self.row]
            scores[n, rows] = -np.inf
        # a stable full sort rather than argpartition: ties keep candidate order, so the same
        # model shows the same list on every run and machine
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [
            [str(self.ids[i]) for i in row if np.isfinite(scores[n, i])]
            for n, row in enumerate(best)
        ]


def user_outcomes(shown: Sequence[str], liked: set[str], k: int) -> tuple[float, float, float]:
    """(conversion, hits, ndcg) of one exposure."""
    positions = [pos for pos, item in enumerate(shown[:k], start=1) if item in liked]
    dcg = sum(1.0 / np.log2(pos + 1) for pos in positions)
    ideal = sum(1.0 / np.log2(pos + 1) for pos in range(1, min(k, len(liked)) + 1))
    return float(bool(positions)), float(len(positions)), float(dcg / ideal) if ideal else 0.0


@dataclass(frozen=True)
class SimulationResult:
    experiment: Experiment
    users: int
    exposures: dict[str, int]


def simulate(
    log: EventLog,
    experiment: Experiment,
    heldout: HeldOut,
    recommenders: Mapping[str, Recommender],
    k: int,
    replace: bool = False,
    batch_size: int = 512,
) -> SimulationResult:
    """Store the experiment, then assign, expose and record every held-out user, all in one
    transaction (a failure leaves nothing behind); ``recommenders`` maps variant -> model."""
    if k < 1:
        raise TowerkitError(f"--k: expected at least 1, got {k}")
    missing = [v for v in experiment.variants if v not in recommenders]
    if missing:
        raise TowerkitError(f"recommenders: no model for variant {missing[0]!r}")
    users = heldout.users
    variants = experiment.assigner.assign_many(users)
    by_variant = {
        v: [u for u, a in zip(users, variants, strict=True) if a == v] for v in recommenders
    }
    now = datetime.now(UTC)
    with log.transaction() as conn, Progress(transient=True) as progress:
        log.save_experiment(experiment, replace=replace, conn=conn)
        task = progress.add_task("replaying held-out users", total=len(users))
        for variant, members in by_variant.items():
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                seen = [heldout.seen.get(u, set()) for u in batch]
                shown = recommenders[variant].top_k(batch, k, seen)
                log.expose(experiment, batch, shown, at=heldout.start, conn=conn)
                log.record(experiment, _events(batch, shown, heldout, k), at=now, conn=conn)
                progress.advance(task, len(batch))
    counts = {v: len(m) for v, m in by_variant.items()}
    return SimulationResult(experiment, len(users), counts)


def _events(
    users: Sequence[str], shown: Sequence[Sequence[str]], heldout: HeldOut, k: int
) -> list[tuple[str, str, float]]:
    events: list[tuple[str, str, float]] = []
    for user, items in zip(users, shown, strict=True):
        conversion, hits, ndcg = user_outcomes(items, heldout.likes[user], k)
        events += [(user, "conversion", conversion), (user, "hits", hits), (user, "ndcg", ndcg)]
        events.append((user, "pre_activity", float(heldout.pre_activity.get(user, 0))))
    return events


def training_cutoff(run_dir: Path | None, label: str) -> datetime:
    """The first instant a model did not train on: its run's ``trained_until`` (split.json);
    for a run saved before that key, ``val_start``, or ``test_start`` where its config.yaml says
    ``refit: true`` (a refitted model trained on the validation period too)."""
    path = run_dir / "split.json" if run_dir is not None else None
    if path is None or not path.is_file():
        raise TowerkitError(
            f"{label}: no split.json in its run directory, so its training cutoff is unknown; "
            "pass --start ISO-INSTANT"
        )
    try:
        split = json.loads(path.read_text())
        key = "trained_until" if "trained_until" in split else _older_run_key(path.parent)
        text = split[key]
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError):
        raise TowerkitError(
            f"{path}: expected JSON with an ISO 8601 'trained_until' (or 'val_start')"
        ) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _older_run_key(run_dir: Path) -> str:
    config = run_dir / "config.yaml"
    refit = config.is_file() and read_yaml(config).get("refit") is True
    return "test_start" if refit else "val_start"

"""Experiments, exposures and outcomes in SQLite and in the real Postgres server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.analysis import analyse
from towerkit.rec.abtest.events import EventLog, Experiment
from towerkit.rec.abtest.stats import cuped_test
from towerkit.rec.store.engine import create_store_engine

METRICS = {"conversion": "binary", "hits": "continuous", "pre_activity": "covariate"}


def _experiment(name: str = "exp-1", weights: tuple[float, ...] = (0.5, 0.5)) -> Experiment:
    return Experiment(
        name, "salt-1", ("control", "treatment"), weights, dict(METRICS), {"control": "m/1"}
    )


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    if request.param == "sqlite":
        engine = create_store_engine(str(tmp_path / "store.db"))
        events = EventLog(engine, prefix="ab_")
    else:
        schema = request.getfixturevalue("pg_schema")
        engine = create_store_engine(request.getfixturevalue("pg_url"))
        events = EventLog(engine, schema=schema)
    events.create()
    yield events
    events.drop()
    engine.dispose()


def test_experiment_round_trip_and_duplicates(log: EventLog) -> None:
    experiment = _experiment()
    log.save_experiment(experiment)
    assert log.experiment("exp-1") == experiment
    assert log.experiment_names() == ["exp-1"]
    with pytest.raises(TowerkitError, match="'exp-1' already exists"):
        log.save_experiment(experiment)
    with pytest.raises(TowerkitError, match=r"'nope': not in the database \(known: exp-1\)"):
        log.experiment("nope")


def test_exposures_use_the_assignment_and_the_first_one_counts(log: EventLog) -> None:
    experiment = _experiment()
    log.save_experiment(experiment)
    users = [str(n) for n in range(300)]
    variants = log.expose(experiment, users, items=[[n, n + 1] for n in range(300)])
    assert variants == experiment.assigner.assign_many(users)
    log.expose(experiment, users[:50])  # a second exposure of the same users is ignored
    data = log.load(experiment)
    assert sorted(data.users) == sorted(users)
    got = dict(zip(data.users, (experiment.variants[i] for i in data.variant_index), strict=True))
    assert got == dict(zip(users, variants, strict=True))
    with log.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(log.exposures)).scalar_one()
        items = conn.execute(
            sa.select(log.exposures.c.shown_items).where(log.exposures.c.user_id == "7")
        ).scalar_one()
    assert total == 300
    assert items == ["7", "8"]


def test_outcomes_are_summed_per_user_and_binary_metrics_become_0_or_1(log: EventLog) -> None:
    experiment = _experiment()
    log.save_experiment(experiment)
    log.expose(experiment, ["a", "b", "c"])
    log.record(
        experiment,
        [
            ("a", "conversion", 1),
            ("a", "conversion", 1),
            ("a", "hits", 2.0),
            ("a", "hits", 1.5),
            ("b", "pre_activity", 12),
            ("never-exposed", "hits", 9.0),
        ],
    )
    data = log.load(experiment)
    by_user = {u: n for n, u in enumerate(data.users)}
    assert data.values["conversion"][by_user["a"]] == 1.0
    assert data.values["hits"][by_user["a"]] == 3.5
    assert data.values["pre_activity"][by_user["b"]] == 12.0
    assert data.values["hits"][by_user["c"]] == 0.0  # no event: zero
    assert "never-exposed" not in by_user
    with pytest.raises(TowerkitError, match="metric 'revenue': expected one of conversion"):
        log.record(experiment, [("a", "revenue", 1.0)])


def test_replace_removes_the_old_experiments_events(log: EventLog) -> None:
    experiment = _experiment()
    log.save_experiment(experiment)
    log.expose(experiment, ["a", "b"])
    log.record(experiment, [("a", "hits", 1.0)])
    log.save_experiment(experiment, replace=True)
    data = log.load(experiment)
    assert data.users == []
    assert log.experiment_names() == ["exp-1"]


def test_analysis_of_logged_events_equals_analysis_in_memory(log: EventLog) -> None:
    experiment = _experiment(weights=(0.3, 0.7))
    log.save_experiment(experiment)
    rng = np.random.default_rng(0)
    users = [f"u{n}" for n in range(400)]
    variants = log.expose(experiment, users)
    pre = rng.gamma(2.0, 15.0, len(users)).round()
    lift = np.array([0.3 if v == "treatment" else 0.0 for v in variants])
    hits = rng.poisson(0.1 * pre + lift).astype(float)
    events = [(u, "pre_activity", p) for u, p in zip(users, pre, strict=True)]
    events += [(u, "hits", h) for u, h in zip(users, hits, strict=True) if h]
    events += [(u, "conversion", 1.0) for u, h in zip(users, hits, strict=True) if h > 0]
    assert log.record(experiment, events) == len(events)
    report = analyse(experiment, log.load(experiment))
    in_t = np.array([v == "treatment" for v in variants])
    assert report.srm.observed == {"control": int((~in_t).sum()), "treatment": int(in_t.sum())}
    assert report.srm.expected["control"] == pytest.approx(0.3 * 400)
    rates = report.rates["conversion"]
    assert rates["treatment"].successes == int((hits[in_t] > 0).sum())
    hits_cmp = next(c for c in report.comparisons if c.metric == "hits")
    assert hits_cmp.welch is not None and hits_cmp.cuped is not None
    assert hits_cmp.welch.diff == pytest.approx(hits[in_t].mean() - hits[~in_t].mean())
    expected = cuped_test((hits[~in_t], pre[~in_t]), (hits[in_t], pre[in_t]))
    assert hits_cmp.cuped.theta == pytest.approx(expected.theta, rel=1e-9)
    assert hits_cmp.cuped.adjusted.p_value == pytest.approx(expected.adjusted.p_value, rel=1e-9)
    assert hits_cmp.cuped.variance_reduction > 0.3  # pre-period activity predicts hits


def test_identifiers_are_checked_before_any_sql(tmp_path: Path) -> None:
    engine = create_store_engine(str(tmp_path / "store.db"))
    with pytest.raises(TowerkitError, match="table prefix"):
        EventLog(engine, prefix="ab_; DROP TABLE users; --")
    with pytest.raises(TowerkitError, match="schema"):
        EventLog(engine, schema='public"; DROP')
    assert not (tmp_path / "store.db").exists() or not sa.inspect(engine).get_table_names()


def test_experiment_config_is_validated() -> None:
    with pytest.raises(TowerkitError, match="expected one of"):
        Experiment("e", "s", ("a", "b"), (0.5, 0.5), {"m": "ratio"})  # type: ignore[dict-item]
    with pytest.raises(TowerkitError, match="at most one covariate"):
        Experiment("e", "s", ("a", "b"), (0.5, 0.5), {"x": "covariate", "y": "covariate"})
    with pytest.raises(TowerkitError, match="experiment name"):
        Experiment("", "s", ("a", "b"), (0.5, 0.5), {})

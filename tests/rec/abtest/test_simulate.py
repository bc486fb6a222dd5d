"""Replaying a store's held-out likes (a tiny seeded store with a known future after day 70 of
100): what is read, what is shown, what is logged."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from sklearn.metrics import ndcg_score

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.analysis import analyse
from towerkit.rec.abtest.events import EventLog, Experiment
from towerkit.rec.abtest.heldout import HeldOut, read_heldout
from towerkit.rec.abtest.simulate import (
    SIMULATION_METRICS,
    simulate,
    training_cutoff,
    user_outcomes,
)
from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.mapping import bind_mapping, load_mapping
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store

START_SECONDS = 880_000_000
CUTOFF = datetime.fromtimestamp(START_SECONDS + 70 * 86400, UTC)


def tiny_movielens(n_users: int = 80, n_items: int = 40, per_user: int = 16) -> MovieLens:
    rng = np.random.default_rng(11)
    users = pl.DataFrame(
        {
            "user_id": [str(u) for u in range(1, n_users + 1)],
            "age": [20 + u % 30 for u in range(n_users)],
            "gender": ["F" if u % 2 else "M" for u in range(n_users)],
            "occupation": [f"job{u % 5}" for u in range(n_users)],
            "zip_code": [f"{u % 10}0000" for u in range(n_users)],
        }
    )
    items = pl.DataFrame(
        {
            "item_id": [str(i) for i in range(1, n_items + 1)],
            "title": [f"Movie {i}" for i in range(1, n_items + 1)],
            "year": [1990 + i % 9 for i in range(n_items)],
            "genres": [["Drama"] if i % 2 else ["Comedy"] for i in range(n_items)],
        },
        schema={"item_id": pl.String, "title": pl.String, "year": pl.Int64,
                "genres": pl.List(pl.String)},
    )  # fmt: skip
    rows = []
    for u in range(1, n_users + 1):
        for i in rng.choice(n_items, size=per_user, replace=False):
            rating = int(rng.choice([1, 2, 4, 5]))
            rows.append(
                (str(u), str(i + 1), rating, START_SECONDS + int(rng.integers(0, 100 * 86400)))
            )
    ratings = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return MovieLens(ratings, users, items)


@pytest.fixture(scope="session")
def tiny() -> MovieLens:
    return tiny_movielens()


class Oracle:
    """Shows the user's held-out likes first: the best any model could do."""

    label = "oracle"

    def __init__(self, heldout: HeldOut, items: Sequence[str]) -> None:
        self.heldout, self.items = heldout, list(items)

    def top_k(
        self, user_ids: Sequence[str], k: int, exclude: Sequence[set[str]]
    ) -> list[list[str]]:
        out = []
        for user, seen in zip(user_ids, exclude, strict=True):
            liked = sorted(self.heldout.likes[user] - seen)
            rest = [i for i in self.items if i not in seen and i not in liked]
            out.append((liked + rest)[:k])
        return out


class Fixed:
    """The same ordered catalogue for everyone, seen items left out."""

    def __init__(self, items: Sequence[str], label: str) -> None:
        self.items, self.label = list(items), label

    def top_k(
        self, user_ids: Sequence[str], k: int, exclude: Sequence[set[str]]
    ) -> list[list[str]]:
        return [[i for i in self.items if i not in seen][:k] for seen in exclude]


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, tiny: MovieLens
) -> Iterator[tuple[sa.Engine, str | None]]:
    if request.param == "sqlite":
        engine, schema = create_store_engine(str(tmp_path / "store.db")), None
    else:
        engine = create_store_engine(request.getfixturevalue("pg_url"))
        schema = request.getfixturevalue("pg_schema")
    seed_store(engine, tiny, schema=schema)
    yield engine, schema
    engine.dispose()


def _heldout(engine: sa.Engine, schema: str | None) -> HeldOut:
    mapping, source = load_mapping(None, schema)
    return read_heldout(engine, bind_mapping(engine, mapping, source), CUTOFF)


def test_read_heldout_matches_the_ratings(
    store: tuple[sa.Engine, str | None], tiny: MovieLens
) -> None:
    heldout = _heldout(*store)
    at = pl.from_epoch("timestamp", time_unit="s").dt.replace_time_zone("UTC")
    rated = tiny.ratings.filter(pl.col("rating") != 3).with_columns(at.alias("at"))
    later = rated.filter((pl.col("at") >= CUTOFF) & (pl.col("rating") >= 4))
    expected_likes = {u: set(g["item_id"]) for (u,), g in later.group_by("user_id")}
    assert heldout.likes == expected_likes
    before = rated.filter(pl.col("at") < CUTOFF)
    user = heldout.users[0]
    mine = before.filter(pl.col("user_id") == user)
    assert heldout.seen[user] == set(mine["item_id"])
    assert heldout.pre_activity[user] == mine.height
    assert set(heldout.seen) <= set(heldout.likes)  # only held-out users are read back


def test_read_heldout_after_the_last_interaction_is_one_clear_error(
    store: tuple[sa.Engine, str | None],
) -> None:
    engine, schema = store
    mapping, source = load_mapping(None, schema)
    late = CUTOFF.replace(year=2030)
    with pytest.raises(TowerkitError, match="no like at or after 2030"):
        read_heldout(engine, bind_mapping(engine, mapping, source), late)


def test_user_outcomes_agree_with_scikit_learn() -> None:
    catalogue = [str(i) for i in range(12)]
    shown, liked = ["3", "7", "1", "9"], {"7", "9", "11"}
    conversion, hits, ndcg = user_outcomes(shown, liked, k=4)
    assert (conversion, hits) == (1.0, 2.0)
    # the same list as scores over the whole catalogue: shown items first, in order
    scores = np.array([[len(shown) - shown.index(i) if i in shown else 0 for i in catalogue]])
    relevance = np.array([[1 if i in liked else 0 for i in catalogue]])
    assert ndcg == pytest.approx(ndcg_score(relevance, scores, k=4))
    assert user_outcomes(["1", "2"], {"5"}, k=2) == (0.0, 0.0, 0.0)


def _experiment(name: str) -> Experiment:
    return Experiment(name, "sim-salt", ("A", "B"), (0.5, 0.5), SIMULATION_METRICS)


def test_simulation_logs_exposures_and_detects_the_better_model(
    store: tuple[sa.Engine, str | None],
) -> None:
    engine, schema = store
    heldout = _heldout(engine, schema)
    items = [str(i) for i in range(1, 41)]
    log = EventLog(engine, schema=schema)
    log.create()
    experiment = _experiment("oracle-vs-fixed")
    recommenders = {"A": Fixed(items[::-1], "fixed"), "B": Oracle(heldout, items)}
    result = simulate(log, experiment, heldout, recommenders, k=5)
    assert result.users == len(heldout.users)
    assert result.exposures == log.load(experiment).counts(("A", "B"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(log.exposures.c.user_id, log.exposures.c.shown_items))
        shown = {row.user_id: row.shown_items for row in rows}
    for user, items_shown in shown.items():
        assert len(items_shown) == 5
        assert not set(items_shown) & heldout.seen.get(user, set())  # seen items never shown
    report = analyse(experiment, log.load(experiment))
    assert report.rates["conversion"]["B"].rate == 1.0
    conversion = next(c for c in report.comparisons if c.metric == "conversion")
    assert conversion.proportion is not None and conversion.proportion.p_value < 1e-3
    assert conversion.proportion.diff > 0.3
    pre = report.means["pre_activity"]
    data = log.load(experiment)
    assert pre["A"].mean == pytest.approx(
        data.values["pre_activity"][data.variant_index == 0].mean()
    )
    with pytest.raises(TowerkitError, match="already exists"):
        simulate(log, experiment, heldout, recommenders, k=5)
    log.drop()


def test_a_equals_b_finds_no_difference_and_a_failure_leaves_nothing(
    tmp_path: Path, tiny: MovieLens
) -> None:
    engine = create_store_engine(str(tmp_path / "store.db"))
    seed_store(engine, tiny)
    heldout = _heldout(engine, None)
    log = EventLog(engine)
    log.create()
    same = Fixed([str(i) for i in range(1, 41)], "same")
    experiment = _experiment("a-equals-b")
    simulate(log, experiment, heldout, {"A": same, "B": same}, k=5)
    report = analyse(experiment, log.load(experiment))
    assert all(c.headline[3] > 0.05 for c in report.comparisons)
    assert not report.srm.mismatch

    class Broken(Fixed):
        def top_k(
            self, user_ids: Sequence[str], k: int, exclude: Sequence[set[str]]
        ) -> list[list[str]]:
            raise TowerkitError("model exploded")

    broken = _experiment("broken")
    with pytest.raises(TowerkitError, match="exploded"):
        simulate(log, broken, heldout, {"A": same, "B": Broken([], "broken")}, k=5)
    assert log.experiment_names() == ["a-equals-b"]  # nothing of the failed run is left


def test_training_cutoff_reads_the_runs_split(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text('{"val_start": "1998-03-07T15:02:32+00:00"}')
    assert training_cutoff(tmp_path, "m").isoformat() == "1998-03-07T15:02:32+00:00"
    with pytest.raises(TowerkitError, match="pass --start"):
        training_cutoff(None, "rec-two-tower/9")
    (tmp_path / "split.json").write_text("{}")
    with pytest.raises(TowerkitError, match="trained_until"):
        training_cutoff(tmp_path, "m")


def test_training_cutoff_of_a_refitted_model_is_the_test_start(tmp_path: Path) -> None:
    # a refitted model trained on the validation period too: replaying it would score the
    # model on likes it learnt from (and hide them from its own top-k as already seen)
    split = {"val_start": "1998-03-07T15:02:32+00:00", "test_start": "1998-03-31T22:27:21+00:00"}
    (tmp_path / "split.json").write_text(json.dumps(split))
    (tmp_path / "config.yaml").write_text("recipe: two-tower-full\nrefit: true\n")
    assert training_cutoff(tmp_path, "m").isoformat() == "1998-03-31T22:27:21+00:00"
    (tmp_path / "config.yaml").write_text("recipe: two-tower-quick\nrefit: false\n")
    assert training_cutoff(tmp_path, "m").isoformat() == "1998-03-07T15:02:32+00:00"
    # runs saved now carry the instant itself, whatever their config says
    split["trained_until"] = "1998-03-20T00:00:00+00:00"
    (tmp_path / "split.json").write_text(json.dumps(split))
    assert training_cutoff(tmp_path, "m").isoformat() == "1998-03-20T00:00:00+00:00"


def test_read_heldout_through_the_dating_app_mapping(tmp_path: Path) -> None:
    from towerkit.core.paths import repo_root

    engine = create_store_engine(str(tmp_path / "app.db"))
    metadata = sa.MetaData()
    profiles = sa.Table("profiles", metadata, sa.Column("id", sa.String, primary_key=True),
                        *(sa.Column(c, sa.Text) for c in ("gender", "looking_for", "city", "bio",
                                                          "interests")),
                        sa.Column("age", sa.Integer))  # fmt: skip
    swipes = sa.Table("swipes", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("swiper_id", sa.String), sa.Column("swipee_id", sa.String),
                      sa.Column("direction", sa.String),
                      sa.Column("created_at", sa.DateTime(timezone=True)))  # fmt: skip
    metadata.create_all(engine)

    def day(d: int) -> datetime:
        return datetime(2026, 1, d, tzinfo=UTC)

    with engine.begin() as conn:
        conn.execute(profiles.insert(), [{"id": p} for p in ("ann", "bob", "cy", "dee")])
        conn.execute(swipes.insert(), [
            {"swiper_id": "ann", "swipee_id": "bob", "direction": "left", "created_at": day(1)},
            {"swiper_id": "ann", "swipee_id": "cy", "direction": "right", "created_at": day(2)},
            {"swiper_id": "ann", "swipee_id": "dee", "direction": "right", "created_at": day(9)},
            {"swiper_id": "bob", "swipee_id": "cy", "direction": "match", "created_at": day(10)},
            {"swiper_id": "cy", "swipee_id": "ann", "direction": "left", "created_at": day(11)},
            {"swiper_id": "dee", "swipee_id": "ann", "direction": "super", "created_at": day(12)},
        ])  # fmt: skip
    mapping, source = load_mapping(repo_root() / "configs" / "rec" / "schema-dating.yaml")
    heldout = read_heldout(engine, bind_mapping(engine, mapping, source), day(5))
    assert heldout.likes == {"ann": {"dee"}, "bob": {"cy"}}  # right and match are likes
    assert heldout.seen == {"ann": {"bob", "cy"}}  # a left swipe is seen too
    assert heldout.pre_activity == {"ann": 2}
    engine.dispose()

"""``simulate`` through the CLI on two tiny trained two-tower versions, in a Postgres schema, and
``BundleRecommender`` against a brute-force ranking of the bundle's own embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
import torch

from towerkit.cli import main
from towerkit.rec.abtest.events import EventLog
from towerkit.rec.abtest.simulate import BundleRecommender
from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store

TINY = [
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.batch_size=64",
    "features.item_features=[year, genres]",  # no MiniLM in a fast test
    "model.hidden_dims=[32]",
    "model.embedding_dim=16",
    "model.freq_buckets=1024",
    "loss.mixed_negatives=8",
    "baselines.names=[popularity]",
    "eval.ks=[5, 10]",
    "eval.headline=recall@10",
    "trainer.early_stopping_metric=recall@10",
]


def _tiny_store() -> MovieLens:
    rng = np.random.default_rng(5)
    n_users, n_items = 60, 30
    users = pl.DataFrame(
        {
            "user_id": [str(u) for u in range(1, n_users + 1)],
            "age": [20 + u % 30 for u in range(n_users)],
            "gender": ["F" if u % 2 else "M" for u in range(n_users)],
            "occupation": [f"job{u % 4}" for u in range(n_users)],
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
        for i in rng.choice(n_items, size=15, replace=False):
            liked = (i % 2) == (u % 2)  # odd users like dramas, even users comedies
            rows.append(
                (
                    str(u),
                    str(i + 1),
                    5 if liked else 1,
                    880_000_000 + int(rng.integers(0, 8_640_000)),
                )
            )
    ratings = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return MovieLens(ratings, users, items)


@pytest.mark.slow  # trains two (tiny) models
def test_simulate_cli_on_two_versions_in_a_postgres_schema(
    pg_url: str, pg_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from towerkit.rec.twotower.api import load_bundle
    from towerkit.rec.twotower.recipe import train
    from towerkit.rec.twotower.sources import movielens_frames

    torch.set_num_threads(1)
    tiny = _tiny_store()
    engine = create_store_engine(pg_url)
    seed_store(engine, tiny, schema=pg_schema)
    data = movielens_frames(tiny)  # the same frames seed-db + export give
    runs = tmp_path / "runs"
    first = train(
        None, [*TINY, "trainer.stages=[{epochs: 2, lr: 0.01}]"], data=data, runs_root=runs
    )
    second = train(
        None, [*TINY, "trainer.stages=[{epochs: 1, max_steps: 1, lr: 0.01}]"], data=data,
        runs_root=runs, promote="never",
    )  # fmt: skip
    assert first.version is not None and second.version is not None
    a, b = second.version.uri, first.version.uri
    args = ["rec", "abtest", "simulate", "--db", pg_url, "--schema", pg_schema, "--a", a, "--b", b]
    assert main([*args, "--k", "5", "--out", str(tmp_path / "out")]) == 0
    assert f"A = {a}, B = {b}, top-5" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["experiment"]["models"] == {"A": a, "B": b}
    assert (tmp_path / "out" / "abtest.png").is_file()

    log = EventLog(engine, schema=pg_schema)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(log.exposures.c.user_id, log.exposures.c.variant, log.exposures.c.shown_items)
        ).all()
    assert len(rows) == sum(report["srm"]["observed"].values())
    bundles = {"A": load_bundle(a), "B": load_bundle(b)}
    for user, variant, shown in rows:
        assert len(shown) == 5
        assert not set(shown) & bundles[variant].seen_items(user)  # trained-on items never shown
    # the same ranking as brute force over the bundle's own embeddings
    for variant, bundle in bundles.items():
        users = [r.user_id for r in rows if r.variant == variant][:5]
        got = BundleRecommender(bundle).top_k(users, 5, [set() for _ in users])
        scores = bundle.query_embeddings(users) @ bundle.candidate_embeddings().T
        ids = bundle.candidate_ids()
        for n, user in enumerate(users):
            seen = bundle.seen_items(user)
            order = [ids[i] for i in np.argsort(-scores[n], kind="stable") if ids[i] not in seen]
            assert got[n] == order[:5]
    engine.dispose()

"""The whole path on real MovieLens-100K: seed a store, train two genuinely different versions
(a trained model and one trained for a single step), replay the held-out likes as an A/B test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from towerkit.cli import main
from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.store.seed import seed_store

COMMON = [
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "features.item_features=[year, genres]",  # no MiniLM: keeps the test within its budget
    "baselines.names=[popularity]",
    "eval.ks=[10, 50]",
]


def _report(out: Path) -> dict[str, dict[str, dict[str, float]]]:
    data = json.loads((out / "report.json").read_text())
    return {c["metric"]: c for c in data["comparisons"]} | {"srm": data["srm"]}


@pytest.mark.slow
def test_simulate_detects_the_trained_model_and_not_a_copy(
    ml100k_home: Path, ml100k: MovieLens, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from towerkit.rec.twotower.recipe import train

    torch.set_num_threads(1)
    db = str(tmp_path / "store.db")
    engine = create_store_engine(db)
    seed_store(engine, ml100k)
    engine.dispose()
    trained = train(
        None, [*COMMON, "trainer.stages=[{epochs: 3, lr: 0.003}]"], db_url=db, promote="never"
    )
    one_step = train(
        None,
        [*COMMON, "trainer.stages=[{epochs: 1, max_steps: 1, lr: 0.003}]"],
        db_url=db,
        promote="never",
    )
    assert trained.version is not None and one_step.version is not None
    good, poor = trained.version.uri, one_step.version.uri

    base = ["rec", "abtest", "simulate", "--db", db, "--salt", "ml100k-test", "--k", "10"]
    assert main([*base, "--a", poor, "--b", good, "--out", str(tmp_path / "ab")]) == 0
    text = capsys.readouterr().out
    assert f"A = {poor}, B = {good}" in text
    ab = _report(tmp_path / "ab")
    assert not ab["srm"]["mismatch"]
    conversion = ab["conversion"]["proportion"]
    assert conversion["diff"] > 0.1 and conversion["p_value"] < 1e-3
    assert ab["ndcg"]["welch"]["diff"] > 0 and ab["ndcg"]["welch"]["p_value"] < 1e-3
    assert ab["hits"]["cuped"]["adjusted"]["p_value"] < 1e-3

    same = [*base, "--a", good, "--b", good, "--experiment", "a-equals-b"]
    assert main([*same, "--out", str(tmp_path / "aa")]) == 0
    aa = _report(tmp_path / "aa")
    # the primary metric at the 5% level; the four secondary tests at 1%, so that this one fixed
    # A/A split has a small family-wise chance of a false alarm whatever the trained weights
    assert aa["conversion"]["proportion"]["p_value"] > 0.05
    assert aa["conversion"]["cuped"]["adjusted"]["p_value"] > 0.05
    for metric in ("hits", "ndcg"):
        assert aa[metric]["welch"]["p_value"] > 0.01
        assert aa[metric]["cuped"]["adjusted"]["p_value"] > 0.01

    # the logged events analyse to the same numbers later
    capsys.readouterr()
    later = ["rec", "abtest", "analyse", "--db", db, "--experiment", "a-equals-b"]
    assert main([*later, "--out", str(tmp_path / "later")]) == 0
    assert _report(tmp_path / "later") == aa

"""The recipe and CLI on a tiny synthetic store: train, evaluate, resume, the bundle API."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from towerkit.cli import main
from towerkit.core.errors import TowerkitError
from towerkit.core.registry import ModelRegistry
from towerkit.rec.store.movielens import MovieLens
from towerkit.rec.twotower.api import load_bundle
from towerkit.rec.twotower.data import InteractionData
from towerkit.rec.twotower.model import TwoTowerModel
from towerkit.rec.twotower.recipe import load_recipe, train


def _run_dirs(root: Path) -> list[Path]:
    return sorted((root / "rec" / "two-tower-quick").iterdir())


def test_cli_train_then_evaluate_on_a_store(
    synthetic_store: str,
    synthetic: MovieLens,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fast: list[str],
) -> None:
    every_baseline = "baselines.names=[popularity, als, bpr]"
    assert main(["rec", "train", "--db", synthetic_store, *fast, every_baseline]) == 0
    out = capsys.readouterr().out
    assert "registered: rec-two-tower/1 (now production)" in out
    for name in ("two_tower", "popularity", "als", "bpr"):
        assert name in out
    run = _run_dirs(tmp_path / "runs")[-1]
    manifest = json.loads((run / "data" / "manifest.json").read_text())  # the store, exported
    assert manifest["interactions"]["rows"] == synthetic.ratings.height
    assert (manifest["users"]["rows"], manifest["items"]["rows"]) == (40, 30)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test_two_tower_recall@10"] <= 1.0
    assert "test_als_auc" in metrics and "test_ratio_recall@10_vs_popularity" in metrics
    assert (run / "plots" / "recall_at_k.png").stat().st_size > 1000
    assert {p.name for p in (run / "model").iterdir()} >= {
        "model.safetensors", "config.json", "features.json", "tables.safetensors"
    }  # fmt: skip

    assert main(["rec", "evaluate", "rec-two-tower@production"]) == 0
    evaluated = capsys.readouterr().out
    assert "rec-two-tower/1" in evaluated
    # evaluate reproduces the numbers train reported on the same split
    table = json.loads((run / "evaluation.json").read_text())["test"]
    assert f"{table['two_tower']['recall@10']:.4f}" in evaluated
    assert table["two_tower"]["recall@10"] == metrics["test_two_tower_recall@10"]
    assert table["als"]["auc"] == metrics["test_als_auc"]


def test_cli_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fast: list[str]
) -> None:
    assert main(["rec", "train", "--data", str(tmp_path / "nowhere"), *fast]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["rec", "train", *fast]) == 2
    assert "no data given" in capsys.readouterr().err
    assert main(["rec", "train", "--db", "sqlite:///x.db", "loss.temperature=0", *fast]) == 2
    assert "temperature" in capsys.readouterr().err
    assert main(["rec", "evaluate", "rec-two-tower"]) == 2
    assert "rec-two-tower" in capsys.readouterr().err


def test_resume_gives_identical_weights(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    settings = [
        *fast,
        "trainer.stages=[{epochs: 3, lr: 0.01}]",
        "trainer.early_stopping_metric=null",
    ]
    full = train(None, settings, data=synthetic_data, runs_root=tmp_path / "a", promote="never")
    # the same run stopped after its first epoch, then resumed from that checkpoint
    partial_settings = [*settings, "trainer.checkpoint_every_steps=1", "trainer.keep_last=100"]
    partial = train(
        None, partial_settings, data=synthetic_data, runs_root=tmp_path / "b", promote="never"
    )
    run = partial.run_dir
    # drop every checkpoint after the middle of the first epoch, as if killed there
    cut = int(full.metrics["train_steps"]) // 6
    later = [p for p in (run / "checkpoints").glob("step-*") if int(p.name.split("-")[1]) > cut]
    assert len(later) >= 4
    for path in later:
        shutil.rmtree(path)
    assert sorted((run / "checkpoints").glob("step-*"))[-1].name == f"step-{cut:08d}"
    (run / "metrics.json").unlink()  # written last: a killed run has none
    resumed = train(resume=run, data=synthetic_data, promote="never")
    a = load_file(str(full.run_dir / "model" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics["test_two_tower_recall@10"] == full.metrics["test_two_tower_recall@10"]


def test_bundle_api(synthetic_data: InteractionData, tmp_path: Path, fast: list[str]) -> None:
    outcome = train(None, fast, data=synthetic_data, runs_root=tmp_path / "runs")
    bundle = load_bundle("rec-two-tower")
    assert bundle.version is not None and bundle.version.version == 1
    assert bundle.run_dir == outcome.run_dir
    ids = bundle.candidate_ids()
    items = bundle.candidate_embeddings()
    assert items.shape == (30, 16) and items.dtype == np.float32 and len(ids) == 30
    assert np.allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)
    queries = bundle.query_embeddings(["1", "2", "no-such-user"])
    assert queries.shape == (3, 16) and np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # the same embeddings as the model on its training tables, and as a reload from the run dir
    again = load_bundle(str(outcome.run_dir))
    # (equal up to float rounding: a batch of 1 and a batch of 3 sum in other orders)
    assert np.allclose(again.query_embeddings(["1"]), queries[:1], atol=1e-6)
    assert np.array_equal(again.candidate_embeddings(), items)
    # an unknown id is its hashed OOV row with no features: the same as describing it so
    described = bundle.query_embedding_from_features({"user_id": "no-such-user"})
    assert np.allclose(described, queries[2], atol=1e-6)
    by_features = bundle.query_embedding_from_features(
        {"gender": "F", "occupation": "job1", "age": 30}
    )
    assert by_features.shape == (16,)
    with pytest.raises(TowerkitError, match="unknown key 'shoe_size'"):
        bundle.query_embedding_from_features({"shoe_size": 44})
    evaluation = json.loads((outcome.run_dir / "evaluation.json").read_text())
    assert evaluation["test"] == outcome.table
    seen = bundle.seen_items("1")
    assert seen and seen <= set(ids) and bundle.seen_items("no-such-user") == set()
    # seen: what each user swiped on before the validation split, nothing after it
    split = json.loads((outcome.run_dir / "split.json").read_text())
    val_start = datetime.fromisoformat(split["val_start"])
    assert split["trained_until"] == split["val_start"]  # not refitted: validation unseen
    log = synthetic_data.interactions
    users = [str(u) for u in range(1, 11)]
    assert set(log.filter(pl.col("created_at") >= val_start)["viewer_id"]) & set(users)
    for user in users:  # (some of them swiped after it too: checked just above)
        before = log.filter((pl.col("viewer_id") == user) & (pl.col("created_at") < val_start))
        assert bundle.seen_items(user) == set(before["target_id"]), user
    module, example, names = bundle.query_tower_for_export()
    assert names[0] == "id_index" and len(example) == len(names)
    expected = bundle.query_embeddings(
        [bundle.features.query_keys[0], bundle.features.query_keys[1]]
    )
    with torch.no_grad():
        assert np.allclose(module(*example).numpy(), expected, atol=1e-6)


def test_saved_model_keeps_its_features(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str]
) -> None:
    outcome = train(None, fast, data=synthetic_data, runs_root=tmp_path / "runs", promote="never")
    loaded = TwoTowerModel.from_pretrained(outcome.run_dir / "model")
    assert loaded.artifacts is not None and outcome.model.artifacts is not None
    assert loaded.artifacts.query.to_dict() == outcome.model.artifacts.query.to_dict()
    for name in ("ids", "cat", "multi", "num", "text"):
        assert torch.equal(
            getattr(loaded.artifacts.candidate_tables, name),
            getattr(outcome.model.artifacts.candidate_tables, name),
        )
    registered = ModelRegistry().get("rec-two-tower", 1).metrics["test_two_tower_recall@10"]
    assert registered == outcome.metrics["test_two_tower_recall@10"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.hiden=3", "override 'model.hiden=3': unknown key 'model.hiden' (known keys:"),
        ("model.dropout=abc", "key 'model.dropout': expected float, got 'abc'"),
        ("arch=nope", "override 'arch=nope': key 'arch': unknown model 'nope'"),
    ],
)
def test_bad_model_settings_fail_when_the_recipe_loads(
    override: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export").mkdir()  # never read: the recipe is refused first
    assert main(["rec", "train", "--data", str(tmp_path / "export"), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert list(tmp_path.glob("runs/**/config.yaml")) == []


def test_unreadable_data_leaves_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export").mkdir()
    assert main(["rec", "train", "--data", str(tmp_path / "export")]) == 2
    assert "not a towerkit export (no manifest.json)" in capsys.readouterr().err
    assert list(tmp_path.glob("runs/**/config.yaml")) == []


def test_a_recipe_saves_absolute_data_paths_and_no_store_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from towerkit.rec.twotower.sources import without_password

    monkeypatch.chdir(tmp_path)  # `rec evaluate` and `--resume` read them from anywhere
    assert load_recipe(None, [], data_dir=Path("export")).data.path == str(tmp_path / "export")
    assert load_recipe(None, [], db_url="store.db").data.db == str(tmp_path / "store.db")
    url = "postgresql+psycopg://app:s3cret@db.example:5432/app"
    config = load_recipe(None, [], db_url=url)
    assert config.data.db == url  # the run itself still connects with the password
    assert without_password(config).data.db == "postgresql+psycopg://app:***@db.example:5432/app"
    assert config.data.db == url  # a copy: the recipe is not changed


def test_evaluate_notes_data_that_changed_since_training(
    synthetic_data: InteractionData, tmp_path: Path
) -> None:
    from dataclasses import replace

    from towerkit.core.fingerprint import data_fingerprint
    from towerkit.rec.twotower.sources import changed_since_training

    part = tmp_path / "part-00000.parquet"
    part.write_bytes(b"the export as trained on")
    data = replace(synthetic_data, files=[part])
    trained_on = data_fingerprint([part])
    assert changed_since_training(trained_on, data) == ""
    assert changed_since_training(None, data) == ""  # a model directory, not registered
    (tmp_path / "part-00001.parquet").write_bytes(b"a later rec export's new part")
    grown = replace(synthetic_data, files=[part, tmp_path / "part-00001.parquet"])
    now = data_fingerprint(grown.files)
    assert changed_since_training(trained_on, grown) == (
        f"; the data changed since training (fingerprint {trained_on[:12]} -> {now[:12]}): "
        "this table is on the data as it is now"
    )

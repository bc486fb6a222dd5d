"""The refit (recipe ``refit: true``): train + validation as one training split, the steps the
selection run chose carried over to the longer epochs, each path's weights of its own step."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from towerkit.core.callbacks import Callback
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.registry import ModelRegistry
from towerkit.core.trainer import Trainer
from towerkit.rec.twotower.data import InteractionData, SplitConfig, time_split
from towerkit.rec.twotower.prepare import InteractionDataset, collate
from towerkit.rec.twotower.recipe import (
    build_loss,
    build_model,
    build_prepared,
    evaluate,
    load_recipe,
    train,
)
from towerkit.rec.twotower.refit import ChosenSteps, StopAtSteps, refit_trainer_config


def test_chosen_steps_keep_their_place_in_the_schedule() -> None:
    chosen = ChosenSteps(retrieval=1140, like=342, steps_per_epoch=114)
    assert chosen.scaled(114) == (1140, 342)
    assert chosen.scaled(128) == (1280, 384)  # epoch 10 and epoch 3 of the longer epochs
    assert ChosenSteps(5, None, 10).scaled(15) == (8, None)  # round(7.5)
    with pytest.raises(TowerkitError, match="expected a step >= 1"):
        ChosenSteps(0, None, 10)


def test_test_end_leaves_out_what_came_later(synthetic_data: InteractionData) -> None:
    events = synthetic_data.interactions
    full = time_split(events, SplitConfig())
    end = full.test_start.isoformat()
    cut = time_split(events, SplitConfig(test_end=end))
    kept = events.filter(events["created_at"] < full.test_start)
    assert cut.train.height + cut.val.height + cut.test.height == kept.height
    assert cut.test["created_at"].max() < full.test_start  # type: ignore[operator]
    with pytest.raises(ConfigError, match="test_end"):
        time_split(events, SplitConfig(val_start=end, test_start=end, test_end=end))


def test_merged_split_trains_on_validation_and_counts_each_event_once(
    synthetic_data: InteractionData, fast: list[str]
) -> None:
    config = load_recipe(None, [*fast, "features.history_len=5"])
    apart = build_prepared(config, synthetic_data)
    merged = build_prepared(config, synthetic_data, merged=True)
    assert len(merged.train) == len(apart.train) + len(apart.val) and len(merged.val) == 0
    assert np.array_equal(merged.test.labels, apart.test.labels)
    assert merged.split.test_start == apart.split.test_start
    # the test events' histories read the same earlier swipes either way (none twice)
    ours, theirs = merged.histories("test"), apart.histories("test")
    assert ours is not None and theirs is not None
    # (the smoothed like rate, stats[:, 1], starts from the training like rate, which differs)
    assert torch.equal(ours[1].stats[:, 0], theirs[1].stats[:, 0])
    for side in ("liked", "passed"):
        assert torch.equal(
            (getattr(ours[1], side) >= 0).sum(1), (getattr(theirs[1], side) >= 0).sum(1)
        )
    # a user first seen in validation has an id row in the refit's vocabulary only
    events, user = synthetic_data.interactions, apart.split.val["viewer_id"][0]
    late = events.filter(
        (events["viewer_id"] != user) | (events["created_at"] >= apart.split.val_start)
    )
    data = replace(synthetic_data, interactions=late)
    cutoffs = [
        f"split.{k}='{getattr(apart.split, k).isoformat()}'" for k in ("val_start", "test_start")
    ]
    config = load_recipe(None, [*fast, *cutoffs])
    assert user not in build_prepared(config, data).artifacts.query.ids
    assert user in build_prepared(config, data, merged=True).artifacts.query.ids


class Recorder(Callback):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.states = model, {}  # type: ignore[var-annotated]

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        state = self.model.state_dict()
        self.states[trainer.state.global_step] = {k: v.clone() for k, v in state.items()}


@pytest.mark.parametrize("retrieval,like", [(3, 6), (6, 3), (4, None)])
def test_stop_at_steps_keeps_each_path_of_its_own_step(
    synthetic_data: InteractionData,
    tmp_path: Path,
    fast: list[str],
    retrieval: int,
    like: int | None,
) -> None:
    config = load_recipe(
        None, [*fast, "model.like_towers=true", "trainer.stages=[{epochs: 4, lr: 0.05}]"]
    )
    prepared = build_prepared(config, synthetic_data)
    model = build_model(config, prepared)
    loss = build_loss(config, prepared)
    recorder = Recorder(model)
    # the selection run had the same epochs here, so the steps carry over unchanged
    per_epoch = -(-len(prepared.train) // 64)
    stop = StopAtSteps(model, ChosenSteps(retrieval, like, per_epoch))
    trainer = Trainer(
        model, refit_trainer_config(config.trainer), InteractionDataset(prepared.train), loss,
        tmp_path, collate_fn=collate, callbacks=[recorder, stop],
    )  # fmt: skip
    assert trainer.steps_per_epoch == per_epoch >= 2
    fit = trainer.fit()
    assert fit.global_step == max(retrieval, like or 0)
    like_names = set(model.like_path_names())
    for name, tensor in model.state_dict().items():
        step = like if like is not None and name in like_names else retrieval
        assert torch.equal(tensor, recorder.states[step][name]), name


def test_train_with_refit_tests_the_refitted_model(
    synthetic_data: InteractionData,
    synthetic_store: str,
    tmp_path: Path,
    fast: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides = [*fast, "refit=true", "baselines.names=[popularity]"]
    registry = ModelRegistry(tmp_path / "registry")
    outcome = train(
        None, overrides, db_url=synthetic_store, promote="never", runs_root=tmp_path,
        registry=registry,
    )  # fmt: skip
    metrics = outcome.metrics
    apart = build_prepared(load_recipe(None, fast), synthetic_data)
    per_epoch = -(-(len(apart.train) + len(apart.val)) // 64)
    selection_per_epoch = -(-len(apart.train) // 64)
    expected = round(metrics["train_best_step"] * per_epoch / selection_per_epoch)
    assert metrics["refit_steps"] == expected
    assert f"done: step {expected}," in (outcome.run_dir / "refit" / "train.log").read_text()
    # warm users are those with train or validation interactions: more than train's alone
    assert "train 0" not in outcome.description and "val 0" in outcome.description
    # the refitted model trained on the validation period too: an A/B replay starts after it
    split = json.loads((outcome.run_dir / "split.json").read_text())
    assert split["trained_until"] == split["test_start"] != split["val_start"]
    # `evaluate` of the saved model splits the data the same way: the same test table, from
    # the run's own export, whatever the store holds now and wherever it is run from
    Path(synthetic_store.removeprefix("sqlite:///")).unlink()
    monkeypatch.chdir(tmp_path / "rec")
    _, table, described = evaluate(str(outcome.run_dir), registry=registry)
    assert described == outcome.description
    for name, row in outcome.table.items():
        row = {k: v for k, v in row.items() if k != "fit_seconds"}
        assert {k: table[name][k] for k in row} == pytest.approx(row, rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("eighths", [1, 5])  # in the like stage's first epoch; retrieval's
def test_resume_with_like_selection_and_refit_gives_identical_weights(
    synthetic_data: InteractionData, tmp_path: Path, fast: list[str], eighths: int
) -> None:
    """Killed mid-run (the like path's kept copy on disk may be from after the checkpoint it
    resumes from), resumed: the same like path, retrieval path and refit as an unbroken run."""
    stages = (
        "trainer.stages=[{name: like, epochs: 2, lr: 0.02, trainable: ['like_*', 'bce_*']}, "
        "{name: retrieval, epochs: 2, lr: 0.02, trainable: ['query_tower.*', 'candidate_tower.*']}]"
    )
    settings = [*fast, "model.like_towers=true", "like_selection.metric=auc", stages,
                "trainer.early_stopping_patience=4", "refit=true",
                "trainer.checkpoint_every_steps=1", "trainer.keep_last=100"]  # fmt: skip
    full = train(None, settings, data=synthetic_data, runs_root=tmp_path / "a", promote="never")
    partial = train(None, settings, data=synthetic_data, runs_root=tmp_path / "b", promote="never")
    run = partial.run_dir
    cut = int(full.metrics["train_steps"]) * eighths // 8
    for path in (run / "checkpoints").glob("step-*"):
        if int(path.name.split("-")[1]) > cut:
            shutil.rmtree(path)
    (run / "metrics.json").unlink()  # written last: a killed run has none
    resumed = train(resume=run, data=synthetic_data, promote="never")
    assert resumed.metrics["train_like_best_step"] == full.metrics["train_like_best_step"]
    assert resumed.metrics["refit_steps"] == full.metrics["refit_steps"]
    a = load_file(str(full.run_dir / "model" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

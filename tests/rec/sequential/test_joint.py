"""UR4Rec's multi-stage schedule through the core Trainer: what each stage trains and optimises,
exact resume in the middle of the alternating stage, early stopping on validation NDCG@10."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from towerkit.core.callbacks import Callback
from towerkit.core.errors import ConfigError
from towerkit.core.schedules import StageConfig, TrainerConfig
from towerkit.core.trainer import Trainer
from towerkit.rec.sequential.data import PAD, SeqDataset
from towerkit.rec.sequential.fusion import FusionConfig, UR4Rec, UR4RecConfig
from towerkit.rec.sequential.joint import JointConfig, JointLoss, default_stages, ur4rec_scorer
from towerkit.rec.sequential.retrievers import TextRetrieverConfig
from towerkit.rec.sequential.sasrec import SASRecConfig
from towerkit.rec.sequential.training import NextItemDataset, evaluate_model

N_USERS, N_ITEMS, MAX_LEN = 24, 20, 6


def _data() -> SeqDataset:
    rng = np.random.default_rng(0)
    sequences = [
        rng.permutation(np.arange(1, N_ITEMS + 1))[: rng.integers(5, 9)] for _ in range(N_USERS)
    ]
    return SeqDataset(
        name="synthetic",
        sequences=sequences,
        timestamps=[np.arange(len(s)) for s in sequences],
        n_items=N_ITEMS,
        user_ids=[f"u{i}" for i in range(N_USERS)],
        item_ids=[PAD, *[f"i{i}" for i in range(1, N_ITEMS + 1)]],
        item_texts=["", *[f"item {i}" for i in range(1, N_ITEMS + 1)]],
    )


def _model(strategy: str = "gate") -> UR4Rec:
    torch.manual_seed(0)
    model = UR4Rec(
        UR4RecConfig(
            sasrec=SASRecConfig(n_items=N_ITEMS, hidden=16, blocks=1, max_len=MAX_LEN, dropout=0.1),
            text=TextRetrieverConfig(n_items=N_ITEMS, n_users=N_USERS, text_dim=8, dim=8),
            fusion=FusionConfig(strategy=strategy),  # type: ignore[arg-type]
        )
    )
    g = torch.Generator().manual_seed(1)
    model.retriever.set_texts(
        torch.randn(N_USERS, 8, generator=g), torch.randn(N_ITEMS + 1, 8, generator=g)
    )  # type: ignore[operator]
    return model


def _trainer(
    model: UR4Rec,
    run_dir: Path,
    callbacks: list[Callback] = (),
    patience: int = 50,
    **kw: Any,  # type: ignore[assignment]
) -> tuple[Trainer, JointLoss]:
    data = _data()
    stages = default_stages((1, 1, 2, 1), lr=5e-3, warmup_steps=1)
    stages[2].alternate_every = 1
    config = TrainerConfig(
        stages=stages, batch_size=8, progress=False, tensorboard=False, log_every_steps=1,
        early_stopping_metric="ndcg@10", early_stopping_patience=patience, keep_last=20, **kw,
    )  # fmt: skip
    loss = JointLoss(JointConfig(), stages)

    def eval_fn(_: Any) -> dict[str, float]:
        return evaluate_model(ur4rec_scorer(model), data, "valid", MAX_LEN).metrics

    trainer = Trainer(
        model, config, NextItemDataset(data, MAX_LEN), loss, run_dir, eval_fn, callbacks=callbacks
    )
    loss.bind(trainer)
    return trainer, loss


class Snapshots(Callback):
    """Parameters at the end of every stage, and the tasks each stage's loss used."""

    def __init__(self, loss: JointLoss | None = None) -> None:
        self.params: list[dict[str, torch.Tensor]] = []
        self.tasks: list[list[str]] = []
        self.loss = loss

    def on_epoch_end(self, trainer: Trainer) -> None:
        stage = trainer.config.stages[trainer.state.stage_index]
        if trainer.state.epoch >= stage.epochs:  # the stage's last epoch
            self.params.append({n: p.detach().clone() for n, p in trainer.model.named_parameters()})
            assert self.loss is not None
            self.tasks.append(self.loss.tasks())


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    parts = set()
    for name, value in after.items():
        if not torch.equal(before[name], value):
            parts.add(name.split(".")[0])
    return parts


def test_each_stage_trains_its_part_with_its_tasks(tmp_path: Path) -> None:
    model = _model()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    snaps = Snapshots()
    trainer, loss = _trainer(model, tmp_path, [snaps], restore_best=False)
    snaps.loss = loss
    trainer.fit()
    stages = [initial, *snaps.params]
    changed = [_changed(a, b) for a, b in itertools.pairwise(stages)]
    assert changed[0] == {"sasrec"}
    assert changed[1] == {"retriever"}
    assert changed[2] == {"sasrec", "retriever", "gate", "task_weights"}
    assert changed[3] == {"sasrec", "retriever", "gate", "task_weights"}
    assert snaps.tasks == [
        ["sasrec"],
        ["retriever", "contrastive"],
        ["sasrec", "retriever", "fusion", "contrastive"],
        ["sasrec", "retriever", "fusion", "contrastive"],
    ]
    evals = [row for row in trainer.state.history if "eval_ndcg@10" in row]
    assert len(evals) == 5  # one per epoch: 1 + 1 + 2 + 1


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.state.global_step == self.step:
            trainer.request_stop()


def test_resume_in_the_alternating_stage_is_exact(tmp_path: Path) -> None:
    full = _model()
    _trainer(full, tmp_path / "full")[0].fit()
    steps_per_epoch = -(-len(NextItemDataset(_data(), MAX_LEN)) // 8)
    stop_at = 2 * steps_per_epoch + steps_per_epoch // 2 + 1  # inside the first joint epoch
    cut = _model()
    trainer, _ = _trainer(cut, tmp_path / "cut", [StopAt(stop_at)])
    trainer.fit()
    assert trainer.state.stage_index == 2 and trainer.state.global_step == stop_at
    resumed = _model()
    trainer, _ = _trainer(resumed, tmp_path / "cut")
    result = trainer.fit(resume=True)
    assert result.global_step == 5 * steps_per_epoch
    for name, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_early_stopping_ends_a_stage_and_restores_the_best(tmp_path: Path) -> None:
    model = _model()
    trainer, _ = _trainer(model, tmp_path, patience=1)
    result = trainer.fit()
    evals = [row["eval_ndcg@10"] for row in result.history if "eval_ndcg@10" in row]
    assert result.best_metric == max(evals)
    restored = evaluate_model(ur4rec_scorer(model.eval()), _data(), "valid", MAX_LEN)
    assert restored.metrics["ndcg@10"] == pytest.approx(result.best_metric)


def test_stage_without_tasks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"no tasks for stage 'warmup'"):
        JointLoss(JointConfig(), [StageConfig("warmup")])
    bad = JointConfig(stage_tasks={"pretrain_sasrec": ["sasrec", "magic"]})
    with pytest.raises(ConfigError, match=r"unknown task 'magic'"):
        JointLoss(bad, [StageConfig("pretrain_sasrec")])

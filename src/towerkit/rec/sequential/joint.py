"""UR4Rec's multi-stage training through the core Trainer's stages.

The default schedule (``default_stages``): pretrain SASRec -> pretrain the retriever (SASRec
frozen) -> alternating joint fine-tuning (SASRec, then retriever + gate + task weights, switching
every ``alternate_every`` steps) -> end to end, each stage with warmup. Which losses a stage
optimises comes from ``JointConfig.stage_tasks`` by stage name; a stage with several tasks sums
them with Kendall uncertainty weights (or fixed ``weights``).

Batches are ``training.NextItemDataset`` samples: ``user``, ``seq`` (items before each target),
``targets`` and ``negatives``. SASRec's task is its own loss over every position; the retriever,
fusion and contrastive tasks predict the last target of the window from the user's preference
text and ``seq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.errors import ConfigError
from towerkit.core.schedules import StageConfig
from towerkit.rec.sequential.fusion import TASKS, Strategy, UR4Rec
from towerkit.rec.sequential.losses import (
    RetrievalLoss,
    diversity_regulariser,
    info_nce,
    joint_loss,
    modality_consistency,
    retrieval_loss,
)
from towerkit.rec.sequential.metrics import UserScorer
from towerkit.rec.sequential.retrievers import MultimodalRetriever, consistency_pair

if TYPE_CHECKING:
    from towerkit.core.trainer import Trainer


def _default_stage_tasks() -> dict[str, list[str]]:
    return {
        "pretrain_sasrec": ["sasrec"],
        "pretrain_retriever": ["retriever", "contrastive"],
        "gate": ["fusion"],
        "joint": ["sasrec", "retriever", "fusion", "contrastive"],
        "end_to_end": ["sasrec", "retriever", "fusion", "contrastive"],
    }


@dataclass
class JointConfig:
    retrieval_loss: RetrievalLoss = "ce"
    temperature: float = 0.1  # InfoNCE / modality consistency
    weights: dict[str, float] = field(default_factory=dict)  # without uncertainty weighting
    stage_tasks: dict[str, list[str]] = field(default_factory=_default_stage_tasks)

    def check(self, stages: Sequence[StageConfig]) -> None:
        for stage in stages:
            tasks = self.stage_tasks.get(stage.name)
            if not tasks:
                raise ConfigError(
                    f"joint.stage_tasks: no tasks for stage {stage.name!r} (known stages: "
                    f"{', '.join(self.stage_tasks)})"
                )
            unknown = sorted(set(tasks) - set(TASKS))
            if unknown:
                raise ConfigError(
                    f"joint.stage_tasks.{stage.name}: unknown task {unknown[0]!r}; expected "
                    f"{', '.join(TASKS)}"
                )


def default_stages(
    epochs: Sequence[int] = (20, 10, 6, 4), lr: float = 1e-3, warmup_steps: int = 20
) -> list[StageConfig]:
    """The four-stage schedule; ``epochs`` per stage."""
    e1, e2, e3, e4 = epochs
    return [
        StageConfig("pretrain_sasrec", e1, lr=lr, trainable=["sasrec.*"], scheduler="constant"),
        StageConfig(
            "pretrain_retriever", e2, lr=lr, trainable=["retriever.*"], warmup_steps=warmup_steps
        ),
        StageConfig(
            "joint",
            e3,
            lr=lr / 2,
            warmup_steps=warmup_steps,
            alternate=[["sasrec.*"], ["retriever.*", "gate.*", "task_weights.*"]],
            alternate_every=10,
        ),
        StageConfig("end_to_end", e4, lr=lr / 4, warmup_steps=warmup_steps),
    ]


def task_losses(
    model: UR4Rec, batch: dict[str, torch.Tensor], tasks: Sequence[str], config: JointConfig
) -> dict[str, torch.Tensor]:
    seq, targets, negatives = batch["seq"], batch["targets"], batch["negatives"]
    users, target = batch["user"], batch["targets"][:, -1]
    out: dict[str, torch.Tensor] = {}
    if "sasrec" in tasks:
        out["sasrec"] = model.sasrec.loss(seq, targets, negatives)
    if not set(tasks) - {"sasrec"}:
        return out
    retriever = model.retriever
    items = retriever.item_vectors()
    user_vec = retriever.user_vector(users, seq, items)
    ret_scores = user_vec @ items.T
    if "retriever" in tasks:
        out["retriever"] = retrieval_loss(
            ret_scores, target, config.retrieval_loss, negatives[:, -1, :]
        )
    if "contrastive" in tasks:
        out["contrastive"] = info_nce(user_vec, items[target], config.temperature)
    if "diversity" in tasks:
        out["diversity"] = diversity_regulariser(items[target.unique()])
    if "modality" in tasks and isinstance(retriever, MultimodalRetriever):
        text, image = consistency_pair(retriever, target.unique())
        if len(text) >= 2:
            out["modality"] = modality_consistency(text, image, config.temperature)
    if "fusion" in tasks:
        state = model.sasrec.user_vector(seq)
        seq_scores = state @ model.sasrec.item_emb.weight.T
        fused = model.fuse(seq_scores, ret_scores, state, user_vec, seq)
        out["fusion"] = F.cross_entropy(fused[:, 1:], target - 1)
    return out


class JointLoss:
    """The Trainer's ``loss_fn``: which tasks depend on the stage the Trainer is in (``bind``
    it to the Trainer once that exists)."""

    def __init__(self, config: JointConfig, stages: Sequence[StageConfig]) -> None:
        config.check(stages)
        self.config = config
        self.stage_names = [s.name for s in stages]
        self.trainer: Trainer | None = None

    def bind(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def tasks(self) -> list[str]:
        if self.trainer is None:
            raise ConfigError("JointLoss: bind(trainer) before training")
        return self.config.stage_tasks[self.stage_names[self.trainer.state.stage_index]]

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inner: Any = getattr(model, "module", model)
        tasks = self.tasks()
        losses = task_losses(inner, batch, tasks, self.config)
        if len(losses) == 1:
            return next(iter(losses.values()))
        weighting = inner.task_weights if inner.config.uncertainty_weighting else None
        return joint_loss(losses, self.config.weights, weighting)


def ur4rec_scorer(
    model: UR4Rec, strategy: Strategy | None = None, alpha: float | None = None
) -> UserScorer:
    """The fused model's UserScorer with another strategy or alpha (the ablation's variants)."""
    return model.user_scorer(strategy, alpha)

"""Losses for UR4Rec: retrieval (BPR / BCE / softmax CE), InfoNCE, modality consistency, a
diversity regulariser, and the joint loss with fixed or learned (Kendall et al. 2018) weights.

Score tensors are ``[B, vocab]`` with column = item id (0 = padding, never a target).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.errors import ConfigError

RetrievalLoss = Literal["bpr", "bce", "ce"]


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(s+ - s-); ``positive`` [B], ``negative`` [B] or [B, N] (averaged)."""
    if negative.ndim == positive.ndim + 1:
        positive = positive.unsqueeze(-1)
    return -F.logsigmoid(positive - negative).mean()


def bce_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: positives labelled 1, negatives 0 (SASRec's loss)."""
    pos = F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive))
    neg = F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative))
    return pos + neg


def retrieval_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    kind: RetrievalLoss = "ce",
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of full score rows against target ids; bpr/bce need sampled ``negatives`` [B, N]."""
    if kind == "ce":
        masked = scores.clone()
        masked[:, 0] = float("-inf")  # padding is never an answer
        return F.cross_entropy(masked, targets)
    if negatives is None:
        raise ConfigError(f"retrieval loss {kind!r}: needs sampled negatives")
    positive = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
    negative = scores.gather(1, negatives)
    if kind == "bpr":
        return bpr_loss(positive, negative)
    if kind == "bce":
        return bce_loss(positive, negative)
    raise ConfigError(f"retrieval loss: expected bpr, bce or ce, got {kind!r}")


def info_nce(
    queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.1, symmetric: bool = True
) -> torch.Tensor:
    """Contrastive loss with in-batch negatives: row i of ``queries`` matches row i of ``keys``."""
    q = F.normalize(queries, dim=-1)
    k = F.normalize(keys, dim=-1)
    logits = q @ k.T / temperature
    labels = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss


def modality_consistency(
    text: torch.Tensor, image: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """An item's text and image embeddings should find each other among the batch's items
    (CLIP's symmetric InfoNCE); rows without an image should be left out by the caller."""
    return info_nce(text, image, temperature, symmetric=True)


def diversity_regulariser(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between distinct rows: 1 when all rows point the same
    way (collapse), 0 when they are orthogonal."""
    n = embeddings.shape[0]
    if n < 2:
        return embeddings.sum() * 0.0
    unit = F.normalize(embeddings, dim=-1)
    sims = unit @ unit.T
    off = sims - torch.diag_embed(torch.diagonal(sims))
    return (off**2).sum() / (n * (n - 1))


class UncertaintyWeighting(nn.Module):
    """Kendall, Gal, Cipolla (2018): sum_i exp(-s_i) * L_i + s_i with s_i = log sigma_i^2
    learned; the optimum for a fixed loss L_i is s_i = log L_i, so no task is weighted by hand."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        if not tasks:
            raise ConfigError("uncertainty weighting: expected at least one task")
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = self.log_vars.new_zeros(())
        for index, task in enumerate(self.tasks):
            if task in losses:
                s = self.log_vars[index]
                total = total + torch.exp(-s) * losses[task] + s
        return total

    def weights(self) -> dict[str, float]:
        weights = torch.exp(-self.log_vars.detach())
        return {t: float(w) for t, w in zip(self.tasks, weights, strict=True)}


def joint_loss(
    losses: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
    uncertainty: UncertaintyWeighting | None = None,
) -> torch.Tensor:
    """Sum of task losses: learned (``uncertainty``) or fixed ``weights`` (missing: 1.0)."""
    if not losses:
        raise ConfigError("joint loss: no task losses")
    if uncertainty is not None:
        return uncertainty(losses)
    weights = weights or {}
    return torch.stack([weights.get(name, 1.0) * loss for name, loss in losses.items()]).sum()

"""UR4Rec: SASRec's next-item scores combined with a retriever's preference scores.

Both score rows are first turned into log-probabilities over the catalogue (``log_softmax``), so
their scales agree; then, per ``FusionConfig.strategy``:

- ``weighted``: ``(1 - alpha) * log p_seq + alpha * log p_ret`` (a product of experts);
- ``gate``: the same with a per-user ``g = sigmoid(MLP([h_seq, h_ret]))`` learned in place of
  alpha, from SASRec's user state and the retriever's user vector;
- ``rerank``: SASRec's top ``rerank_k`` unseen items are re-ordered by the weighted score;
  every other item keeps SASRec's order below them (the retriever only touches K items).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, register_model
from towerkit.rec.sequential.losses import UncertaintyWeighting
from towerkit.rec.sequential.metrics import ItemScorer, UserScorer
from towerkit.rec.sequential.retrievers import (
    MultimodalRetriever,
    MultimodalRetrieverConfig,
    TextPreferenceRetriever,
    TextRetrieverConfig,
)
from towerkit.rec.sequential.sasrec import SASRec, SASRecConfig

Strategy = Literal["weighted", "gate", "rerank"]
TASKS = ("sasrec", "retriever", "fusion", "contrastive", "modality", "diversity")
_BELOW = 1.0e4  # rerank: items outside the top K sit this far below every candidate


@dataclass
class FusionConfig:
    strategy: Strategy = "weighted"
    alpha: float = 0.3  # weighted / rerank: the retriever's share
    rerank_k: int = 50
    gate_hidden: int = 32

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0 or self.rerank_k < 1 or self.gate_hidden < 1:
            raise ConfigError("fusion: alpha in [0, 1], rerank_k >= 1, gate_hidden >= 1")
        if self.strategy not in ("weighted", "gate", "rerank"):
            raise ConfigError(f"fusion: strategy: weighted|gate|rerank, got {self.strategy!r}")


@dataclass
class UR4RecConfig:
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    retriever: Literal["text", "multimodal"] = "text"
    text: TextRetrieverConfig = field(default_factory=TextRetrieverConfig)
    multimodal: MultimodalRetrieverConfig = field(default_factory=MultimodalRetrieverConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    uncertainty_weighting: bool = True  # Kendall et al. task weights, learned with the model

    @property
    def max_len(self) -> int:
        """The history window, as SASRec's (what evaluation and serving pad to)."""
        return self.sasrec.max_len


class UR4Rec(BaseModel):
    config_class = UR4RecConfig
    config: UR4RecConfig

    def __init__(self, config: UR4RecConfig) -> None:
        super().__init__(config)
        self.sasrec = SASRec(config.sasrec)
        self.retriever: TextPreferenceRetriever | MultimodalRetriever
        if config.retriever == "text":
            self.retriever = TextPreferenceRetriever(config.text)
            ret_dim = config.text.dim
        else:
            self.retriever = MultimodalRetriever(config.multimodal)
            ret_dim = config.multimodal.dim
        n_items = self.retriever.config.n_items
        if n_items != config.sasrec.n_items:
            raise ConfigError(
                f"ur4rec: sasrec has {config.sasrec.n_items} items, the retriever {n_items}"
            )
        hidden = config.fusion.gate_hidden
        self.gate = nn.Sequential(
            nn.Linear(config.sasrec.hidden + ret_dim, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )
        self.task_weights = UncertaintyWeighting(list(TASKS))

    def components(
        self, users: torch.Tensor, history: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """SASRec scores [B, V], retriever scores [B, V], SASRec state [B, h], retriever user
        vector [B, d]."""
        state = self.sasrec.user_vector(history)
        seq_scores = state @ self.sasrec.item_emb.weight.T
        seq_scores[:, 0] = float("-inf")
        items = self.retriever.item_vectors()
        user_vec = self.retriever.user_vector(users, history, items)
        ret_scores = user_vec @ items.T
        ret_scores[:, 0] = float("-inf")
        return seq_scores, ret_scores, state, user_vec

    def gate_value(self, state: torch.Tensor, user_vec: torch.Tensor) -> torch.Tensor:
        """[B, 1]: the retriever's share for each user."""
        return torch.sigmoid(self.gate(torch.cat([state, user_vec], -1)))

    def fuse(
        self,
        seq_scores: torch.Tensor,
        ret_scores: torch.Tensor,
        state: torch.Tensor,
        user_vec: torch.Tensor,
        history: torch.Tensor | None = None,
        strategy: Strategy | None = None,
        alpha: float | None = None,
    ) -> torch.Tensor:
        strategy = strategy or self.config.fusion.strategy
        alpha = self.config.fusion.alpha if alpha is None else alpha
        log_seq, log_ret = log_probs(seq_scores), log_probs(ret_scores)
        if strategy == "gate":
            g = self.gate_value(state, user_vec)
            fused = (1.0 - g) * log_seq + g * log_ret
        else:
            fused = (1.0 - alpha) * log_seq + alpha * log_ret
            if strategy == "rerank":
                fused = rerank(log_seq, fused, self.config.fusion.rerank_k, history)
        fused[:, 0] = float("-inf")
        return fused

    def score_all(
        self,
        users: torch.Tensor,
        history: torch.Tensor,
        strategy: Strategy | None = None,
        alpha: float | None = None,
    ) -> torch.Tensor:
        """[B, vocab] fused scores (log-probability scale), column 0 = -inf."""
        seq, ret, state, user_vec = self.components(users, history)
        return self.fuse(seq, ret, state, user_vec, history, strategy, alpha)

    def forward(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.score_all(users, history)

    def user_scorer(
        self, strategy: Strategy | None = None, alpha: float | None = None
    ) -> UserScorer:
        """A ``metrics.evaluate`` UserScorer of the fused scores: one [n, vocab] block per chunk
        of users, sliced per item request. A user row of -1 has no preference text (a history
        given at serving time): the retriever then uses the history alone."""

        def prepare(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
            device = self.sasrec.item_emb.weight.device
            scores = self.score_all(users.to(device), histories.to(device), strategy, alpha)

            def score(items: torch.Tensor) -> torch.Tensor:
                items = items.to(device)
                return scores[:, items] if items.ndim == 1 else scores.gather(1, items)

            return score

        return prepare


def log_probs(scores: torch.Tensor) -> torch.Tensor:
    """log_softmax over items 1..n; the padding column is 0 (not -inf) so that a weight of 0
    never meets -inf (0 * -inf is NaN): callers set it to -inf after mixing."""
    out = torch.zeros_like(scores)
    out[:, 1:] = F.log_softmax(scores[:, 1:], dim=-1)
    return out


def rerank(
    base: torch.Tensor, blended: torch.Tensor, k: int, history: torch.Tensor | None = None
) -> torch.Tensor:
    """The top ``k`` of ``base`` (history items left out) ordered by ``blended``; every other
    item keeps its ``base`` order, ``_BELOW`` lower."""
    masked = base.clone()
    masked[:, 0] = float("-inf")
    if history is not None:
        masked.scatter_(1, history, float("-inf"))
    k = min(k, masked.shape[1] - 1)
    top = masked.topk(k, dim=-1).indices
    out = base - _BELOW
    return out.scatter(1, top, blended.gather(1, top))


@register_model("ur4rec")
def ur4rec(**overrides: object) -> UR4Rec:
    return UR4Rec(UR4RecConfig(**overrides))  # type: ignore[arg-type]

"""A tower of the two-tower model and what it outputs: ids and features -> an embedding.

Each tower embeds the entity id (with hashed out-of-vocabulary rows), its categorical features
(``nn.Embedding``), multi-categorical features (``nn.EmbeddingBag``, mean over the list), numeric
features (already normalised) and text features (precomputed MiniLM vectors through a linear
projection), concatenates them and runs an MLP to an L2-normalised embedding, with optional
like-vs-pass heads (a bias and a like embedding) on the same hidden layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from towerkit.core.errors import ConfigError

if TYPE_CHECKING:
    from towerkit.rec.twotower.model import TwoTowerConfig


class TowerOutput(NamedTuple):
    """What a tower gives for n entities: the L2-normalised retrieval ``embedding`` (n, d), the
    like-vs-pass ``bias`` (n,) (0 without a bias head), the L2-normalised ``like`` embedding
    the like-vs-pass logit compares (its own head with ``like_head``, else ``embedding``) and
    the id indices the like logit's history attention reads (``items``: a candidate's own id
    (n,), a query's last liked and passed items (n, 2, L); None where there are none) and a
    query's history statistics (``stats`` (n, k), what the like booster reads)."""

    embedding: Tensor
    bias: Tensor
    like: Tensor
    items: Tensor | None = None
    stats: Tensor | None = None

    def take(self, rows: Tensor) -> TowerOutput:
        items = self.items[rows] if self.items is not None else None
        stats = self.stats[rows] if self.stats is not None else None
        return TowerOutput(self.embedding[rows], self.bias[rows], self.like[rows], items, stats)

    @staticmethod
    def cat(parts: list[TowerOutput]) -> TowerOutput:
        items = [p.items for p in parts if p.items is not None]
        stats = [p.stats for p in parts if p.stats is not None]
        return TowerOutput(
            torch.cat([p.embedding for p in parts]),
            torch.cat([p.bias for p in parts]),
            torch.cat([p.like for p in parts]),
            torch.cat(items) if items and len(items) == len(parts) else None,
            torch.cat(stats) if stats and len(stats) == len(parts) else None,
        )


@dataclass
class TowerSpec:
    """A tower's input sizes, read off a fitted ``SideFeaturizer``."""

    n_ids: int = 2
    categorical: list[int] = field(default_factory=list)  # vocabulary sizes
    multi_categorical: list[int] = field(default_factory=list)
    n_numeric: int = 0
    n_text: int = 0
    text_dim: int = 0


class Tower(nn.Module):
    """Inputs (ids (n,), cat (n, c), multi (n, m, L), num (n, k), text (n, t, D)) -> (n, d).

    ``like_head`` (default: the config's) gives the tower a second embedding head for the
    like-vs-pass logit."""

    def __init__(
        self,
        spec: TowerSpec,
        config: TwoTowerConfig,
        with_bias: bool = False,
        extra_width: int = 0,
        use_ids: bool = True,
        extra_to_heads_only: bool = False,
        like_head: bool | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        # the extra input skips the body and meets the hidden layer at the like / bias heads
        self.extra_to_heads_only = extra_to_heads_only
        head_extra = extra_width if extra_to_heads_only else 0
        extra_width = 0 if extra_to_heads_only else extra_width
        use_ids = use_ids and config.use_ids
        self.id_embedding = nn.Embedding(spec.n_ids, config.id_dim) if use_ids else None
        self.categorical = nn.ModuleList(
            nn.Embedding(size, config.feature_dim) for size in spec.categorical
        )
        self.multi_categorical = nn.ModuleList(
            nn.EmbeddingBag(size, config.feature_dim, mode="mean", padding_idx=0)
            for size in spec.multi_categorical
        )
        self.text = nn.ModuleList(
            nn.Linear(spec.text_dim, config.text_proj_dim) for _ in range(spec.n_text)
        )
        width = (
            (config.id_dim if use_ids else 0)
            + config.feature_dim * (len(spec.categorical) + len(spec.multi_categorical))
            + spec.n_numeric
            + config.text_proj_dim * spec.n_text
            + extra_width
        )
        if width == 0:
            raise ConfigError("model: a tower has no inputs (use_ids is false and no features)")
        layers: list[nn.Module] = []
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.embedding_dim)
        # a scalar "how likely is a like at all" (item appeal / user pickiness) from the same layer
        self.bias_head = nn.Linear(width + head_extra, 1) if with_bias else None
        like_head = config.like_head if like_head is None else like_head
        self.like_head = nn.Linear(width + head_extra, config.embedding_dim) if like_head else None
        for module in self.modules():
            if isinstance(module, nn.Embedding | nn.EmbeddingBag):
                nn.init.normal_(module.weight, std=config.init_std)

    def forward(self, ids: Tensor, cat: Tensor, multi: Tensor, num: Tensor, text: Tensor) -> Tensor:
        return F.normalize(self.head(self.hidden(ids, cat, multi, num, text)), dim=-1)

    def encode(self, *inputs: Tensor, extra: Tensor | None = None) -> TowerOutput:
        ids, cat, multi, num, text = inputs
        to_heads = self.extra_to_heads_only and extra is not None
        hidden = self.hidden(ids, cat, multi, num, text, None if to_heads else extra)
        embedding = F.normalize(self.head(hidden), dim=-1)
        head_in = torch.cat([hidden, extra], dim=-1) if to_heads and extra is not None else hidden
        bias = (
            self.bias_head(head_in).squeeze(-1)
            if self.bias_head is not None
            else hidden.new_zeros(hidden.shape[0])
        )
        like = F.normalize(self.like_head(head_in), dim=-1) if self.like_head is not None else None
        return TowerOutput(embedding, bias, embedding if like is None else like, ids)

    def hidden(
        self,
        ids: Tensor,
        cat: Tensor,
        multi: Tensor,
        num: Tensor,
        text: Tensor,
        extra: Tensor | None = None,
    ) -> Tensor:
        parts: list[Tensor] = []
        if self.id_embedding is not None:
            parts.append(self.id_embedding(ids))
        parts.extend(emb(cat[:, j]) for j, emb in enumerate(self.categorical))
        parts.extend(bag(multi[:, j]) for j, bag in enumerate(self.multi_categorical))
        if self.spec.n_numeric:
            parts.append(num)
        parts.extend(proj(text[:, j]) for j, proj in enumerate(self.text))
        if extra is not None:
            parts.append(extra)
        hidden: Tensor = self.body(torch.cat(parts, dim=-1))
        return hidden

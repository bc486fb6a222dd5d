"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over a user's item sequence.

Sequences are right-aligned in a window of ``max_len`` (left padding with id 0). Each block is
pre-norm attention whose query is the normed input (as in the authors' code) plus a position-wise
feed-forward; padding rows are zeroed after every block. The output at position t predicts the
item at t + 1, scored by a dot product with the (shared) item embedding table.

Losses (``SASRecConfig.loss``), each over every non-padding position of the training prefix:

- ``bce``: the paper's binary cross-entropy, the next item against ``num_negatives`` (1) random
  items the user never interacted with;
- ``bpr``: -log sigmoid(positive - negative) with the same negatives;
- ``ce``: softmax cross-entropy over all items;
- ``sampled_softmax``: softmax over the positive and ``num_negatives`` uniform items shared by
  the batch (a sampled item equal to the positive is masked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, register_model

Loss = Literal["bce", "bpr", "ce", "sampled_softmax"]


@dataclass
class SASRecConfig:
    n_items: int = 0  # real items, ids 1..n_items; 0 is padding
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    max_len: int = 50
    dropout: float = 0.2
    loss: Loss = "bce"
    num_negatives: int = 1  # per position for bce/bpr; per batch for sampled_softmax
    activation: Literal["relu", "gelu"] = "gelu"

    def __post_init__(self) -> None:
        checks = {
            "n_items": self.n_items >= 0,  # 0: filled in from the data before the model is built
            "hidden": self.hidden >= 1 and self.hidden % max(self.heads, 1) == 0,
            "blocks": self.blocks >= 1,
            "heads": self.heads >= 1,
            "max_len": self.max_len >= 2,
            "dropout": 0.0 <= self.dropout < 1.0,
            "num_negatives": self.num_negatives >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"sasrec: {key}: invalid value {getattr(self, key)!r} (blocks, heads >= 1, "
                    "hidden divisible by heads, max_len >= 2, dropout in [0, 1))"
                )


class _Block(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        d = config.hidden
        self.heads, self.dropout = config.heads, config.dropout
        self.attn_norm = nn.LayerNorm(d, eps=1e-8)
        self.query = nn.Linear(d, d)
        self.key_value = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(d, d),
            nn.GELU() if config.activation == "gelu" else nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(d, d),
            nn.Dropout(config.dropout),
        )

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        return x.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        normed = self.attn_norm(x)
        key, value = self.key_value(x).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._split(self.query(normed)),
            self._split(key),
            self._split(value),
            attn_mask=allowed,
            dropout_p=self.dropout if self.training else 0.0,
        )
        b, _, length, _ = attended.shape
        x = normed + self.out(attended.transpose(1, 2).reshape(b, length, -1))
        x = x + self.ffn(self.ffn_norm(x))
        return x * keep


class SASRec(BaseModel):
    config_class = SASRecConfig
    config: SASRecConfig

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__(config)
        if config.n_items < 1:
            raise ConfigError("sasrec: n_items: expected >= 1 (the dataset's item count)")
        d = config.hidden
        self.item_emb = nn.Embedding(config.n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, d)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.blocks))
        self.final_norm = nn.LayerNorm(d, eps=1e-8)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.xavier_normal_(module.weight)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # --- encoding ----------------------------------------------------------------------------

    @staticmethod
    def _attention_mask(keep: torch.Tensor) -> torch.Tensor:
        """[B, 1, L, L], True = may attend: earlier or same positions that are not padding; each
        position always sees itself, so padding rows have no all-blocked softmax."""
        length = keep.shape[1]
        eye = torch.eye(length, dtype=torch.bool, device=keep.device)
        causal = torch.ones(length, length, dtype=torch.bool, device=keep.device).tril()
        return ((causal & keep[:, None, :]) | eye).unsqueeze(1)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, d] of right-aligned sequences [B, L] (L <= max_len)."""
        length = seq.shape[1]
        if length > self.config.max_len:
            seq, length = seq[:, -self.config.max_len :], self.config.max_len
        keep = seq != 0
        positions = torch.arange(
            self.config.max_len - length, self.config.max_len, device=seq.device
        )
        x = self.item_emb(seq) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        mask = keep.unsqueeze(-1).to(x.dtype)
        x = self.emb_dropout(x) * mask
        allowed = self._attention_mask(keep)
        for block in self.blocks:
            x = block(x, allowed, mask)
        return self.final_norm(x)

    def user_vector(self, history: torch.Tensor) -> torch.Tensor:
        """[B, d]: the state after the last item of each right-aligned history."""
        return self.encode(history)[:, -1]

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        """[B, n_items + 1] next-item scores, column = item id; column 0 (padding) is -inf."""
        scores = self.user_vector(history) @ self.item_emb.weight.T
        scores[:, 0] = float("-inf")
        return scores

    def score_items(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given items: ``items`` [M] (the same for all users) -> [B, M]; or per user
        [B, M] -> [B, M]."""
        return score_with(self.user_vector(history), self.item_emb.weight, items)

    # --- training ----------------------------------------------------------------------------

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.encode(seq)

    def loss(
        self, seq: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Next-item loss. ``seq``/``targets`` [B, L] (targets 0 where nothing is predicted);
        ``negatives`` [B, L, N] for bce/bpr (ignored by ce; sampled_softmax draws its own)."""
        hidden = self(seq)
        valid = targets != 0
        h = hidden[valid]  # [P, d]
        pos_ids = targets[valid]
        table = self.item_emb.weight
        kind = self.config.loss
        if kind == "ce":
            logits = h @ table.T
            logits[:, 0] = float("-inf")
            return F.cross_entropy(logits, pos_ids)
        if kind == "sampled_softmax":
            return _sampled_softmax(h, pos_ids, table, self.config.num_negatives)
        if negatives is None:
            raise ConfigError(f"sasrec: loss {kind!r} needs negatives from the dataset")
        pos = (h * table[pos_ids]).sum(-1)
        neg = (h.unsqueeze(1) * table[negatives[valid]]).sum(-1)  # [P, N]
        if kind == "bpr":
            return -F.logsigmoid(pos.unsqueeze(1) - neg).mean()
        pos_loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        neg_loss = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        return pos_loss + neg_loss


def score_with(users: torch.Tensor, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Dot products of user vectors [B, d] with ``table`` rows: items [M] -> [B, M], or items
    [B, M] -> [B, M]."""
    if items.ndim == 1:
        return users @ table[items].T
    return torch.einsum("bd,bmd->bm", users, table[items])


def _sampled_softmax(
    h: torch.Tensor, pos_ids: torch.Tensor, table: torch.Tensor, num_negatives: int
) -> torch.Tensor:
    negatives = torch.randint(1, table.shape[0], (num_negatives,), device=h.device)
    pos = (h * table[pos_ids]).sum(-1, keepdim=True)
    neg = h @ table[negatives].T
    neg = neg.masked_fill(negatives.unsqueeze(0) == pos_ids.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long, device=h.device))


@register_model("sasrec")
def sasrec(**overrides: object) -> SASRec:
    """SASRec with the paper's defaults for MovieLens (hidden 50 there; 64 here)."""
    return SASRec(SASRecConfig(**overrides))  # type: ignore[arg-type]

"""UR4Rec's retrievers: a text-preference retriever and a multimodal (text + image) retriever.

Both score every item for a batch of users in one matmul (``score_all -> [B, vocab]``, column
= item id, column 0 = padding = -inf) and keep their frozen inputs as buffers, so a saved model
(``save_pretrained``) carries everything it needs to score.

Text-preference retriever: the MiniLM embedding of each user's preference text (written offline
by ``textgen`` from the training prefix) and of each item's description, both frozen; trainable
projections, item id embeddings, and optionally the mean of the history's item vectors.

Multimodal retriever: per item, text token embeddings [T, text_dim] and image patch features
[P, image_dim] (e.g. an open_clip ViT's patch tokens, or a precomputed feature file; see
``rec.sequential.images``). Text tokens attend to image patches (cross-modal attention), and the
pooled text vector and the text-conditioned image vector are fused by ``concat``, ``add`` or a
learned ``gated`` mix. Items without an image (``image_mask`` False) use the text side alone.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, register_model

Fusion = Literal["concat", "add", "gated"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _mask_padding(scores: torch.Tensor) -> torch.Tensor:
    scores[:, 0] = float("-inf")
    return scores


def _user_text(table: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """Rows of the preference-text table; user -1 (no text, e.g. a history given at serving
    time) gets zeros."""
    known = users >= 0
    rows = table[users.clamp(min=0)]
    return rows * known.unsqueeze(-1).to(rows.dtype)


def _history_mean(vectors: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Mean of the item vectors of each (0-padded) history: [B, L] -> [B, d]."""
    keep = (history != 0).unsqueeze(-1).to(vectors.dtype)
    total = (vectors[history] * keep).sum(1)
    return total / keep.sum(1).clamp(min=1.0)


class _UserTextRetriever(BaseModel, abc.ABC):
    """What both retrievers share: a user is the projection of their preference-text embedding
    (plus, optionally, the mean of their history's item vectors), scored against every item."""

    config: Any
    user_text: torch.Tensor
    user_proj: nn.Module
    dropout: nn.Module

    @abc.abstractmethod
    def item_vectors(self) -> torch.Tensor:
        """[n_items + 1, dim]: row 0 is padding."""

    def user_vector(
        self,
        users: torch.Tensor,
        history: torch.Tensor | None = None,
        items: torch.Tensor | None = None,
    ) -> torch.Tensor:
        vector = self.user_proj(self.dropout(_user_text(self.user_text, users)))
        if self.config.use_history and history is not None:
            table = items if items is not None else self.item_vectors()
            vector = vector + _history_mean(table, history)
        return vector

    def score_all(self, users: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        items = self.item_vectors()
        return _mask_padding(self.user_vector(users, history, items) @ items.T)

    def forward(self, users: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        return self.score_all(users, history)


@dataclass
class TextRetrieverConfig:
    n_items: int = 0
    n_users: int = 0
    text_dim: int = 384  # MiniLM
    dim: int = 64
    dropout: float = 0.1
    use_item_ids: bool = True  # trainable per-item embeddings beside the text
    use_history: bool = True  # add the mean of the history's item vectors to the user side

    def __post_init__(self) -> None:
        _check(self.dim >= 1 and self.text_dim >= 1, "text retriever: dim, text_dim >= 1")
        _check(0.0 <= self.dropout < 1.0, "text retriever: dropout: expected [0, 1)")


class TextPreferenceRetriever(_UserTextRetriever):
    config_class = TextRetrieverConfig
    config: TextRetrieverConfig
    user_text: torch.Tensor
    item_text: torch.Tensor

    def __init__(self, config: TextRetrieverConfig) -> None:
        super().__init__(config)
        _check(config.n_items >= 1 and config.n_users >= 1, "text retriever: n_items, n_users >= 1")
        d, t = config.dim, config.text_dim
        self.register_buffer("user_text", torch.zeros(config.n_users, t))
        self.register_buffer("item_text", torch.zeros(config.n_items + 1, t))
        self.user_proj = nn.Sequential(nn.Linear(t, d), nn.GELU(), nn.Linear(d, d))
        self.item_proj = nn.Linear(t, d)
        self.item_id = nn.Embedding(config.n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.01)
        with torch.no_grad():
            self.item_id.weight[0].zero_()
        self.dropout = nn.Dropout(config.dropout)

    def set_texts(self, user_text: torch.Tensor, item_text: torch.Tensor) -> None:
        """Fill the frozen text embeddings: [n_users, text_dim] and [n_items + 1, text_dim]."""
        _check(
            tuple(user_text.shape) == tuple(self.user_text.shape)
            and tuple(item_text.shape) == tuple(self.item_text.shape),
            f"text retriever: expected text embeddings {tuple(self.user_text.shape)} and "
            f"{tuple(self.item_text.shape)}, got {tuple(user_text.shape)} and "
            f"{tuple(item_text.shape)}",
        )
        self.user_text.copy_(user_text)
        self.item_text.copy_(item_text)

    def item_vectors(self) -> torch.Tensor:
        """[vocab, dim]; row 0 (padding) is zero."""
        vectors = self.item_proj(self.item_text)
        if self.config.use_item_ids:
            vectors = vectors + self.item_id.weight
        keep = torch.ones_like(vectors[:, :1])
        keep[0] = 0.0
        return vectors * keep


@dataclass
class MultimodalRetrieverConfig:
    n_items: int = 0
    n_users: int = 0
    text_dim: int = 384
    text_tokens: int = 16  # tokens kept per item text
    image_dim: int = 512  # e.g. open_clip ViT-B-32 width 768 / projected 512
    image_patches: int = 1  # 1: one global image vector per item
    dim: int = 64
    heads: int = 2
    fusion: Fusion = "gated"
    dropout: float = 0.1
    use_item_ids: bool = False
    use_history: bool = True

    def __post_init__(self) -> None:
        _check(self.dim % max(self.heads, 1) == 0, "multimodal retriever: dim % heads == 0")
        _check(min(self.text_tokens, self.image_patches) >= 1, "multimodal: tokens, patches >= 1")
        _check(self.fusion in ("concat", "add", "gated"), "multimodal: fusion: concat|add|gated")


class MultimodalRetriever(_UserTextRetriever):
    config_class = MultimodalRetrieverConfig
    config: MultimodalRetrieverConfig
    user_text: torch.Tensor
    text_tokens: torch.Tensor
    text_mask: torch.Tensor
    image_patches: torch.Tensor
    image_mask: torch.Tensor

    def __init__(self, config: MultimodalRetrieverConfig) -> None:
        super().__init__(config)
        _check(config.n_items >= 1 and config.n_users >= 1, "multimodal: n_items, n_users >= 1")
        v, d = config.n_items + 1, config.dim
        self.register_buffer("user_text", torch.zeros(config.n_users, config.text_dim))
        self.register_buffer("text_tokens", torch.zeros(v, config.text_tokens, config.text_dim))
        self.register_buffer("text_mask", torch.zeros(v, config.text_tokens, dtype=torch.bool))
        self.register_buffer(
            "image_patches", torch.zeros(v, config.image_patches, config.image_dim)
        )
        self.register_buffer("image_mask", torch.zeros(v, dtype=torch.bool))
        self.text_in = nn.Linear(config.text_dim, d)
        self.image_in = nn.Linear(config.image_dim, d)
        self.cross = nn.MultiheadAttention(d, config.heads, config.dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(d)
        if config.fusion == "concat":
            self.fuse = nn.Linear(2 * d, d)
        elif config.fusion == "gated":
            self.gate = nn.Linear(2 * d, d)
        self.user_proj = nn.Sequential(nn.Linear(config.text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.item_id = nn.Embedding(v, d, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.01)
        self.dropout = nn.Dropout(config.dropout)

    def set_inputs(
        self,
        user_text: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        image_patches: torch.Tensor,
        image_mask: torch.Tensor,
    ) -> None:
        for name, value in (
            ("user_text", user_text),
            ("text_tokens", text_tokens),
            ("text_mask", text_mask),
            ("image_patches", image_patches),
            ("image_mask", image_mask),
        ):
            buffer = getattr(self, name)
            _check(
                tuple(value.shape) == tuple(buffer.shape),
                f"multimodal retriever: {name}: expected shape {tuple(buffer.shape)}, "
                f"got {tuple(value.shape)}",
            )
            buffer.copy_(value)

    def modalities(
        self, items: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled text [N, d], text-conditioned image [N, d] and the image mask [N] of ``items``
        (None: every id, padding included)."""
        index = items if items is not None else torch.arange(self.text_tokens.shape[0])
        index = index.to(self.text_tokens.device)
        tokens = self.text_in(self.text_tokens[index])  # [N, T, d]
        mask = self.text_mask[index]
        patches = self.image_in(self.image_patches[index])  # [N, P, d]
        attended, _ = self.cross(tokens, patches, patches, need_weights=False)
        attended = self.cross_norm(attended)
        keep = mask.unsqueeze(-1).to(tokens.dtype)
        count = keep.sum(1).clamp(min=1.0)
        text = (tokens * keep).sum(1) / count
        has_image = self.image_mask[index]
        image = ((attended * keep).sum(1) / count) * has_image.unsqueeze(-1).to(tokens.dtype)
        return text, image, has_image

    def gate_values(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The gated fusion's weight on the text side, [N, d] (1: text only, 0: image only)."""
        _check(self.config.fusion == "gated", "gate_values: the retriever's fusion is not gated")
        text, image, _ = self.modalities(items)
        return torch.sigmoid(self.gate(torch.cat([text, image], -1)))

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        text, image, has_image = self.modalities(items)
        text, image = self.dropout(text), self.dropout(image)
        fusion = self.config.fusion
        if fusion == "add":
            fused = text + image
        elif fusion == "concat":
            fused = self.fuse(torch.cat([text, image], -1))
        else:
            g = torch.sigmoid(self.gate(torch.cat([text, image], -1)))
            # no image: the text side alone, whatever the gate says
            g = torch.where(has_image.unsqueeze(-1), g, torch.ones_like(g))
            fused = g * text + (1.0 - g) * image
        if self.config.use_item_ids:
            index = items if items is not None else torch.arange(fused.shape[0])
            fused = fused + self.item_id(index.to(fused.device))
        return fused


def consistency_pair(
    model: MultimodalRetriever, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text and image vectors of the ``items`` that have an image, for the modality loss."""
    text, image, has_image = model.modalities(items)
    return F.normalize(text[has_image], dim=-1), F.normalize(image[has_image], dim=-1)


@register_model("ur4rec-text-retriever")
def text_retriever(**overrides: object) -> TextPreferenceRetriever:
    return TextPreferenceRetriever(TextRetrieverConfig(**overrides))  # type: ignore[arg-type]


@register_model("ur4rec-multimodal-retriever")
def multimodal_retriever(**overrides: object) -> MultimodalRetriever:
    return MultimodalRetriever(MultimodalRetrieverConfig(**overrides))  # type: ignore[arg-type]

"""The two-tower retrieval model: a query (user) tower and a candidate (item) tower.

Each tower embeds the entity id (with hashed out-of-vocabulary rows), its categorical features
(``nn.Embedding``), multi-categorical features (``nn.EmbeddingBag``, mean over the list), numeric
features (already normalised) and text features (precomputed MiniLM vectors through a linear
projection), concatenates them and runs an MLP to an L2-normalised embedding. Scores are
cosines. The model also carries the streaming item-frequency estimator of the logQ correction
and the scale / bias of the pointwise like-vs-pass head.

A trained model is saved with its fitted featurisation (``features.json``) and the feature
tensors of every known user and item plus the items each user saw in training
(``tables.safetensors``), all in the one model directory, written atomically together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from towerkit.core.errors import ConfigError
from towerkit.core.io import atomic_dir
from towerkit.core.model import BaseModel, register_model, replace_config
from towerkit.rec.twotower.artifacts import FeatureArtifacts
from towerkit.rec.twotower.attention import HistoryAttention
from towerkit.rec.twotower.losses import StreamingFrequency

M = TypeVar("M", bound=BaseModel)


class TowerOutput(NamedTuple):
    """What a tower gives for n entities: the L2-normalised retrieval ``embedding`` (n, d), the
    like-vs-pass ``bias`` (n,) (0 without a bias head), the L2-normalised ``like`` embedding
    the like-vs-pass logit compares (its own head with ``like_head``, else ``embedding``) and
    the id indices the like logit's history attention reads (``items``: a candidate's own id
    (n,), a query's last liked and passed items (n, 2, L); None where there are none)."""

    embedding: Tensor
    bias: Tensor
    like: Tensor
    items: Tensor | None = None

    def take(self, rows: Tensor) -> TowerOutput:
        items = self.items[rows] if self.items is not None else None
        return TowerOutput(self.embedding[rows], self.bias[rows], self.like[rows], items)

    @staticmethod
    def cat(parts: list[TowerOutput]) -> TowerOutput:
        items = [p.items for p in parts if p.items is not None]
        return TowerOutput(
            torch.cat([p.embedding for p in parts]),
            torch.cat([p.bias for p in parts]),
            torch.cat([p.like for p in parts]),
            torch.cat(items) if items and len(items) == len(parts) else None,
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


@dataclass
class TwoTowerConfig:
    query: TowerSpec = field(default_factory=TowerSpec)
    candidate: TowerSpec = field(default_factory=TowerSpec)
    embedding_dim: int = 64
    id_dim: int = 32
    feature_dim: int = 16
    text_proj_dim: int = 32
    hidden_dims: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.1
    use_ids: bool = True
    # false: the query tower leaves the user id out (a history model knows users by what they
    # swiped; on MovieLens validation the id embedding only memorised the training period)
    query_ids: bool = True
    init_std: float = 0.05  # embedding tables start small so no single input dominates
    freq_buckets: int = 65536
    freq_hashes: int = 2
    freq_alpha: float = 0.05
    bce_scale_init: float = 10.0
    item_bias: bool = False  # a candidate-tower bias in the like-vs-pass logit (not in retrieval)
    user_bias: bool = False  # a query-tower bias in the like-vs-pass logit (constant per ranking)
    # > 0: the query tower also reads the user's last history_len liked and passed items (mean
    # of the candidate tower's id embeddings, shared) and their count / like rate (history.py)
    history_len: int = 0
    history_prior: float = 0.5  # the training like rate newcomers' smoothed rates start from
    # true: the like-vs-pass logit compares embeddings of its own head, so the pointwise loss
    # and the retrieval softmax stop pulling one embedding two ways
    like_head: bool = False
    # where the history goes: "both" (the retrieval embedding and the like-vs-pass logit) or
    # "like" (only the like head and user bias: retrieval stays on the static features and id)
    history_into: str = "both"
    # true: the like-vs-pass logit adds a target-aware attention term, the candidate attending
    # over the user's last liked and passed items (attention.py; needs history_len > 0); the
    # retrieval embeddings, the export and serving do not use it
    like_attention: bool = False
    attention_dim: int = 32
    attention_hidden: int = 64
    attention_table: str = "own"  # "own" item table or the candidate tower's id table, "shared"
    # "svd": the own item table starts from a truncated SVD of the training like (+1) / pass
    # (-1) item x user matrix (attention.item_factors), i.e. item-item similarity of swipes
    attention_init: str = "random"
    attention_fixed: bool = False  # true with svd: the item table stays as initialised

    def __post_init__(self) -> None:
        for key in ("embedding_dim", "id_dim", "feature_dim", "text_proj_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model: {key}: expected >= 1, got {getattr(self, key)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model: dropout: expected 0 <= dropout < 1, got {self.dropout}")
        if self.history_len < 0:
            raise ConfigError(f"model: history_len: expected >= 0, got {self.history_len}")
        if self.history_into not in ("both", "like"):
            raise ConfigError(
                f"model: history_into: expected both or like, got {self.history_into!r}"
            )
        if self.history_len and self.history_into == "like" and not self.like_head:
            raise ConfigError("model: history_into=like needs like_head: true")
        if self.history_len and not self.use_ids:
            raise ConfigError("model: history_len > 0 embeds items by id: it needs use_ids")
        if self.like_attention and not self.history_len:
            raise ConfigError("model: like_attention attends over the history: set history_len")
        if self.attention_table not in ("own", "shared"):
            raise ConfigError(
                f"model: attention_table: expected own or shared, got {self.attention_table!r}"
            )
        if self.attention_init not in ("random", "svd"):
            raise ConfigError(
                f"model: attention_init: expected random or svd, got {self.attention_init!r}"
            )
        if self.attention_init == "svd" and self.attention_table != "own":
            raise ConfigError("model: attention_init=svd needs attention_table=own")
        if self.attention_fixed and self.attention_init != "svd":
            raise ConfigError("model: attention_fixed keeps the svd table: set attention_init=svd")
        if min(self.attention_dim, self.attention_hidden) < 1:
            raise ConfigError("model: attention_dim and attention_hidden: expected >= 1")

    @property
    def history_width(self) -> int:
        """What the history adds to the query tower's input: two id-sized means + 2 numbers."""
        return 2 * self.id_dim + 2 if self.history_len else 0


class Tower(nn.Module):
    """Inputs (ids (n,), cat (n, c), multi (n, m, L), num (n, k), text (n, t, D)) -> (n, d)."""

    def __init__(
        self,
        spec: TowerSpec,
        config: TwoTowerConfig,
        with_bias: bool = False,
        extra_width: int = 0,
        use_ids: bool = True,
        extra_to_heads_only: bool = False,
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
        self.like_head = (
            nn.Linear(width + head_extra, config.embedding_dim) if config.like_head else None
        )
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


class TwoTowerModel(BaseModel):
    """``forward(query_inputs, candidate_inputs, history) -> (query TowerOutput, candidate
    TowerOutput)``; retrieval scores are the cosines of the ``embedding``s; the like-vs-pass
    logit of a pair is ``bce_scale * cosine(like embeddings) + item bias + user bias +
    bce_bias`` (``like_logits``). ``history`` (liked, passed, stats) is required when
    ``history_len > 0`` and ignored otherwise.

    ``artifacts`` (fitted featurisation + feature tables) is attached after fitting and saved
    and loaded with the weights.
    """

    config_class = TwoTowerConfig
    config: TwoTowerConfig

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__(config)
        self.query_tower = Tower(
            config.query,
            config,
            with_bias=config.user_bias,
            extra_width=config.history_width,
            use_ids=config.query_ids,
            extra_to_heads_only=config.history_into == "like",
        )
        self.candidate_tower = Tower(config.candidate, config, with_bias=config.item_bias)
        self.bce_scale = nn.Parameter(torch.tensor(float(config.bce_scale_init)))
        self.bce_bias = nn.Parameter(torch.zeros(()))
        self.item_frequency = StreamingFrequency(
            config.freq_buckets, config.freq_hashes, config.freq_alpha
        )
        self.attention = (
            HistoryAttention(
                config.candidate.n_ids,
                config.attention_dim,
                config.attention_hidden,
                input_dim=config.id_dim if config.attention_table == "shared" else None,
                init_std=config.init_std,
                fixed=config.attention_fixed,
            )
            if config.like_attention
            else None
        )
        self.artifacts: FeatureArtifacts | None = None

    def forward(
        self,
        query: tuple[Tensor, ...],
        candidate: tuple[Tensor, ...],
        history: tuple[Tensor, ...] | None = None,
    ) -> tuple[TowerOutput, TowerOutput]:
        return self.encode_query(query, history), self.candidate_tower.encode(*candidate)

    def encode_query(
        self, query: tuple[Tensor, ...], history: tuple[Tensor, ...] | None = None
    ) -> TowerOutput:
        extra = None
        if self.config.history_len:
            if history is None:
                raise ValueError("this model reads the user's history: pass (liked, passed, stats)")
            extra = self.history_vectors(*history)
        out = self.query_tower.encode(*query, extra=extra)
        items = torch.stack([history[0], history[1]], dim=1) if history is not None else None
        return out._replace(items=items)

    def history_vectors(self, liked: Tensor, passed: Tensor, stats: Tensor) -> Tensor:
        """(n, 2 * id_dim + 2): mean id embedding of the liked and of the passed items, stats."""
        table = self.candidate_tower.id_embedding
        assert table is not None  # the config demands use_ids with a history

        def mean(ids: Tensor) -> Tensor:
            present = (ids >= 0).unsqueeze(-1).to(table.weight.dtype)
            summed = (table(ids.clamp(min=0)) * present).sum(dim=1)
            return summed / present.sum(dim=1).clamp(min=1.0)

        return torch.cat([mean(liked), mean(passed), stats.to(table.weight.dtype)], dim=-1)

    def like_logits(self, query: TowerOutput, candidate: TowerOutput) -> Tensor:
        """Pointwise like-vs-pass logits of aligned (query_i, candidate_i) pairs; with
        ``like_attention`` plus the candidate's attention over the query's history items."""
        cosine = (query.like * candidate.like).sum(dim=-1)
        logits = self.bce_scale * cosine + candidate.bias + query.bias + self.bce_bias
        if self.attention is None:
            return logits
        if query.items is None or candidate.items is None:
            raise ValueError("like_attention needs the query's history and the candidate's ids")
        table = self.candidate_tower.id_embedding
        return logits + self.attention(table, candidate.items, query.items)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Weights + config (BaseModel) and the artifacts, replacing ``directory`` as a whole."""
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            inner = super().save_pretrained(tmp / "weights")
            for path in inner.iterdir():
                os.replace(path, tmp / path.name)
            inner.rmdir()
            if self.artifacts is not None:
                self.artifacts.save(tmp)
        return directory

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str = "cpu") -> M:
        model = super().from_pretrained(directory, map_location)
        if isinstance(model, TwoTowerModel) and FeatureArtifacts.present(Path(directory)):
            model.artifacts = FeatureArtifacts.load(Path(directory))
            model.artifacts.check_matches(model.config, Path(directory))
        return model


def _build(defaults: dict[str, Any], **overrides: Any) -> TwoTowerModel:
    config = replace_config(TwoTowerConfig(**defaults), **overrides)
    return TwoTowerModel(config)


@register_model("two-tower-small")
def two_tower_small(**overrides: Any) -> TwoTowerModel:
    """64-d embeddings, one 128-unit hidden layer per tower."""
    return _build({"embedding_dim": 64, "hidden_dims": [128]}, **overrides)


@register_model("two-tower-base")
def two_tower_base(**overrides: Any) -> TwoTowerModel:
    """128-d embeddings, two hidden layers (256, 256) per tower."""
    return _build(
        {"embedding_dim": 128, "id_dim": 64, "feature_dim": 32, "hidden_dims": [256, 256]},
        **overrides,
    )

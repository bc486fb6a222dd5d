"""The two-tower retrieval model: a query (user) tower and a candidate (item) tower.

Each tower (``towers.py``) runs ids and features through an MLP to an L2-normalised embedding;
retrieval scores are cosines. The model also carries the streaming item-frequency estimator of
the logQ correction, the scale / bias of the pointwise like-vs-pass logit and, optionally, the
logit's history attention and a second pair of towers of its own (``like_towers``).

A trained model is saved with its fitted featurisation (``features.json``) and the feature
tensors of every known user and item plus the items each user saw in training
(``tables.safetensors``), all in the one model directory, written atomically together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from towerkit.core.errors import ConfigError
from towerkit.core.io import atomic_dir
from towerkit.core.model import BaseModel, register_model, replace_config
from towerkit.rec.twotower.artifacts import FeatureArtifacts
from towerkit.rec.twotower.attention import HistoryAttention
from towerkit.rec.twotower.booster import LikeBooster
from towerkit.rec.twotower.losses import StreamingFrequency
from towerkit.rec.twotower.towers import Tower, TowerOutput, TowerSpec

M = TypeVar("M", bound=BaseModel)

__all__ = ["Tower", "TowerOutput", "TowerSpec", "TwoTowerConfig", "TwoTowerModel"]


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
    # > 0: the history also carries the like rate of the user's last recent_swipes swipes
    recent_swipes: int = 0
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
    # true: the like-vs-pass logit reads a second query / candidate tower pair of its own (with
    # the user / item bias heads and the history), so no parameter feeds both it and retrieval
    # and each path can keep the weights of its own best epoch (recipe: like_selection)
    like_towers: bool = False

    def __post_init__(self) -> None:
        for key in ("embedding_dim", "id_dim", "feature_dim", "text_proj_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model: {key}: expected >= 1, got {getattr(self, key)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model: dropout: expected 0 <= dropout < 1, got {self.dropout}")
        if self.history_len < 0:
            raise ConfigError(f"model: history_len: expected >= 0, got {self.history_len}")
        if self.recent_swipes < 0:
            raise ConfigError(f"model: recent_swipes: expected >= 0, got {self.recent_swipes}")
        if self.history_into not in ("both", "like"):
            raise ConfigError(
                f"model: history_into: expected both or like, got {self.history_into!r}"
            )
        if (
            self.history_len
            and self.history_into == "like"
            and not (self.like_head or self.like_towers)
        ):
            raise ConfigError("model: history_into=like needs like_head: true (or like_towers)")
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
        """What the history adds to the query tower's input: two id-sized means + its stats."""
        return 2 * self.id_dim + self.history_stats if self.history_len else 0

    @property
    def history_stats(self) -> int:
        """The history's numbers: count and like rate, and the recent window's like rate."""
        return 3 if self.recent_swipes else 2


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
        split = config.like_towers  # the like-vs-pass heads live on towers of their own
        # does the retrieval tower read the history (split: only with history_into=both)?
        self.retrieval_history = bool(config.history_len) and not (
            split and config.history_into == "like"
        )
        self.query_tower = Tower(
            config.query,
            config,
            with_bias=config.user_bias and not split,
            extra_width=config.history_width if self.retrieval_history else 0,
            use_ids=config.query_ids,
            extra_to_heads_only=config.history_into == "like" and not split,
            like_head=config.like_head and not split,
        )
        self.candidate_tower = Tower(
            config.candidate,
            config,
            with_bias=config.item_bias and not split,
            like_head=config.like_head and not split,
        )
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
        # like_towers: the like embedding is these towers' main head, with the bias heads
        self.like_query_tower = (
            Tower(
                config.query,
                config,
                with_bias=config.user_bias,
                extra_width=config.history_width,
                use_ids=config.query_ids,
                like_head=False,
            )
            if split
            else None
        )
        self.like_candidate_tower = (
            Tower(config.candidate, config, with_bias=config.item_bias, like_head=False)
            if split
            else None
        )
        self.artifacts: FeatureArtifacts | None = None
        # fitted after training (booster.py) and blended into like_logits; not a parameter
        self.booster: LikeBooster | None = None

    def forward(
        self,
        query: tuple[Tensor, ...],
        candidate: tuple[Tensor, ...],
        history: tuple[Tensor, ...] | None = None,
        retrieval_history: tuple[Tensor, ...] | None = None,
    ) -> tuple[TowerOutput, TowerOutput]:
        query_out = self.encode_query(query, history, retrieval_history=retrieval_history)
        return query_out, self.encode_candidate(candidate)

    def encode_query(
        self,
        query: tuple[Tensor, ...],
        history: tuple[Tensor, ...] | None = None,
        like: bool = True,
        retrieval_history: tuple[Tensor, ...] | None = None,
    ) -> TowerOutput:
        """The query tower's output; ``like=False``: retrieval only (with ``like_towers`` the
        like tower is skipped, its fields are then the retrieval ones). ``retrieval_history``,
        in training only: another history for the retrieval embedding (an older one, see
        ``features.retrieval_lag_days``); default ``history``."""
        if self.config.history_len and history is None:
            raise ValueError("this model reads the user's history: pass (liked, passed, stats)")
        items = torch.stack([history[0], history[1]], dim=1) if history is not None else None
        extra = None
        retrieval_history = retrieval_history if retrieval_history is not None else history
        if retrieval_history is not None and self.retrieval_history:
            extra = self.history_vectors(retrieval_history, self.candidate_tower.id_embedding)
        stats = history[2] if history is not None else None
        out = self.query_tower.encode(*query, extra=extra)._replace(items=items, stats=stats)
        if self.like_query_tower is None or not like:
            return out
        like_extra = None
        if history is not None and self.config.history_len:
            assert self.like_candidate_tower is not None
            like_extra = self.history_vectors(history, self.like_candidate_tower.id_embedding)
        own = self.like_query_tower.encode(*query, extra=like_extra)
        return out._replace(bias=own.bias, like=own.embedding)

    def encode_candidate(self, candidate: tuple[Tensor, ...], like: bool = True) -> TowerOutput:
        out = self.candidate_tower.encode(*candidate)
        if self.like_candidate_tower is None or not like:
            return out
        own = self.like_candidate_tower.encode(*candidate)
        return out._replace(bias=own.bias, like=own.embedding)

    def history_vectors(
        self, history: tuple[Tensor, ...], table: nn.Embedding | None = None
    ) -> Tensor:
        """(n, history_width) of ``history`` (liked, passed, stats): the mean id embedding (in
        ``table``, default the candidate tower's) of the liked and of the passed items, stats."""
        liked, passed, stats = history
        table = table if table is not None else self.candidate_tower.id_embedding
        assert table is not None  # the config demands use_ids with a history
        dtype = table.weight.dtype

        def mean(ids: Tensor) -> Tensor:
            present = (ids >= 0).unsqueeze(-1).to(dtype)
            summed = (table(ids.clamp(min=0)) * present).sum(dim=1)
            return summed / present.sum(dim=1).clamp(min=1.0)

        return torch.cat([mean(liked), mean(passed), stats.to(dtype)], dim=-1)

    def like_path_names(self) -> list[str]:
        """State-dict keys of what feeds only ``like_logits``: the bias and like heads (with
        ``like_towers`` the whole like towers), the logit's scale and bias, the attention."""
        prefixes = ["like_query_tower.", "like_candidate_tower.", "attention.", "bce_"]
        if not self.config.like_towers:
            for tower in ("query_tower", "candidate_tower"):
                prefixes += [f"{tower}.bias_head.", f"{tower}.like_head."]
        return [k for k in self.state_dict() if k.startswith(tuple(prefixes))]

    def like_logits(self, query: TowerOutput, candidate: TowerOutput) -> Tensor:
        """Pointwise like-vs-pass logits of aligned (query_i, candidate_i) pairs; with
        ``like_attention`` plus the candidate's attention over the query's history items."""
        cosine = (query.like * candidate.like).sum(dim=-1)
        logits = self.bce_scale * cosine + candidate.bias + query.bias + self.bce_bias
        if self.attention is not None:
            if query.items is None or candidate.items is None:
                raise ValueError("like_attention needs the query's history and the candidate's ids")
            table = (self.like_candidate_tower or self.candidate_tower).id_embedding
            logits = logits + self.attention(table, candidate.items, query.items)
        return self._boosted(logits, query, candidate)

    def _boosted(self, logits: Tensor, query: TowerOutput, candidate: TowerOutput) -> Tensor:
        """The network's like logit blended with the like booster's, where there is one."""
        if self.booster is None:
            return logits
        if query.items is None or query.stats is None or candidate.items is None:
            raise ValueError("the like booster needs the query's history and the candidate's ids")
        items = query.items.detach().cpu().numpy()
        boost = self.booster.logits(
            candidate.items.detach().cpu().numpy(), items[:, 0], items[:, 1],
            query.stats.detach().cpu().numpy(),
        )  # fmt: skip
        weight = self.booster.weight
        return (1.0 - weight) * logits + weight * torch.from_numpy(boost).to(logits)

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
            if self.booster is not None:
                self.booster.save(tmp)
        return directory

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str = "cpu") -> M:
        model = super().from_pretrained(directory, map_location)
        if isinstance(model, TwoTowerModel) and FeatureArtifacts.present(Path(directory)):
            model.artifacts = FeatureArtifacts.load(Path(directory))
            model.artifacts.check_matches(model.config, Path(directory))
        if isinstance(model, TwoTowerModel) and LikeBooster.present(Path(directory)):
            model.booster = LikeBooster.load(Path(directory))
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

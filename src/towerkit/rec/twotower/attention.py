"""Target-aware attention over a user's swipe history for the like-vs-pass logit (DIN-style).

Zhou et al., "Deep Interest Network for Click-Through Rate Prediction" (KDD 2018): the scored
item attends over the user's past items, so what counts in the history depends on the
candidate. Here the history is two lists, the last liked and the last passed items as of the
scored moment (``history.py``), attended separately. For each list the candidate gets

- the attention-pooled item vector (softmax over scaled dot products, padding masked out),
- the max and the mean cosine similarity of the candidate to the list's items,
- whether the list is empty,

and a small MLP turns [pooled * candidate, pooled, candidate, similarities] of both lists into
one additive term of the like logit. This is what the gradient-boosted reference's item-item
similarity features carry (benchmarks/two_tower_references.py), learned end to end.

The term is target-dependent, so it cannot live in the query embedding: retrieval (dot products
of the tower embeddings, the exported query tower, ``POST /recommend``) does not use it; only
``TwoTowerModel.like_logits`` does. Items are embedded by id, either in the attention's own table
(``attention_table: own``) or in the candidate tower's id table (``shared``).

Written by hand: no maintained library ships a DIN layer for plain PyTorch modules.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEG = -1e9  # masked attention score (finite: an all-padding row must not give NaN)
N_SCALARS = 3  # per list: max cosine, mean cosine, empty


class HistoryAttention(nn.Module):
    """``forward(table, candidate_ids (n,), history_ids (n, 2, L)) -> (n,)`` logit term.

    ``history_ids[:, 0]`` are the liked, ``[:, 1]`` the passed id indices (PAD < 0 = none);
    ``table`` is the candidate tower's id embedding, used when the module has no table of its own.
    """

    def __init__(
        self,
        n_ids: int,
        dim: int,
        hidden: int,
        input_dim: int | None = None,
        init_std: float = 0.05,
        fixed: bool = False,
    ) -> None:
        super().__init__()
        own = input_dim is None
        # own table: an item-item similarity of its own, not pulled by the retrieval softmax;
        # fixed: a buffer (saved with the weights, never trained) that init_items fills
        self.items = nn.Embedding(n_ids, dim) if own and not fixed else None
        if self.items is not None:
            nn.init.normal_(self.items.weight, std=init_std)
        self.fixed_items: Tensor | None
        self.register_buffer("fixed_items", torch.zeros(n_ids, dim) if own and fixed else None)
        self.key = nn.Linear(dim if input_dim is None else input_dim, dim)
        self.dim = dim
        width = 2 * (2 * dim + N_SCALARS) + dim
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @torch.no_grad()
    def init_items(self, factors: Tensor) -> None:
        """Start the own item table from given (n_ids, dim) vectors (``item_factors``) and the
        key projection from the identity, so the first similarities are those vectors'."""
        target = self.items.weight if self.items is not None else self.fixed_items
        if target is None:
            raise ValueError("attention_init=svd needs attention_table=own")
        target.copy_(factors.to(target.dtype))
        if self.key.in_features == self.key.out_features:
            self.key.weight.copy_(torch.eye(self.dim))
            self.key.bias.zero_()

    def _embed(self, table: nn.Embedding | None, ids: Tensor) -> Tensor:
        ids = ids.clamp(min=0)
        if self.fixed_items is not None:
            return self.key(F.embedding(ids, self.fixed_items))
        source = self.items if self.items is not None else table
        if source is None:
            raise ValueError("HistoryAttention without a table of its own needs the id table")
        return self.key(source(ids))

    def features(
        self, table: nn.Embedding | None, candidate_ids: Tensor, history_ids: Tensor
    ) -> Tensor:
        """(n, 2 * (2 * dim + 3) + dim): the MLP's input (see the module docstring)."""
        candidate = self._embed(table, candidate_ids)  # (n, a)
        keys = self._embed(table, history_ids)  # (n, 2, L, a)
        present = history_ids >= 0  # (n, 2, L)
        mask = present.to(keys.dtype)
        has_any = mask.amax(dim=-1)  # (n, 2): 0 for an empty list (L >= 1: history_len > 0)
        scores = torch.einsum("nsla,na->nsl", keys, candidate) / math.sqrt(self.dim)
        weights = torch.softmax(scores.masked_fill(~present, NEG), dim=-1) * mask
        pooled = torch.einsum("nsl,nsla->nsa", weights, keys)  # (n, 2, a)
        cosine = torch.einsum(
            "nsla,na->nsl", F.normalize(keys, dim=-1), F.normalize(candidate, dim=-1)
        )
        count = mask.sum(dim=-1)
        mean_cos = (cosine * mask).sum(dim=-1) / count.clamp(min=1.0)
        max_cos = cosine.masked_fill(~present, -1.0).amax(dim=-1) * has_any
        scalars = torch.stack([max_cos, mean_cos, 1.0 - has_any], dim=-1)
        per_list = torch.cat([pooled * candidate.unsqueeze(1), pooled, scalars], dim=-1)
        return torch.cat([per_list.flatten(1), candidate], dim=-1)

    def forward(
        self, table: nn.Embedding | None, candidate_ids: Tensor, history_ids: Tensor
    ) -> Tensor:
        out: Tensor = self.mlp(self.features(table, candidate_ids, history_ids)).squeeze(-1)
        return out


def item_factors(
    item_ids: np.ndarray, user_rows: np.ndarray, labels: np.ndarray, n_ids: int, dim: int
) -> Tensor:
    """(n_ids, dim) item vectors whose cosines approximate the item-item similarity of the
    training swipes: rank-``dim`` truncated SVD of the item x user matrix with +1 for a like and
    -1 for a pass (rows U * S; the rows' mean norm scaled to 1; ids never swiped stay 0).
    scipy's sparse ``svds``: the matrix is never made dense."""
    from scipy import sparse
    from scipy.sparse.linalg import svds

    n_users = int(user_rows.max()) + 1 if len(user_rows) else 1
    signed = np.where(labels > 0, 1.0, -1.0)
    matrix = sparse.csr_matrix((signed, (item_ids, user_rows)), shape=(n_ids, n_users))
    matrix.sum_duplicates()
    k = min(dim, min(matrix.shape) - 1)
    out = np.zeros((n_ids, dim), dtype=np.float32)
    if k >= 1:
        u, s, _ = svds(matrix, k=k, random_state=0)
        vectors = u * s
        norms = np.linalg.norm(vectors, axis=1)
        scale = norms[norms > 0].mean() if (norms > 0).any() else 1.0
        out[:, :k] = vectors / scale
    return torch.from_numpy(out)

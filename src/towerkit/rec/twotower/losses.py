"""Two-tower losses: in-batch sampled softmax with logQ correction, mixed negatives, BCE.

- ``StreamingFrequency``: the streaming item-frequency estimator of Yi et al., "Sampling-Bias-
  Corrected Neural Modeling for Large Corpus Item Recommendations" (RecSys 2019, Algorithm 2 with
  several hash arrays): for every hash array, ``A[h(y)]`` is the step item y was last seen and
  ``B[h(y)]`` a moving average of the gap between sightings; the sampling probability of y is
  ``1 / max_k B_k[h_k(y)]`` (collisions shrink gaps, so the largest estimate is the least
  polluted). Its arrays are buffers, so they are checkpointed and resume exactly.
- ``sampled_softmax_loss``: each query's positive against the batch's other positives plus
  optional extra uniformly drawn candidates (mixed negative sampling, Yang et al., WWW 2020).
  Logits are cosine / temperature minus log Q, Q being the candidate's expected count in the
  sample (batch size x estimated probability for in-batch candidates, M / N for M uniform draws
  from N items). A candidate equal to the row's own positive (the same item twice in the batch,
  or drawn again uniformly) is an accidental hit and is masked out.
- ``pointwise_bce_loss``: binary cross-entropy of like (1) vs pass (0) on the pair's like logit.

Written by hand because no maintained library implements the logQ estimator or this masking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_PRIME = 2_147_483_647  # 2^31 - 1, for the universal hash family (a * y + b) mod p mod H


class StreamingFrequency(nn.Module):
    """Hashed last-seen / gap estimator of how often each item id appears in training batches."""

    last_seen: Tensor
    gap: Tensor
    step: Tensor
    hash_a: Tensor
    hash_b: Tensor

    def __init__(self, buckets: int = 65536, hashes: int = 2, alpha: float = 0.05) -> None:
        super().__init__()
        if buckets < 1 or hashes < 1 or not 0 < alpha <= 1:
            raise ValueError("StreamingFrequency: buckets, hashes >= 1 and 0 < alpha <= 1")
        self.buckets, self.alpha = buckets, alpha
        generator = torch.Generator().manual_seed(
            20190916
        )  # fixed: the hashes are part of the model
        self.register_buffer("hash_a", torch.randint(1, _PRIME, (hashes,), generator=generator))
        self.register_buffer("hash_b", torch.randint(0, _PRIME, (hashes,), generator=generator))
        self.register_buffer("last_seen", torch.zeros(hashes, buckets, dtype=torch.long))
        self.register_buffer("gap", torch.zeros(hashes, buckets, dtype=torch.float32))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def slots(self, items: Tensor) -> Tensor:
        """(hashes, n) bucket of each item under each hash function."""
        items = items.to(torch.long).unsqueeze(0)
        return (self.hash_a.unsqueeze(1) * items + self.hash_b.unsqueeze(1)) % _PRIME % self.buckets

    @torch.no_grad()
    def update(self, items: Tensor) -> None:
        """Record one training batch's items (repeats within the batch count once)."""
        self.step += 1
        t = self.step
        slots = self.slots(torch.unique(items))
        for k in range(slots.shape[0]):
            index = slots[k]
            last = self.last_seen[k, index]
            gap = (t - last).to(torch.float32)
            old = self.gap[k, index]
            # first sighting: the gap since training began is the only estimate there is
            new = torch.where(last == 0, gap, (1 - self.alpha) * old + self.alpha * gap)
            self.gap[k, index] = new
            self.last_seen[k, index] = t

    def probability(self, items: Tensor) -> Tensor:
        """Estimated probability that an item appears in a batch (1 for never-seen items)."""
        slots = self.slots(items)
        rows = torch.arange(slots.shape[0], device=slots.device).unsqueeze(1)
        gaps = self.gap[rows, slots].max(dim=0).values
        return 1.0 / gaps.clamp(min=1.0)


def sampled_softmax_loss(
    query: Tensor,
    candidates: Tensor,
    positive_items: Tensor,
    candidate_items: Tensor,
    log_q: Tensor | None,
    temperature: float,
) -> Tensor:
    """Mean cross-entropy of row i's positive (column i) against all other candidate columns.

    query (B, d) and candidates (B + M, d) are L2-normalised; the first B candidates are the
    rows' positives (``positive_items`` (B,)), ``candidate_items`` (B + M,) their item ids;
    ``log_q`` (B + M,) is subtracted from every logit (None: no correction).
    """
    batch = query.shape[0]
    logits = query @ candidates.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    hits = positive_items.unsqueeze(1) == candidate_items.unsqueeze(0)
    own = torch.arange(batch, device=query.device)
    hits[own, own] = False
    logits = logits.masked_fill(hits, float("-inf"))
    return F.cross_entropy(logits, own)


def log_q_correction(
    frequency: StreamingFrequency, in_batch_items: Tensor, n_uniform: int, n_items: int
) -> Tensor:
    """log of each candidate's expected count in the sample (in-batch first, then uniform)."""
    in_batch = torch.log(frequency.probability(in_batch_items) * in_batch_items.shape[0])
    if n_uniform == 0:
        return in_batch
    uniform = in_batch.new_full((n_uniform,), math.log(n_uniform / n_items))
    return torch.cat([in_batch, uniform])


def pointwise_bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """BCE of labels (1 like, 0 pass) on the pairs' like logits (``TwoTowerModel.like_logits``:
    scale * cosine + item bias + bias)."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

"""The Trainer's loss for two towers: sampled softmax (logQ, mixed negatives) + pointwise BCE."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from towerkit.rec.twotower.config import LossConfig
from towerkit.rec.twotower.features import SideTensors
from towerkit.rec.twotower.history import HistoryTensors
from towerkit.rec.twotower.losses import (
    log_q_correction,
    pointwise_bce_loss,
    sampled_softmax_loss,
)
from towerkit.rec.twotower.model import TwoTowerModel


def _plain(model: nn.Module) -> TwoTowerModel:
    inner = getattr(model, "module", model)  # DDP wraps the module
    assert isinstance(inner, TwoTowerModel)
    return inner


def _drop_ids(side: SideTensors, rate: float) -> SideTensors:
    """Replace a random share of ids by their hashed OOV rows (the model learns to do without)."""
    if rate <= 0:
        return side
    dropped = torch.rand(side.ids.shape, device=side.ids.device) < rate
    ids = torch.where(dropped, side.oov_ids, side.ids)
    return SideTensors(ids, side.oov_ids, side.cat, side.multi, side.num, side.text)


class TwoTowerLoss:
    """``loss(prepared_model, batch)`` for ``towerkit.core.trainer.Trainer``.

    The batch holds user rows, item rows, labels and event rows; features come from the tables,
    and a history model's per-event histories (as of each event) from ``history``, the retrieval
    embedding's from ``retrieval_history`` where given (as of a lag before each event). Softmax rows
    are the batch's likes; BCE covers every row. Uniform extra negatives are drawn from the whole
    catalogue with the global torch RNG (restored on resume).
    """

    def __init__(
        self,
        queries: SideTensors,
        candidates: SideTensors,
        config: LossConfig,
        history: HistoryTensors | None = None,
        retrieval_history: HistoryTensors | None = None,
    ) -> None:
        self.queries, self.candidates, self.config = queries, candidates, config
        self.history, self.retrieval_history = history, retrieval_history
        self.n_items = len(candidates)

    def __call__(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        config, plain = self.config, _plain(model)
        users, items, labels = batch["user_rows"], batch["item_rows"], batch["labels"]
        extra = torch.randint(0, self.n_items, (config.mixed_negatives,))
        candidate_rows = torch.cat([items, extra])
        query_in = _drop_ids(self.queries.take(users), config.id_dropout)
        candidate_in = _drop_ids(self.candidates.take(candidate_rows), config.id_dropout)
        events = batch["event_rows"]
        history = self.history.take(events).inputs() if self.history is not None else None
        older = self.retrieval_history
        retrieval_history = older.take(events).inputs() if older is not None else None
        query_out, candidate_out = model(
            query_in.inputs(), candidate_in.inputs(), history, retrieval_history
        )
        query, candidates = query_out.embedding, candidate_out.embedding
        batch_size = users.shape[0]
        total = query.new_zeros(())
        liked = labels > 0
        if config.softmax_weight > 0 and int(liked.sum()) > 0:
            like_items = items[liked]
            if plain.training:
                plain.item_frequency.update(like_items)
            pool = torch.cat([candidates[:batch_size][liked], candidates[batch_size:]])
            pool_items = torch.cat([like_items, extra])
            log_q = (
                log_q_correction(plain.item_frequency, like_items, len(extra), self.n_items)
                if config.logq_correction
                else None
            )
            softmax = sampled_softmax_loss(
                query[liked], pool, like_items, pool_items, log_q, config.temperature
            )
            total = total + config.softmax_weight * softmax
        if config.bce_weight > 0:
            logits = plain.like_logits(query_out, candidate_out.take(torch.arange(batch_size)))
            bce = pointwise_bce_loss(logits, labels)
            total = total + config.bce_weight * bce
        return total

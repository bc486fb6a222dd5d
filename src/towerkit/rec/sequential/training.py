"""What the Trainer needs for sequence models: the per-user training samples, the loss call and
the scorer that evaluation uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from towerkit.rec.sequential.data import SeqDataset, Split
from towerkit.rec.sequential.metrics import EvalResult, ItemScorer, UserScorer, evaluate_next_item
from towerkit.rec.sequential.sasrec import SASRec, score_with


class NextItemDataset(Dataset[dict[str, torch.Tensor]]):
    """Windows of users' training prefixes such that every training target is predicted exactly
    once per epoch (as in RecBole's one-sample-per-interaction epochs, at a fraction of the cost):
    a user's targets ``sequence[1:]`` are cut into blocks of ``max_len`` from the end, and each
    block is one sample. ``seq`` holds the items before each target, ``targets`` the targets
    (right-aligned, 0 = padding), ``negatives`` [max_len, N] random items outside the user's
    training items. ``windows=False``: only the last block per user (the SASRec paper's epoch).

    Negatives come from NumPy's global RNG, which the Trainer seeds per batch (SeededBatches), so
    an epoch's samples are the same after a resume."""

    def __init__(
        self, data: SeqDataset, max_len: int, num_negatives: int = 1, windows: bool = True
    ) -> None:
        self.n_items, self.max_len, self.num_negatives = data.n_items, max_len, num_negatives
        self.sequences = [data.train_sequence(u) for u in range(data.n_users)]
        samples: list[tuple[int, int]] = []
        for user, sequence in enumerate(self.sequences):
            ends = (
                range(len(sequence), 1, -max_len)
                if windows
                else range(len(sequence), 1, -len(sequence))
            )
            samples.extend((user, end) for end in ends)
        self.samples = np.array(samples, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        user, end = (int(v) for v in self.samples[index])
        sequence = self.sequences[user]
        start = max(end - self.max_len, 1)
        inputs, targets = sequence[start - 1 : end - 1], sequence[start:end]
        seq = np.zeros(self.max_len, dtype=np.int64)
        tgt = np.zeros(self.max_len, dtype=np.int64)
        seq[self.max_len - len(inputs) :] = inputs
        tgt[self.max_len - len(targets) :] = targets
        negatives = self._negatives(sequence, (self.max_len, self.num_negatives))
        negatives[tgt == 0] = 0
        return {
            "user": torch.tensor(user),
            "seq": torch.from_numpy(seq),
            "targets": torch.from_numpy(tgt),
            "negatives": torch.from_numpy(negatives),
        }

    def _negatives(self, seen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        draw = np.random.randint(1, self.n_items + 1, size=shape)
        clash = np.isin(draw, seen)
        # redraw only the clashes: a few passes, since a user sees a small share of the items
        while clash.any():
            draw[clash] = np.random.randint(1, self.n_items + 1, size=int(clash.sum()))
            clash = np.isin(draw, seen)
        return draw


def sasrec_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """loss_fn for the Trainer: the prepared model may be wrapped, so go through its module."""
    inner: Any = getattr(model, "module", model)
    loss: torch.Tensor = inner.loss(batch["seq"], batch["targets"], batch["negatives"])
    return loss


def sasrec_scorer(model: SASRec) -> UserScorer:
    """A UserScorer for evaluation: the user vector once per chunk, items in slices."""

    def prepare(users: torch.Tensor, histories: torch.Tensor) -> ItemScorer:
        device = model.item_emb.weight.device
        vectors = model.user_vector(histories.to(device))
        table = model.item_emb.weight
        return lambda items: score_with(vectors, table, items.to(device))

    return prepare


def evaluate_model(
    scorer: UserScorer,
    data: SeqDataset,
    split: Split,
    max_len: int,
    num_negatives: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> EvalResult:
    """Leave-one-out evaluation of ``split`` (valid: train prefix -> valid item; test: train
    prefix + valid item -> test item)."""
    return evaluate_next_item(
        scorer,
        data.histories(split),
        data.targets(split),
        data.n_items,
        max_len=max_len,
        num_negatives=num_negatives,
        seed=seed,
        progress=progress,
    )


def scorer_for(model: nn.Module) -> UserScorer:
    """The evaluation scorer of any sequential model: its own ``user_scorer()`` when it has one
    (fused models), SASRec's otherwise."""
    own = getattr(model, "user_scorer", None)
    if callable(own):
        scorer: UserScorer = own()
        return scorer
    if isinstance(model, SASRec):
        return sasrec_scorer(model)
    raise TypeError(f"{type(model).__name__}: no user_scorer() and not a SASRec")

"""The small models the ONNX and Core ML export tests convert (a module with its own name:
``conftest`` is ambiguous between test folders)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.2), nn.Linear(32, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(8, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).flatten(1))


class LengthsLSTM(nn.Module):
    """Classifies (batch, seq, features) by the LSTM state at each row's last real step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        steps, _ = self.lstm(x)
        last = steps[torch.arange(x.shape[0]), (lengths - 1).clamp(min=0)]
        return self.head(last)


class MaskedTransformer(nn.Module):
    """nn.TransformerEncoder with a key padding mask (True = padding), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: Tensor, padding_mask: Tensor) -> Tensor:
        hidden = self.encoder(self.embed(x), src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0))


class DataDependentBranch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def seeded(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls()


def lengths(batch: int, seq: int) -> Tensor:
    return torch.randint(1, seq + 1, (batch,))


def padding_mask(batch: int, seq: int) -> Tensor:
    return torch.arange(seq)[None, :] >= lengths(batch, seq)[:, None]

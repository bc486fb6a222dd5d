"""An LSTM over log-mel spectrograms, optionally bidirectional, for variable-length clips.

``forward(features [B, T, n_mels], lengths [B]) -> logits [B, classes]``. Padding never changes
a clip's prediction: the backward direction runs on each clip reversed *within its own length*
(a gather, not ``pack_padded_sequence``, so the dynamo ONNX exporter handles it with a dynamic
time axis), and the outputs are mean-pooled over the valid frames only.
Registered as ``audio-lstm-small`` and ``audio-lstm-base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from towerkit.core.model import BaseModel, register_model, replace_config


@dataclass
class AudioLSTMConfig:
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    # how predict turns a wav into features (same as the data pipeline's MelParams)
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    max_seconds: float = 2.0
    # per-mel-band normalisation measured on the training clips (empty: none)
    feature_mean: list[float] = field(default_factory=list)
    feature_std: list[float] = field(default_factory=list)
    hidden: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.2


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse frames ``0 .. len-1`` of every row of ``x`` [B, T, D]; padding stays in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lens = lengths.unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, T] float mask, 1 on valid frames."""
    steps = torch.arange(frames, device=lengths.device).unsqueeze(0)
    return (steps < lengths.unsqueeze(1)).float()


class AudioLSTM(BaseModel):
    config_class = AudioLSTMConfig
    config: AudioLSTMConfig
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, config: AudioLSTMConfig) -> None:
        super().__init__(config)
        n = config.n_mels
        mean = config.feature_mean or [0.0] * n
        std = config.feature_std or [1.0] * n
        if len(mean) != n or len(std) != n:
            raise ValueError(f"feature_mean/feature_std need {n} values (n_mels)")
        self.register_buffer("feature_mean", torch.tensor(mean), persistent=False)
        self.register_buffer("feature_std", torch.tensor(std), persistent=False)
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        width = n
        for _ in range(config.num_layers):
            self.forward_layers.append(nn.LSTM(width, config.hidden, batch_first=True))
            if config.bidirectional:
                self.backward_layers.append(nn.LSTM(width, config.hidden, batch_first=True))
            width = config.hidden * (2 if config.bidirectional else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, config.num_classes)

    @property
    def embedding_dim(self) -> int:
        return self.config.hidden * (2 if self.config.bidirectional else 1)

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean over valid frames of the top LSTM layer: ``[B, embedding_dim]``."""
        x = (features - self.feature_mean) / self.feature_std
        for i, forward_lstm in enumerate(self.forward_layers):
            if i > 0:
                x = self.dropout(x)
            out, _ = forward_lstm(x)
            if self.config.bidirectional:
                back, _ = self.backward_layers[i](reverse_within_lengths(x, lengths))
                out = torch.cat([out, reverse_within_lengths(back, lengths)], dim=-1)
            x = out
        mask = frame_mask(lengths, x.shape[1]).unsqueeze(-1)
        return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(features, lengths)))


@register_model("audio-lstm-small")
def audio_lstm_small(**overrides: Any) -> AudioLSTM:
    base = AudioLSTMConfig(hidden=64, num_layers=1, bidirectional=True, dropout=0.1)
    return AudioLSTM(replace_config(base, **overrides))


@register_model("audio-lstm-base")
def audio_lstm_base(**overrides: Any) -> AudioLSTM:
    base = AudioLSTMConfig(hidden=128, num_layers=2, bidirectional=True, dropout=0.2)
    return AudioLSTM(replace_config(base, **overrides))

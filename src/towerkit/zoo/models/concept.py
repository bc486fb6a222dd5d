"""The concept model: handwritten digit images, spoken digits and written digit words mapped into
one shared, L2-normalised concept space, trained contrastively (CLIP-style InfoNCE).

Three towers, each ``encoder -> linear projection -> L2 normalise``:
- image: the vision family's ``VisionCNN`` (its ``embed``), images [B, 1, H, W] in [0, 1];
- speech: the audio family's ``AudioLSTM`` (its ``embed``), log-mels [B, T, n_mels] + lengths;
- text: a small character-level encoder for words ("seven", "7", "Seven"), char ids + mask.
The encoders' own classifier layers are not used. ``logit_scale`` is the learned inverse
temperature (CLIP initialises it to log(1/0.07) and clamps it at 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.model import BaseModel, register_model, replace_config
from towerkit.zoo.models.audio import AudioLSTM, AudioLSTMConfig
from towerkit.zoo.models.text import masked_mean
from towerkit.zoo.models.vision import VisionCNN, VisionCNNConfig

MODALITIES = ("image", "speech", "text")
CHAR_VOCAB = 128  # ids 1..127: ASCII code points (lower-cased); 0 is padding
MAX_LOGIT_SCALE = 100.0


def encode_words(words: Sequence[str], max_chars: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Words -> (char_ids [B, L] int64, mask [B, L] int64); non-ASCII characters map to id 127.

    Hand-written rather than a trained tokenizer: the vocabulary is the fixed ASCII set, so
    there is nothing to learn and ONNX consumers can reproduce it in one line.
    """
    rows = [[min(ord(ch), 127) or 127 for ch in word.lower()[:max_chars]] for word in words]
    length = max(1, max((len(r) for r in rows), default=1))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


@dataclass
class CharEncoderConfig:
    embed_dim: int = 32
    hidden: int = 64
    kernel_size: int = 3


class CharWordEncoder(nn.Module):
    """Character embeddings -> two 1-D convolutions -> mean over real characters."""

    def __init__(self, config: CharEncoderConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CHAR_VOCAB, config.embed_dim, padding_idx=0)
        pad = config.kernel_size // 2
        self.conv1 = nn.Conv1d(config.embed_dim, config.hidden, config.kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(config.hidden, config.hidden, config.kernel_size, padding=pad)
        self.embedding_dim = config.hidden

    def forward(self, char_ids: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        keep = char_mask.to(torch.float32).unsqueeze(1)  # [B, 1, L]
        # zero padded positions before every convolution so padding never leaks into real ones
        x = self.embedding(char_ids).transpose(1, 2) * keep
        x = F.gelu(self.conv1(x)) * keep
        x = F.gelu(self.conv2(x)) * keep
        return masked_mean(x.transpose(1, 2), char_mask)


class ImageTower(nn.Module):
    def __init__(self, encoder: VisionCNN, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.embedding_dim, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.encoder.embed(images)), dim=-1)


class SpeechTower(nn.Module):
    def __init__(self, encoder: AudioLSTM, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.embedding_dim, dim)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.encoder.embed(features, lengths)), dim=-1)


class TextTower(nn.Module):
    def __init__(self, encoder: CharWordEncoder, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.embedding_dim, dim)

    def forward(self, char_ids: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.encoder(char_ids, char_mask)), dim=-1)


def _default_words() -> dict[str, list[str]]:
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return {
        str(d): [name, str(d), f"the number {name}", f"digit {d}"] for d, name in enumerate(names)
    }


@dataclass
class ConceptConfig:
    dim: int = 64
    class_names: list[str] = field(default_factory=lambda: [str(d) for d in range(10)])
    # the written forms of each class; the first is the canonical word used for zero-shot
    words: dict[str, list[str]] = field(default_factory=_default_words)
    init_temperature: float = 0.07
    max_chars: int = 24
    vision: VisionCNNConfig = field(default_factory=VisionCNNConfig)
    audio: AudioLSTMConfig = field(default_factory=AudioLSTMConfig)
    text: CharEncoderConfig = field(default_factory=CharEncoderConfig)


class ConceptModel(BaseModel):
    config_class = ConceptConfig
    config: ConceptConfig

    def __init__(self, config: ConceptConfig) -> None:
        super().__init__(config)
        self.image_tower = ImageTower(VisionCNN(config.vision), config.dim)
        self.speech_tower = SpeechTower(AudioLSTM(config.audio), config.dim)
        self.text_tower = TextTower(CharWordEncoder(config.text), config.dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_tower(images)

    def embed_speech(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.speech_tower(features, lengths)

    def embed_words(self, words: Sequence[str]) -> torch.Tensor:
        return self.text_tower(*encode_words(words, self.config.max_chars))

    def forward(
        self,
        images: torch.Tensor,
        features: torch.Tensor,
        lengths: torch.Tensor,
        char_ids: torch.Tensor,
        char_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image, speech, text) concept vectors, each [B, dim], and the logit scale (a scalar;
        returned from forward so a DDP-wrapped model still syncs its gradient)."""
        return (
            self.image_tower(images),
            self.speech_tower(features, lengths),
            self.text_tower(char_ids, char_mask),
            self.scale(),
        )

    def canonical_words(self) -> list[str]:
        return [self.config.words[name][0] for name in self.config.class_names]


def info_nce(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): cross-entropy of ``scale * a @ b.T`` along rows and columns.

    Without ``labels`` row i's positive is column i. With ``labels`` every pair of the same class
    is a positive and the target is uniform over them, so two "sevens" in one batch are never
    pushed apart as false negatives. ``a`` and ``b`` are expected L2-normalised.
    """
    logits = logit_scale * a @ b.T
    if labels is None:
        targets = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    same = (labels.unsqueeze(1) == labels.unsqueeze(0)).to(logits.dtype)
    rows = same / same.sum(dim=1, keepdim=True)
    cols = same.T / same.T.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, rows) + F.cross_entropy(logits.T, cols)) / 2


@register_model("concept-digits")
def concept_digits(**overrides: Any) -> ConceptModel:
    """Small towers sized for 28x28 digits, 8 kHz speech and short words."""
    base = ConceptConfig(
        vision=VisionCNNConfig(widths=[16, 32, 64], hidden=64, dropout=0.2),
        audio=AudioLSTMConfig(hidden=64, num_layers=1, bidirectional=True, dropout=0.1),
    )
    return ConceptModel(replace_config(base, **overrides))

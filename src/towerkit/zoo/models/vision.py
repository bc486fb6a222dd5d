"""A small CNN for grayscale images: conv blocks (conv + batch norm + ReLU) with max pooling.

Registered sizes: ``vision-cnn-small`` and ``vision-cnn-base`` (``create_model(name, **overrides)``).
The model takes images in [0, 1] shaped ``[B, C, H, W]`` and normalises them itself, so a saved
model directory is all ``predict`` needs (its config holds image size, mean/std and class names).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from towerkit.core.model import BaseModel, register_model, replace_config


@dataclass
class VisionCNNConfig:
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    in_channels: int = 1
    image_size: int = 28
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    convs_per_block: int = 1
    hidden: int = 128  # width of the fully connected layer before the classifier (0: none)
    dropout: float = 0.3
    mean: float = 0.5  # pixel normalisation, set from the training images by the recipe
    std: float = 0.5


def _conv_block(in_ch: int, out_ch: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VisionCNN(BaseModel):
    """conv blocks -> flatten -> [dropout, linear, ReLU] (if hidden) -> dropout -> linear logits."""

    config_class = VisionCNNConfig
    config: VisionCNNConfig
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, config: VisionCNNConfig) -> None:
        super().__init__(config)
        if config.image_size < 2 ** len(config.widths):
            raise ValueError(
                f"image_size {config.image_size} too small for {len(config.widths)} pooling blocks"
            )
        channels = [config.in_channels, *config.widths]
        self.blocks = nn.Sequential(
            *(_conv_block(a, b, config.convs_per_block) for a, b in itertools.pairwise(channels))
        )
        self.embed_head: nn.Module = nn.Flatten()
        if config.hidden > 0:
            self.embed_head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(config.dropout),
                nn.Linear(self._flat_size(), config.hidden),
                nn.ReLU(inplace=True),
            )
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(self.embedding_dim, config.num_classes)
        )
        # channels-last conv weights: oneDNN then skips a layout reorder per call (~1.5x faster
        # training on CPU); saving makes them contiguous again, loading copies into this layout
        self.blocks.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
        self.register_buffer("pixel_mean", torch.tensor(config.mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.std), persistent=False)

    def _flat_size(self) -> int:
        side = self.config.image_size // 2 ** len(self.config.widths)
        return self.config.widths[-1] * side * side

    @property
    def embedding_dim(self) -> int:
        """Size of ``embed``'s output (the concept model builds on it)."""
        return self.config.hidden if self.config.hidden > 0 else self._flat_size()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, embedding_dim]`` of images in [0, 1]."""
        x = ((images - self.pixel_mean) / self.pixel_std).contiguous(
            memory_format=torch.channels_last
        )
        return self.embed_head(self.blocks(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(images))


@register_model("vision-cnn-small")
def vision_cnn_small(**overrides: Any) -> VisionCNN:
    base = VisionCNNConfig(widths=[16, 32, 64], hidden=64, dropout=0.2)
    return VisionCNN(replace_config(base, **overrides))


@register_model("vision-cnn-base")
def vision_cnn_base(**overrides: Any) -> VisionCNN:
    base = VisionCNNConfig(widths=[32, 64, 128], hidden=128, dropout=0.3)
    return VisionCNN(replace_config(base, **overrides))

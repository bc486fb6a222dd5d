"""The dual-tower forecaster.

- time tower: an LSTM or a Transformer encoder over the scaled multivariate look-back window,
  projected to ``hidden`` (128) dimensions;
- text tower: a small MLP over the frozen sentence-encoder embeddings of the window's two texts
  (trends and profile), computed once and cached (see ``towerkit.forecast.text``);
- fusion: concat(time, text, look-back statistics) -> MLP -> for each of ``horizon`` months and
  ``n_targets`` targets, the quantiles (p10, p50, p90 by default), non-crossing by construction
  (the median plus softplus gaps); the median is an offset from a base forecast: the last
  observed value (``base="last"``) or statsforecast's Theta forecast of the window
  (``base="theta"``, see ``towerkit.forecast.theta``), which is then also an input of the fusion,
  or the median of Theta's, AutoETS's and Naive's forecasts (``base="comb"``, see
  ``towerkit.forecast.comb``), whose members are all inputs of the fusion.

``use_text=False`` is the no-text ablation: the same model without the text tower;
``members=K`` a seed ensemble of K such models; ``per_target`` one such network per target.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from towerkit.core.config import check_ranges
from towerkit.core.errors import ConfigError
from towerkit.core.model import BaseModel, register_model

BaseKind = Literal["last", "theta", "comb"]
# the comb's members: its base is (B, H, T, 1 + members), the comb first, then each member
COMB_MEMBERS = ("Theta", "AutoETS", "Naive")


@dataclass
class DualTowerConfig:
    n_inputs: int = 21  # per-month features of the look-back window
    n_static: int = 36  # look-back statistics (mean and log std of each series)
    lookback: int = 24
    horizon: int = 3
    n_targets: int = 6
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    encoder: Literal["lstm", "transformer"] = "lstm"
    hidden: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.1
    use_text: bool = True
    text_dim: int = 768  # two 384-d MiniLM embeddings
    text_hidden: int = 64
    fusion_hidden: int = 256
    # positions of the targets among the inputs: the median is an offset from their last value
    # (in scaled space), so the network starts at the naive forecast and learns the change
    target_inputs: list[int] = field(default_factory=list)
    # theta / comb: the median is (scaled) Theta / the comb + offset, and it (and the comb's
    # members) are inputs of the fusion MLP; base_weight w < 1 anchors on
    # w * base + (1 - w) * last value instead
    base: BaseKind = "last"
    base_weight: float = 1.0
    # >1: a seed ensemble, ``members`` such models (trained apart, with their own seeds) whose
    # quantiles are averaged; the mean of non-crossing quantiles is non-crossing
    members: int = 1
    # one network per target (each reads every input, its own heads and weights), trained
    # side by side: the targets stop competing for one network's capacity
    per_target: bool = False
    # (H, T): how far the outermost quantiles move out (in; when negative) for each horizon
    # month and target, in scaled units: split-conformal calibration of the band on validation
    # windows (towerkit.forecast.calibration); None: the band as trained
    interval_shift: list[list[float]] | None = None
    # (H, T): where set, the upper end moves by this and ``interval_shift`` moves only the lower
    # end (each end calibrated on its own side's misses)
    interval_shift_upper: list[list[float]] | None = None
    # "YYYY-MM": the last month any training window's target reached (the refit's, when there
    # is one); windows from this cutoff on are unseen, which recalibration needs to know
    trained_through: str | None = None

    def __post_init__(self) -> None:
        check_model_ranges(self)
        if self.members < 1:
            raise ConfigError(f"model: members: expected >= 1, got {self.members}")
        if self.base not in ("last", "theta", "comb"):
            raise ConfigError(f"model: base: expected 'last', 'theta' or 'comb', got {self.base!r}")
        if not 0.0 <= self.base_weight <= 1.0:
            raise ConfigError(f"model: base_weight: expected 0..1, got {self.base_weight}")
        if self.per_target and len(self.target_inputs) != self.n_targets:
            raise ConfigError("model: per_target needs target_inputs, one per target")
        if self.base != "last" and not self.target_inputs:
            raise ConfigError(f"model: base {self.base!r} needs target_inputs (the last values)")
        if sorted(self.quantiles) != self.quantiles or 0.5 not in self.quantiles:
            raise ConfigError("model: quantiles: expected increasing levels that include 0.5")
        if self.encoder == "transformer" and self.hidden % self.heads:
            raise ConfigError("model: hidden must be a multiple of heads for the transformer")
        shape = (self.horizon, self.n_targets)
        for name in ("interval_shift", "interval_shift_upper"):
            value = getattr(self, name)
            if value is not None and (np.shape(value) != shape or len(self.quantiles) < 3):
                raise ConfigError(
                    f"model: {name}: expected {shape} values (horizon, targets) and "
                    "quantiles around the median"
                )
        if self.interval_shift_upper is not None and self.interval_shift is None:
            raise ConfigError("model: interval_shift_upper needs interval_shift (the lower end's)")


def check_model_ranges(section: Any) -> None:
    """The sizes and dropout of a model section (this config's, or the recipe's when it loads,
    before a run directory is made)."""
    check_ranges(
        "model", section, positive=["hidden", "layers", "heads"], probabilities=["dropout"]
    )


class TimeTower(nn.Module):
    def __init__(self, config: DualTowerConfig) -> None:
        super().__init__()
        self.kind = config.encoder
        self.inp = nn.Linear(config.n_inputs, config.hidden)
        if config.encoder == "lstm":
            self.lstm = nn.LSTM(config.hidden, config.hidden, config.layers, batch_first=True)
        else:
            self.position = nn.Parameter(torch.zeros(1, config.lookback, config.hidden))
            layer = nn.TransformerEncoderLayer(
                config.hidden, config.heads, 2 * config.hidden, config.dropout, batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = nn.Linear(config.hidden, config.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        if self.kind == "lstm":
            h, _ = self.lstm(h)
            last = h[:, -1]
        else:
            last = self.encoder(h + self.position[:, -h.shape[1] :])[:, -1]
        return torch.tanh(self.out(last))


class DualTowerForecaster(BaseModel):
    config_class = DualTowerConfig
    config: DualTowerConfig

    def __init__(self, config: DualTowerConfig) -> None:
        super().__init__(config)
        c = config
        if c.members > 1:  # the band's shifts apply once, to the members' mean
            single = replace(c, members=1, interval_shift=None, interval_shift_upper=None)
            self.members = nn.ModuleList(DualTowerForecaster(single) for _ in range(c.members))
            return
        if c.per_target and c.n_targets > 1:
            self.targets = nn.ModuleList(
                DualTowerForecaster(
                    replace(
                        c,
                        n_targets=1,
                        target_inputs=[k],
                        per_target=False,
                        interval_shift=None,
                        interval_shift_upper=None,
                    )
                )
                for k in c.target_inputs
            )
            return
        self.time_tower = TimeTower(c)
        fused = c.hidden + c.n_static
        if c.base != "last":  # each channel and its difference from the last value
            fused += 2 * c.horizon * c.n_targets * self.base_channels
        if c.use_text:
            self.text_tower = nn.Sequential(
                nn.Linear(c.text_dim, c.text_hidden), nn.GELU(), nn.Dropout(c.dropout)
            )
            fused += c.text_hidden
        self.fusion = nn.Sequential(
            nn.Linear(fused, c.fusion_hidden),
            nn.GELU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.fusion_hidden, c.fusion_hidden),
            nn.GELU(),
        )
        self.head = nn.Linear(c.fusion_hidden, c.horizon * c.n_targets * len(c.quantiles))

    @property
    def base_channels(self) -> int:
        return 1 + len(COMB_MEMBERS) if self.config.base == "comb" else 1

    def forward(
        self,
        x: torch.Tensor,
        static: torch.Tensor,
        text: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, L, n_inputs), (B, n_static), (B, text_dim), scaled base forecasts ((B, H, T)
        Theta, or (B, H, T, 1 + members) comb and members) -> quantiles (B, H, T, Q), scaled."""
        out = self._quantiles(x, static, text, base)
        if self.config.interval_shift is None:
            return out
        upper = self.config.interval_shift_upper or self.config.interval_shift
        down = torch.tensor(self.config.interval_shift, dtype=out.dtype, device=out.device)
        up = torch.tensor(upper, dtype=out.dtype, device=out.device)
        # the outermost quantiles move; none crosses its neighbour, so the band stays ordered
        low = torch.minimum(out[..., 0] - down, out[..., 1])
        high = torch.maximum(out[..., -1] + up, out[..., -2])
        return torch.cat([low[..., None], out[..., 1:-1], high[..., None]], dim=-1)

    def _quantiles(
        self,
        x: torch.Tensor,
        static: torch.Tensor,
        text: torch.Tensor | None,
        base: torch.Tensor | None,
    ) -> torch.Tensor:
        c = self.config
        if c.members > 1:
            return torch.stack([m(x, static, text, base) for m in self.members]).mean(0)
        if c.per_target and c.n_targets > 1:
            outputs = [
                net(x, static, text, None if base is None else base[:, :, k : k + 1])
                for k, net in enumerate(self.targets)
            ]
            return torch.cat(outputs, dim=2)
        parts = [self.time_tower(x), static]
        anchor = x[:, -1, c.target_inputs][:, None, :] if c.target_inputs else None
        if c.base != "last":
            if base is None or anchor is None:
                raise ValueError(f"this model forecasts around {c.base}: pass the base")
            channels = base if c.base == "comb" else base[..., None]
            if channels.shape[-1] != self.base_channels:
                raise ValueError(f"base: expected {self.base_channels} channels")
            parts += [channels.flatten(1), (channels - anchor[..., None]).flatten(1)]
            anchor = c.base_weight * channels[..., 0] + (1.0 - c.base_weight) * anchor
        if c.use_text:
            if text is None:
                raise ValueError("this model has a text tower: pass the text embeddings")
            parts.append(self.text_tower(text))
        raw = self.head(self.fusion(torch.cat(parts, dim=1)))
        raw = raw.view(-1, c.horizon, c.n_targets, len(c.quantiles))
        mid = c.quantiles.index(0.5)
        median = raw[..., mid : mid + 1]
        if anchor is not None:
            median = median + anchor[..., None]
        below = F.softplus(raw[..., :mid]).flip(-1).cumsum(-1).flip(-1)
        above = F.softplus(raw[..., mid + 1 :]).cumsum(-1)
        return torch.cat([median - below, median, median + above], dim=-1)


def pinball(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, quantiles: list[float]
) -> torch.Tensor:
    """Mean pinball loss over known targets; pred (B, H, T, Q), target and mask (B, H, T)."""
    levels = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    diff = target.unsqueeze(-1) - pred
    loss = torch.maximum(levels * diff, (levels - 1) * diff).mean(-1)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


@register_model("forecast-dualtower-lstm")
def dualtower_lstm(**overrides: Any) -> DualTowerForecaster:
    return DualTowerForecaster(DualTowerConfig(**{"encoder": "lstm", **overrides}))


@register_model("forecast-dualtower-transformer")
def dualtower_transformer(**overrides: Any) -> DualTowerForecaster:
    return DualTowerForecaster(DualTowerConfig(**{"encoder": "transformer", **overrides}))

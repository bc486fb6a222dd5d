"""The two-tower recipe's typed config (configs/rec/two-tower-*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from towerkit.core.errors import ConfigError
from towerkit.core.schedules import StageConfig, TrainerConfig
from towerkit.rec.twotower.baselines import BaselineConfig
from towerkit.rec.twotower.booster import BoosterConfig
from towerkit.rec.twotower.data import SplitConfig
from towerkit.rec.twotower.prepare import FeatureConfig

REGISTRY_NAME = "rec-two-tower"


@dataclass
class DataConfig:
    path: str | None = None  # a folder written by `towerkit rec export`
    db: str | None = None  # a store URL: exported into the run directory first


@dataclass
class LossConfig:
    temperature: float = 0.05
    logq_correction: bool = True
    mixed_negatives: int = 0  # extra uniformly drawn candidates per batch
    softmax_weight: float = 1.0
    bce_weight: float = 0.5  # pointwise like-vs-pass loss on every interaction
    id_dropout: float = 0.1  # share of ids replaced by their hashed OOV row (cold-start practice)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"loss: temperature: expected > 0, got {self.temperature}")
        if self.mixed_negatives < 0:
            raise ConfigError("loss: mixed_negatives: expected >= 0")
        if (
            self.softmax_weight < 0
            or self.bce_weight < 0
            or self.softmax_weight + self.bce_weight == 0
        ):
            raise ConfigError("loss: softmax_weight and bce_weight: expected >= 0, not both 0")
        if not 0 <= self.id_dropout < 1:
            raise ConfigError("loss: id_dropout: expected 0 <= value < 1")


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10, 20, 50, 100])
    headline: str = "recall@50"  # promotion compares test_<headline>

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ConfigError("eval: ks: expected cut-offs >= 1")


@dataclass
class LikeSelectionConfig:
    """``metric``: a validation metric (``auc``) whose best evaluation the like-vs-pass path's
    weights come from, apart from the trainer's early-stopping metric, which the retrieval path
    follows (``selection.py``); None: the like path follows it too."""

    metric: str | None = None
    mode: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ConfigError(f"like_selection: mode: expected max or min, got {self.mode!r}")


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        stages=[StageConfig(epochs=10, lr=3e-3, weight_decay=1e-5)],
        batch_size=512,
        early_stopping_metric="recall@50",
        early_stopping_patience=3,
    )


@dataclass
class TwoTowerRecipe:
    recipe: str = "two-tower-quick"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    arch: str = "two-tower-small"
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the arch's config
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=_default_trainer)
    eval: EvalConfig = field(default_factory=EvalConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    like_selection: LikeSelectionConfig = field(default_factory=LikeSelectionConfig)
    # gradient-boosted trees on as-of swipe statistics, fitted after the network and blended
    # into its like logit (booster.py); retrieval does not read it
    booster: BoosterConfig = field(default_factory=BoosterConfig)
    # true: after early stopping on validation, train again from scratch on train + validation
    # for the step counts validation chose, and test that model (refit.py); the baselines are
    # fitted on train + validation too
    refit: bool = False

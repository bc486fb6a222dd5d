"""Next-item evaluation (full and sampled ranking) and paired bootstrap intervals."""

from towerkit.rec.sequential.metrics.bootstrap import PairedBootstrap, paired_bootstrap
from towerkit.rec.sequential.metrics.evaluate import (
    DEFAULT_KS,
    EvalResult,
    ItemScorer,
    UserScorer,
    evaluate_next_item,
    metrics_from_ranks,
)

__all__ = [
    "DEFAULT_KS",
    "EvalResult",
    "ItemScorer",
    "PairedBootstrap",
    "UserScorer",
    "evaluate_next_item",
    "metrics_from_ranks",
    "paired_bootstrap",
]

"""Evaluation metrics shared by every domain: classification, ranking and forecasting.

Inputs are numpy arrays or torch tensors; results are plain Python floats or dicts of floats.
"""

from towerkit.core.metrics.classification import (
    accuracy,
    classification_report,
    macro_f1,
    roc_auc,
)
from towerkit.core.metrics.forecasting import (
    batched_forecast_metrics,
    forecast_metrics,
    mae,
    mase,
    pinball_loss,
    rmse,
    smape,
)
from towerkit.core.metrics.ranking import (
    CandidateScoreFn,
    FullScoreFn,
    candidates_from_full_scores,
    embedding_candidate_score_fn,
    embedding_score_fn,
    full_ranking_metrics,
    leave_one_out_metrics,
    sample_negatives,
    sampled_ranking_metrics,
    score_matrix_metrics,
)

__all__ = [
    "CandidateScoreFn",
    "FullScoreFn",
    "accuracy",
    "batched_forecast_metrics",
    "candidates_from_full_scores",
    "classification_report",
    "embedding_candidate_score_fn",
    "embedding_score_fn",
    "forecast_metrics",
    "full_ranking_metrics",
    "leave_one_out_metrics",
    "macro_f1",
    "mae",
    "mase",
    "pinball_loss",
    "rmse",
    "roc_auc",
    "sample_negatives",
    "sampled_ranking_metrics",
    "score_matrix_metrics",
    "smape",
]

"""AUC references for the two-tower benchmark: how far like-vs-pass goes on this time split
without the two-tower model, from the same interactions and cutoffs (a run's split.json).

- ``rates``: logit(movie's training like rate) + logit(the user's like rate over everything they
  swiped strictly before the scored one), both shrunk to the training mean by 5 pseudo-swipes.
- ``gbm``: scikit-learn's HistGradientBoostingClassifier (fixed settings, not tuned) on 12
  as-of features, fitted on the validation events and scored on the test events: the movie's
  training count and like rate, the user's count and like rate so far, and the mean and max
  cosine similarity (two item-item similarities from the training split: like = +1 / pass = -1
  vectors over users, and who-swiped-at-all vectors) between the movie and the user's last 50
  likes, and their last 50 passes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_references.py RUN_DIR
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SHRINK = 5.0


def _frames(
    data: Any, run_dir: Path
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(all, train, val, test) with y (1 like), integer user / item and t (microseconds)."""
    cut = json.loads((run_dir / "split.json").read_text())
    at = pl.col("created_at")
    frame = data.interactions.with_columns(
        y=pl.col("action").is_in(["like", "match"]).cast(pl.Float64),
        user=pl.col("viewer_id").cast(pl.Categorical).to_physical().cast(pl.Int64),
        item=pl.col("target_id").cast(pl.Categorical).to_physical().cast(pl.Int64),
        t=at.dt.epoch("us"),
    )
    val_start = dt.datetime.fromisoformat(cut["val_start"])
    test_start = dt.datetime.fromisoformat(cut["test_start"])
    train = frame.filter(at < val_start)
    val = frame.filter((at >= val_start) & (at < test_start))
    return frame, train, val, frame.filter(at >= test_start)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _item_stats(train: pl.DataFrame, events: pl.DataFrame, mean: float) -> np.ndarray:
    """(n, 2): log1p(training count) and the shrunk training like rate of each event's movie."""
    rates = train.group_by("item").agg(n=pl.len(), s=pl.col("y").sum())
    joined = events.join(rates, on="item", how="left").with_columns(
        pl.col("n").fill_null(0), pl.col("s").fill_null(0)
    )
    rate = (joined["s"].to_numpy() + SHRINK * mean) / (joined["n"].to_numpy() + SHRINK)
    return np.stack([np.log1p(joined["n"].to_numpy()), rate], axis=1)


def _histories(frame: pl.DataFrame, events: pl.DataFrame, history_len: int, mean: float) -> Any:
    from towerkit.rec.twotower.history import history_as_of

    return history_as_of(
        frame["user"].to_numpy(), frame["item"].to_numpy(), frame["y"].to_numpy(),
        frame["t"].to_numpy(), events["user"].to_numpy(), events["t"].to_numpy(),
        history_len, mean,
    )  # fmt: skip


def rates_auc(data: Any, run_dir: Path) -> float:
    from towerkit.core.metrics import roc_auc

    frame, train, _, test = _frames(data, run_dir)
    mean = float(train["y"].mean())
    item = _item_stats(train, test, mean)[:, 1]
    user = _histories(frame, test, 0, mean).stats[:, 1].numpy()
    return roc_auc(test["y"].cast(pl.Int64).to_numpy(), _logit(item) + _logit(user))


def _similarities(train: pl.DataFrame, n_items: int, n_users: int) -> list[np.ndarray]:
    from scipy import sparse

    items, users = train["item"].to_numpy(), train["user"].to_numpy()
    signed = np.where(train["y"].to_numpy() > 0, 1.0, -1.0)
    out = []
    for values in (signed, np.ones(len(items))):
        matrix = sparse.csr_matrix((values, (items, users)), shape=(n_items, n_users))
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()) + 1e-9
        cosine = (matrix @ matrix.T).toarray() / norms[:, None] / norms[None, :]
        np.fill_diagonal(cosine, 0.0)
        out.append(cosine)
    return out


def _features(
    frame: pl.DataFrame, train: pl.DataFrame, events: pl.DataFrame, sims: list[np.ndarray]
) -> np.ndarray:
    mean = float(train["y"].mean())
    history = _histories(frame, events, 50, mean)
    stats = history.stats.numpy()
    columns = [_item_stats(train, events, mean), stats]
    item = events["item"].to_numpy()
    for sim in sims:
        for rows in (history.liked.numpy(), history.passed.numpy()):
            present = rows >= 0
            values = sim[item[:, None], np.where(present, rows, 0)] * present
            count = present.sum(axis=1)
            mean_sim = np.where(count > 0, values.sum(axis=1) / np.maximum(count, 1), 0.0)
            max_sim = np.where(count > 0, np.where(present, values, -1.0).max(axis=1), 0.0)
            columns.append(np.stack([mean_sim, max_sim], axis=1))
    return np.concatenate(columns, axis=1)


def gbm_auc(data: Any, run_dir: Path) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from towerkit.core.metrics import roc_auc

    frame, train, val, test = _frames(data, run_dir)
    sims = _similarities(train, int(frame["item"].max()) + 1, int(frame["user"].max()) + 1)
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_depth=4, random_state=0
    )
    model.fit(_features(frame, train, val, sims), val["y"].to_numpy())
    scores = model.predict_proba(_features(frame, train, test, sims))[:, 1]
    return roc_auc(test["y"].cast(pl.Int64).to_numpy(), scores)


def main() -> None:
    from towerkit.rec.twotower.sources import movielens_data

    run_dir = Path(sys.argv[1])
    data = movielens_data()
    print(f"rates AUC {rates_auc(data, run_dir):.4f}, gbm AUC {gbm_auc(data, run_dir):.4f}")


if __name__ == "__main__":
    main()

"""From the prepared table to model inputs: splits, windows, text embeddings, torch datasets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from towerkit.core.asset_sources import resolve_local_path
from towerkit.core.config import check_ranges
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.paths import towerkit_home
from towerkit.forecast.comb import comb_channels
from towerkit.forecast.dataset import TARGETS, Panel, build_table, read_panel, write_table
from towerkit.forecast.model import BaseKind
from towerkit.forecast.text import EmbeddingCache, TextMode, window_texts
from towerkit.forecast.theta import theta_forecasts
from towerkit.forecast.windows import (
    Scaling,
    Splits,
    WindowArrays,
    attach_base,
    build_windows,
    make_splits,
    window_index,
)


@dataclass
class ForecastDataConfig:
    corpus: str = "../shared/data/opendigger"  # owner/repo/<metric>.json, or a fetch cache
    table: str = ""  # the prepared Parquet table; "" = one per corpus under TOWERKIT_HOME/forecast/
    repos_limit: int = 0  # >0: the first N repositories by name (quick runs)
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    lookback: int = 24
    horizon: int = 3
    min_history: int = 13  # months up to a cutoff before a repository is forecast from it
    n_val_cutoffs: int = 6
    n_test_cutoffs: int = 12
    train_stride: int = 1  # >1: every k-th training cutoff (quick runs)
    scaling: Scaling = "log"  # log: log1p + standardise; naive / mase: centre / mean abs change
    # each look-back month also carries the median change of each target across all
    # repositories that month (the whole panel's trend, known at every cutoff)
    panel_context: bool = False
    # >0: a training window weighs 0.5 ** (months before the latest training cutoff / this) in
    # the loss (recent windows count more when the series' behaviour drifts); 0: all alike
    recency_halflife: float = 0.0

    def __post_init__(self) -> None:
        counts = ["lookback", "horizon", "min_history", "n_val_cutoffs", "n_test_cutoffs"]
        check_ranges(
            "data",
            self,
            positive=[*counts, "train_stride"],
            non_negative=["repos_limit", "recency_halflife"],
        )
        if not self.targets:
            raise ConfigError("data: targets: expected at least one target metric")


def table_path(config: ForecastDataConfig) -> Path:
    """``data.table``, or one table per corpus folder under TOWERKIT_HOME/forecast/: a table
    prepared from another corpus (a fetch cache) is never read in place of this one's."""
    if config.table:
        return resolve_local_path(config.table)
    root = resolve_local_path(config.corpus)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return towerkit_home() / "forecast" / f"opendigger-{root.name}-{digest}.parquet"


def theta_cache_dir(config: ForecastDataConfig) -> Path:
    return table_path(config).parent / "theta"


def prepare_table(config: ForecastDataConfig, progress: bool = True) -> tuple[Path, str]:
    """Read the corpus folder into the Parquet table; returns its path and the load summary."""
    from towerkit.forecast.client import read_repo_list

    root = resolve_local_path(config.corpus)
    if not root.is_dir():
        raise TowerkitError(f"data.corpus: {root} is not a folder (fetch it or point at ../shared)")
    table, report = build_table(root, read_repo_list(root), progress=progress)
    path = write_table(table, report, table_path(config))
    return path, report.summary()


def corpus_changed_since(config: ForecastDataConfig, table: Path) -> bool:
    """A metric file of the corpus is newer than its prepared table (``fetch`` ran again), so
    the table would be stale. A corpus folder that is gone leaves the table as it is."""
    root = resolve_local_path(config.corpus)
    if not root.is_dir():
        return False
    made = table.stat().st_mtime
    return any(f.stat().st_mtime > made for f in root.rglob("*.json"))


@dataclass
class SplitWindows:
    arrays: WindowArrays
    text: np.ndarray  # (N, 2 * encoder dim)


@dataclass
class ForecastData:
    panel: Panel
    splits: Splits
    train: SplitWindows
    val: SplitWindows
    target_idx: list[int]
    table: Path
    embeddings: EmbeddingCache

    def windows(self, cutoffs: list[int], progress: bool = False) -> WindowArrays:
        """Windows at these cutoffs, scaled the way the training windows were."""
        return split_windows(self.panel, cutoffs, self.config, self.target_idx, self.base, progress)

    config: ForecastDataConfig = field(default_factory=ForecastDataConfig)
    base: BaseKind = "last"  # theta / comb: every window also carries its scaled base

    def text_for(
        self, pairs: np.ndarray, mode: TextMode = "real", progress: bool = True
    ) -> np.ndarray:
        trends, profiles = window_texts(self.panel, pairs, mode)
        vectors = self.embeddings.embed([*trends, *profiles], progress=progress)
        return np.concatenate([vectors[: len(pairs)], vectors[len(pairs) :]], axis=1)

    def test(self, mode: TextMode = "real", progress: bool = True) -> SplitWindows:
        arrays = self.windows(self.splits.test, progress)
        return SplitWindows(arrays, self.text_for(arrays.pairs, mode, progress))

    @property
    def description(self) -> str:
        p = self.panel
        s = self.splits
        return (
            f"OpenDigger, {len(p.repos)} repositories, {p.label(0)}..{p.label(p.end)}; "
            f"{len(self.train.arrays.pairs)} training windows (targets by {p.label(s.val[0])}), "
            f"{len(self.val.arrays.pairs)} validation windows (cutoffs {p.label(s.val[0])}.."
            f"{p.label(s.val[-1])}), test cutoffs {p.label(s.test[0])}..{p.label(s.test[-1])}"
        )


def split_windows(
    panel: Panel,
    cutoffs: list[int],
    config: ForecastDataConfig,
    target_idx: list[int],
    base: BaseKind = "last",
    progress: bool = False,
) -> WindowArrays:
    pairs = window_index(panel, cutoffs, config.min_history, config.horizon)
    return pair_windows(panel, pairs, config, target_idx, base, progress)


def pair_windows(
    panel: Panel,
    pairs: np.ndarray,
    config: ForecastDataConfig,
    target_idx: list[int],
    base: BaseKind = "last",
    progress: bool = False,
) -> WindowArrays:
    """The windows of these (repo, cutoff) pairs, with their Theta or comb base if ``base``
    asks (``progress``: a bar while the comb's slow members are computed)."""
    c = config
    arrays = build_windows(
        panel, pairs, c.lookback, c.horizon, target_idx, c.scaling, c.panel_context
    )
    if base == "theta" and len(pairs):
        theta = theta_forecasts(panel, pairs, target_idx, c.horizon, theta_cache_dir(c))
        attach_base(arrays, theta, target_idx)
    elif base == "comb" and len(pairs):
        channels = comb_channels(panel, pairs, target_idx, c.horizon, theta_cache_dir(c), progress)
        attach_base(arrays, channels, target_idx)
    return arrays


def text_for(
    panel: Panel,
    cache: EmbeddingCache,
    pairs: np.ndarray,
    mode: TextMode = "real",
    progress: bool = True,
) -> np.ndarray:
    """(N, 2 * dim): the embeddings of each window's trend text and profile text side by side."""
    if len(pairs) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    trends, profiles = window_texts(panel, pairs, mode)
    vectors = cache.embed([*trends, *profiles], progress=progress)
    return np.concatenate([vectors[: len(pairs)], vectors[len(pairs) :]], axis=1)


def load_data(
    config: ForecastDataConfig,
    encoder: str,
    progress: bool = True,
    windows: bool = True,
    base: BaseKind = "last",
    text: bool = True,
) -> ForecastData:
    """The panel and splits; with ``windows`` also the training and validation windows and
    their texts (``evaluate`` and ``predict`` need neither; ``text=False``, for a model without
    the text tower, skips the texts and leaves (N, 0) arrays); ``base="theta"`` adds every
    window's Theta forecast, ``base="comb"`` the comb and its members (computed once, then
    read from the cache)."""
    path = table_path(config)
    if not path.is_file() or (not config.table and corpus_changed_since(config, path)):
        path, _ = prepare_table(config, progress)
    panel = read_panel(path, config.repos_limit)
    splits = make_splits(
        panel.n_months,
        config.horizon,
        config.n_val_cutoffs,
        config.n_test_cutoffs,
        config.min_history,
    )
    target_idx = panel.target_indices(config.targets)
    cache = EmbeddingCache(encoder)
    parts = []
    for name, cutoffs in (
        ("train", splits.train[:: -config.train_stride][::-1]),
        ("val", splits.val),
    ):
        arrays = split_windows(
            panel, cutoffs if windows else [], config, target_idx, base, progress
        )
        if windows and len(arrays.pairs) == 0:
            raise TowerkitError(f"data: no {name} windows (too few repositories or months)")
        texts = (
            text_for(panel, cache, arrays.pairs, progress=progress)
            if text
            else np.zeros((len(arrays.pairs), 0), dtype=np.float32)
        )
        parts.append(SplitWindows(arrays, texts))
    return ForecastData(panel, splits, parts[0], parts[1], target_idx, path, cache, config, base)


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Windows as tensors; ``weights`` (one per window) scale its mask, so the pinball loss,
    a masked mean, becomes a weighted mean."""

    def __init__(self, windows: SplitWindows, weights: np.ndarray | None = None) -> None:
        a = windows.arrays
        mask = a.y_mask if weights is None else a.y_mask * weights[:, None, None]
        self.tensors = {
            "x": torch.from_numpy(a.x),
            "static": torch.from_numpy(a.static),
            "text": torch.from_numpy(windows.text),
            "y": torch.from_numpy(a.y),
            "mask": torch.from_numpy(mask.astype(a.y_mask.dtype)),
        }
        if a.base is not None:
            self.tensors["base"] = torch.from_numpy(a.base)

    def __len__(self) -> int:
        return int(self.tensors["x"].shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}


def training_datasets(windows: list[SplitWindows], halflife: float) -> list[WindowDataset]:
    """Datasets of these windows, weighted by recency (``halflife`` months, 0: unweighted)
    from the latest cutoff among them all; the weights average 1 over every window."""
    if halflife <= 0:
        return [WindowDataset(w) for w in windows]
    cutoffs = [w.arrays.pairs[:, 1] for w in windows]
    latest = max(int(c.max()) for c in cutoffs if len(c))
    weights = [0.5 ** ((latest - c) / halflife) for c in cutoffs]
    mean = np.concatenate(weights).mean()
    return [WindowDataset(w, wt / mean) for w, wt in zip(windows, weights, strict=True)]


def predict_scaled(model: Any, windows: SplitWindows, batch_size: int = 1024) -> np.ndarray:
    """The model's scaled quantiles (N, H, T, Q), in eval mode without gradients."""
    model.eval()
    data = WindowDataset(windows)
    device = next(model.parameters()).device  # a model the Trainer left on a GPU
    outputs = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = {k: v[start : start + batch_size].to(device) for k, v in data.tensors.items()}
            out = model(batch["x"], batch["static"], batch["text"], batch.get("base"))
            outputs.append(out.float().cpu().numpy())
    return np.concatenate(outputs)


def to_raw(scaled: np.ndarray, arrays: WindowArrays, target_idx: list[int]) -> np.ndarray:
    """(N, H, T, Q) scaled quantiles -> raw values, with the window's own target statistics."""
    from towerkit.forecast.windows import inverse_scale

    moved = scaled.transpose(0, 3, 1, 2)  # (N, Q, H, T): months on the time axis
    mean, std = arrays.mean[:, None, target_idx], arrays.std[:, None, target_idx]
    return inverse_scale(moved, mean, std, arrays.scaling).transpose(0, 2, 3, 1)

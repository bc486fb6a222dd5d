"""``predict``: one repository's next months with p10..p90, as a table, a JSON file and a PNG."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from towerkit.core.errors import TowerkitError
from towerkit.forecast.data import ForecastData, SplitWindows, predict_scaled, to_raw
from towerkit.forecast.dataset import Panel
from towerkit.forecast.model import DualTowerForecaster
from towerkit.forecast.plots import history_forecast_png


@dataclass
class RepoForecast:
    repo: str
    last_month: str  # the corpus's last month: the forecast's cutoff
    months: list[str]
    targets: list[str]
    quantiles: list[float]
    raw: np.ndarray  # (H, T, Q) in the metrics' own units; NaN for a target with no history
    png: Path

    def known(self, target: int) -> bool:
        return bool(np.isfinite(self.raw[:, target]).all())

    def cell(self, horizon: int, target: int) -> str:
        """``p50 [p10, p90]`` of one month, or ``no history``."""
        if not self.known(target):
            return "no history"
        levels = self.quantiles
        values = self.raw[horizon, target]
        lo, mid, hi = (values[levels.index(q)] for q in (0.1, 0.5, 0.9))
        return f"{mid:.1f} [{lo:.1f}, {hi:.1f}]"

    def to_json(self, model: str) -> dict[str, Any]:
        """Per target ``{"p10": [...], "p50": [...], "p90": [...]}`` (one value a month), or
        ``null`` where the repository has no history of that metric."""
        per_target: dict[str, dict[str, list[float]] | None] = {}
        for t, name in enumerate(self.targets):
            per_target[name] = (
                {
                    f"p{round(q * 100)}": [float(v) for v in self.raw[:, t, k]]
                    for k, q in enumerate(self.quantiles)
                }
                if self.known(t)
                else None
            )
        return {
            "repo": self.repo,
            "model": model,
            "cutoff": self.last_month,
            "months": self.months,
            "forecast": per_target,
        }


def find_repo(panel: Panel, repo: str, repos_limit: int = 0) -> int:
    """The panel row of ``owner/name``; a miss names the closest names the data has."""
    if repo in panel.repos:
        return panel.repos.index(repo)
    by_lower = {name.lower(): name for name in panel.repos}
    close = (
        [repo.lower()]
        if repo.lower() in by_lower
        else difflib.get_close_matches(repo.lower(), list(by_lower), n=3, cutoff=0.6)
    )
    hint = (
        f"did you mean {', '.join(by_lower[c] for c in close)}?"
        if close
        else f"e.g. {panel.repos[0]}"
    )
    if repos_limit > 0:
        hint += f" (the model's recipe reads only the first {repos_limit}: data.repos_limit)"
    raise TowerkitError(f"--repo {repo!r}: not in the dataset; {hint}")


def forecast_repo(
    model: DualTowerForecaster, data: ForecastData, repo: str, out: Path
) -> RepoForecast:
    """The next ``horizon`` months after the corpus's end, and the PNG of history and forecast
    at ``out``. A target whose metric is unknown at the last month (OpenDigger has no file for
    it, e.g. issues of a repository that tracks them elsewhere) is NaN, not a forecast of 0."""
    from towerkit.forecast.data import pair_windows, text_for

    p = data.panel
    r = find_repo(p, repo, data.config.repos_limit)
    if p.end - p.first[r] + 1 < data.config.min_history:
        raise TowerkitError(
            f"--repo {repo!r}: fewer than {data.config.min_history} months of history"
        )
    pairs = np.array([[r, p.end]])
    arrays = pair_windows(p, pairs, data.config, data.target_idx, data.base)
    window = SplitWindows(arrays, text_for(p, data.embeddings, pairs, progress=False))
    raw = np.clip(to_raw(predict_scaled(model, window), arrays, data.target_idx)[0], 0, None)
    unknown = np.isnan(p.values[r, p.end, data.target_idx])
    raw[:, unknown] = np.nan
    months = [p.label(p.end + h + 1) for h in range(raw.shape[0])]
    quantiles = list(model.config.quantiles)
    png = history_forecast_png(p, r, data.target_idx, months, raw, quantiles, out)
    targets = [p.features[i] for i in data.target_idx]
    return RepoForecast(repo, p.label(p.end), months, targets, quantiles, raw, png)

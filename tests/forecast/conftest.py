"""A tiny OpenDigger-format corpus made by the tests: three repositories, 2019-01..2021-12."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from towerkit.forecast.client import read_repo_list
from towerkit.forecast.dataset import Panel, build_table, read_panel, write_table
from towerkit.forecast.parse import month_label

START, MONTHS = 2019 * 12, 36
NUMERIC = ("activity", "openrank", "stars", "participants", "issues_new", "change_requests")


def _series(rng: np.random.Generator, level: float, drop_zeros: bool = True) -> dict[str, float]:
    values = np.maximum(0, np.round(level * (1 + 0.3 * rng.standard_normal(MONTHS))))
    values[5] = 0  # a zero month OpenDigger leaves out
    return {month_label(START + i): float(v) for i, v in enumerate(values) if v or not drop_zeros}


def write_corpus(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for r, repo in enumerate(("acme/rocket", "acme/widget", "zeta/tool")):
        folder = root / repo
        folder.mkdir(parents=True)
        for metric in NUMERIC:
            if repo == "zeta/tool" and metric == "issues_new":
                continue  # a missing file: masked, never zero
            data = _series(rng, 20.0 * (r + 1))
            (folder / f"{metric}.json").write_text(json.dumps(data))
        durations = {"avg": {month_label(START + 3): 2.5}, "levels": {}}
        durations.update({f"quantile_{k}": {month_label(START + 3): k} for k in range(5)})
        (folder / "issue_response_time.json").write_text(json.dumps(durations))
        orgs = {
            month_label(START + i): [["gmail.com", "4"], ["acme.io", "2"]] for i in range(MONTHS)
        }
        (folder / "contributor_email_suffixes.json").write_text(json.dumps(orgs))
    (root / "acme/widget/change_requests.json").write_text("{not json")  # malformed
    return root


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "opendigger")


@pytest.fixture()
def panel(corpus: Path, tmp_path: Path) -> Panel:
    """The synthetic corpus as a panel (months x repositories x metrics)."""
    table, report = build_table(corpus, read_repo_list(corpus), progress=False)
    return read_panel(write_table(table, report, tmp_path / "t.parquet"))

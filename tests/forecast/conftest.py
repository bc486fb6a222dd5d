"""A tiny OpenDigger-format corpus made by the tests (three repositories, 2019-01..2021-12), and
the small models, recipes and data changes the forecast tests share."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@pytest.fixture()
def changed() -> Callable[[Panel, slice], Panel]:
    """``changed(panel, months)``: the panel with those months' values changed (leakage checks)."""

    def change(panel: Panel, months: slice) -> Panel:
        values = panel.values.copy()
        values[:, months] = values[:, months] * 7.0 + 1000.0
        return dataclasses.replace(panel, values=values)

    return change


@pytest.fixture()
def small_model() -> Callable[..., Any]:
    """``small_model(**overrides)``: a small LSTM dual tower for the synthetic corpus' shapes."""
    from towerkit.core.model import create_model
    from towerkit.forecast.model import DualTowerForecaster

    def build(**overrides: Any) -> DualTowerForecaster:
        settings: dict[str, Any] = {
            "n_inputs": 9,
            "n_static": 12,
            "lookback": 12,
            "hidden": 16,
            "use_text": False,
            "target_inputs": [0, 1, 2, 3, 4, 5],
            **overrides,
        }
        model = create_model("forecast-dualtower-lstm", **settings)
        assert isinstance(model, DualTowerForecaster)
        return model

    return build


@pytest.fixture()
def small_recipe(corpus: Path, tmp_path: Path) -> Callable[..., Any]:
    """``small_recipe(*overrides)``: a quick recipe on the synthetic corpus, Theta as the base,
    2 epochs, a refit and the band as trained, not recalibrated (later overrides win)."""
    from towerkit.forecast.recipe import load_recipe

    def load(*extra: str) -> Any:
        return load_recipe(
            None,
            [
                f"data.corpus={corpus}",
                f"data.table={tmp_path / 't.parquet'}",
                "data.lookback=12",
                "data.min_history=6",
                "data.n_val_cutoffs=3",
                "data.n_test_cutoffs=4",
                "data.scaling=mase",
                "model.base=theta",
                "model.use_text=false",
                "model.hidden=8",
                "model.fusion_hidden=16",
                "trainer.batch_size=8",
                "trainer.progress=false",
                "trainer.stages=[{name: train, epochs: 2, lr: 0.002}]",
                "refit=true",
                "calibrate=false",  # the quick recipe's; the calibration tests turn it on
                "recalibrate=0",  # likewise (tests/forecast/test_recalibration.py)
                *extra,
            ],
        )

    return load

"""The Parquet table: zero-filled months, missing and malformed files masked and reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from towerkit.forecast.client import read_repo_list
from towerkit.forecast.dataset import build_table, read_panel, write_table
from towerkit.forecast.parse import month_label

START, MONTHS = 2019 * 12, 36  # the corpus that conftest.py writes


def test_table_round_trip_and_report(corpus: Path, tmp_path: Path) -> None:
    repos = read_repo_list(corpus)
    assert repos == ["acme/rocket", "acme/widget", "zeta/tool"]
    table, report = build_table(corpus, repos, progress=False)
    assert report.repos == 3
    assert report.missing["zeta/tool"][0] == "issues_new"
    assert len(report.malformed) == 1 and "acme/widget/change_requests.json" in report.malformed[0]
    rocket = table.filter(table["repo"] == "acme/rocket").sort("month")
    assert rocket["month"][0] == month_label(START) and rocket["month"][-1] == month_label(
        START + MONTHS - 1
    )
    assert rocket["activity"][5] == 0.0  # the left-out month
    assert rocket["issue_response_time_avg"][3] == 2.5
    assert rocket["orgs"][0] == "acme.io 2"  # personal domains dropped
    panel = read_panel(write_table(table, report, tmp_path / "t.parquet"))
    widget, tool = panel.repos.index("acme/widget"), panel.repos.index("zeta/tool")
    assert np.isnan(panel.values[widget, :, panel.features.index("change_requests")]).all()
    assert np.isnan(panel.values[tool, :, panel.features.index("issues_new")]).all()
    assert not np.isnan(panel.values[tool, :, panel.features.index("stars")]).any()
    rocket_row, response = panel.repos.index("acme/rocket"), "issue_response_time_avg"
    assert (
        panel.values[rocket_row, panel.first[rocket_row] + 3, panel.features.index(response)] == 2.5
    )
    # the Parquet file reads back as the table, and the report beside it is the report
    assert pl.read_parquet(tmp_path / "t.parquet").equals(table)
    written = json.loads((tmp_path / "t.report.json").read_text())
    assert written == {
        "summary": report.summary(),
        "missing": report.missing,
        "malformed": report.malformed,
    }
    assert written["summary"].startswith(f"3 repositories, {report.files} files read, ")
    assert written["summary"].endswith(", 1 malformed (skipped)")


def test_each_corpus_has_its_own_prepared_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `prepare data.corpus=<a fetch cache>` once replaced the one shared table, and a later
    # `train` on the shared corpus read the fetched repositories instead
    from towerkit.forecast.data import ForecastDataConfig, table_path

    monkeypatch.setenv("TOWERKIT_HOME", str(tmp_path / "home"))
    shared = table_path(ForecastDataConfig(corpus=str(tmp_path / "shared" / "opendigger")))
    fetched = table_path(ForecastDataConfig(corpus=str(tmp_path / "cache" / "opendigger")))
    assert shared != fetched and shared.parent == fetched.parent == tmp_path / "home" / "forecast"
    assert shared.name.startswith("opendigger-opendigger-") and shared.suffix == ".parquet"
    again = ForecastDataConfig(corpus=str(tmp_path / "shared" / "opendigger"))
    assert table_path(again) == shared
    own = ForecastDataConfig(table=str(tmp_path / "t.parquet"))
    assert table_path(own) == tmp_path / "t.parquet"


def test_an_about_file_reaches_the_profile_text(corpus: Path, tmp_path: Path) -> None:
    from towerkit.forecast.text import describe_profile

    before = read_panel(
        write_table(
            *build_table(corpus, read_repo_list(corpus), progress=False), tmp_path / "a.parquet"
        )
    )
    about = {"description": "Rockets for everyone.", "topics": ["space"], "language": "Rust"}
    (corpus / "acme/rocket/about.json").write_text(json.dumps(about))
    (corpus / "zeta/tool/about.json").write_text(json.dumps({"topics": "space"}))  # malformed
    table, report = build_table(corpus, read_repo_list(corpus), progress=False)
    assert any(
        "zeta/tool/about.json: 'topics' must be a list of strings" in line
        for line in report.malformed
    )
    assert report.summary().startswith("3 repositories, 1 with an about, ")
    panel = read_panel(write_table(table, report, tmp_path / "b.parquet"))
    rocket, tool = panel.repos.index("acme/rocket"), panel.repos.index("zeta/tool")
    assert panel.about[rocket] == "Rockets for everyone; topics space; written in Rust"
    assert panel.about[tool] == "" and panel.about == [
        "Rockets for everyone; topics space; written in Rust",
        "",
        "",
    ]
    cutoff = panel.end
    assert describe_profile(panel, rocket, cutoff) == (
        "acme/rocket: Rockets for everyone; topics space; written in Rust. "
        "With contributors from acme.io"
    )
    # without an about the text is what it was before abouts existed
    assert describe_profile(panel, tool, cutoff) == describe_profile(before, tool, cutoff)
    assert describe_profile(before, rocket, cutoff) == "acme/rocket with contributors from acme.io"
    # a table prepared before the about column existed still reads, with no abouts
    old = tmp_path / "old.parquet"
    table.drop("about").write_parquet(old)
    assert read_panel(old).about == ["", "", ""]

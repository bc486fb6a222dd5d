"""``towerkit forecast`` steps: fetch against a local server (fast), bad input (fast), and
prepare -> train -> evaluate -> predict on the shared OpenDigger corpus (slow)."""

from __future__ import annotations

import json
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from towerkit.cli import main
from towerkit.core.asset_sources import resolve_local_path

CORPUS = resolve_local_path("../shared/data/opendigger")


def test_fetch_command_from_a_local_mirror(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "github").mkdir(parents=True)
    (corpus / "acme").rename(mirror / "github" / "acme")
    (mirror / "repos" / "acme").mkdir(parents=True)  # GitHub's GET /repos/acme/rocket
    (mirror / "repos" / "acme" / "rocket").write_text(
        json.dumps({"full_name": "acme/rocket", "description": "Rockets", "topics": ["space"]})
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    repos = tmp_path / "repos.txt"
    repos.write_text("# two of them\nacme/rocket\nacme/widget\n")
    out = tmp_path / "cache"
    try:
        code = main(
            [
                "forecast",
                "fetch",
                "--repos",
                str(repos),
                "--base-url",
                f"http://127.0.0.1:{httpd.server_address[1]}",
                "--out",
                str(out),
                "--about",
                "--github-api",
                f"http://127.0.0.1:{httpd.server_address[1]}",
            ]
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 malformed" in printed and "widget/change_requests.json" in printed
    assert json.loads((out / "acme/rocket/stars.json").read_text())
    report = json.loads((out / "fetch_report.json").read_text())
    assert "bus_factor" in report["missing"]["acme/rocket"]
    assert "about" in report["missing"]["acme/widget"]  # 404: GitHub has none
    about = json.loads((out / "acme/rocket/about.json").read_text())
    assert about == {"description": "Rockets", "topics": ["space"], "language": ""}


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "fetch", "--repos", str(tmp_path / "none.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: --repos {tmp_path / 'none.txt'}: not found (a file of owner/name lines or a corpus folder)"
    )
    assert main(["forecast", "prepare", f"data.corpus={tmp_path / 'absent'}"]) == 2
    assert "data.corpus" in capsys.readouterr().err
    assert main(["forecast", "train", "data.lookback=many"]) == 2


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.lookback=-1", "data: lookback: expected >= 1, got -1"),
        ("data.train_stride=0", "data: train_stride: expected >= 1, got 0"),
        ("model.dropout=1.5", "model: dropout: expected 0 <= value < 1, got 1.5"),
        ("model.hidden=0", "model: hidden: expected >= 1, got 0"),
    ],
)
def test_bad_sizes_fail_before_a_run_directory(
    override: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["forecast", "train", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert not (tmp_path / "runs").exists()


def test_fetch_refuses_a_bad_base_url_an_empty_list_and_a_file_as_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repos, empty = tmp_path / "repos.txt", tmp_path / "empty.txt"
    repos.write_text("acme/rocket\n")
    empty.write_text("# nothing yet\n")
    base = ["forecast", "fetch", "--out", str(tmp_path / "cache")]
    assert main([*base, "--repos", str(repos), "--base-url", "notaurl"]) == 2
    assert "--base-url 'notaurl': expected an http(s)://HOST/... or file:///DIR URL" in (
        capsys.readouterr().err
    )
    assert main([*base, "--repos", str(repos), "--github-api", "http://x"]) == 2
    assert "--github-api: only with --about" in capsys.readouterr().err
    assert main([*base, "--repos", str(repos), "--about", "--github-api", "api.github.com"]) == 2
    assert "--github-api 'api.github.com': expected an http(s)://HOST" in capsys.readouterr().err
    assert main([*base, "--repos", str(empty)]) == 2
    assert f"--repos {empty}: no owner/name lines" in capsys.readouterr().err
    assert main(["forecast", "fetch", "--repos", str(repos), "--out", str(repos)]) == 2
    assert f"--out {repos}: is a file; expected a cache folder" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_corrupt_prepared_table_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.parquet"
    table.write_text("not parquet")
    assert main(["forecast", "train", f"data.table={table}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{table}: not a readable Parquet file" in err
    assert "run `towerkit forecast prepare` again" in err


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the OpenDigger corpus is not at {CORPUS}")
def test_prepare_train_evaluate_predict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "prepare"]) == 0
    assert "240 repositories" in capsys.readouterr().out
    small = [
        "data.repos_limit=10",
        "trainer.progress=false",
        "trainer.stages=[{name: train, epochs: 1, lr: 0.002}]",
    ]
    assert main(["forecast", "train", *small]) == 0
    out = capsys.readouterr().out
    assert "registered: forecast-dualtower/1" in out
    evaluate = [
        "eval.baselines=[Naive]",
        "eval.ablations=false",
        "eval.sample_size=0",
        "recalibrate=6",  # off in the recipes; the path runs here on real data
    ]
    assert main(["forecast", "evaluate", "forecast-dualtower", *evaluate]) == 0
    out = capsys.readouterr().out
    assert "dual tower" in out and "Naive" in out
    assert re.search(r"MASE dual tower / Naive: \d\.\d{3} \(95% CI \d\.\d{3}\.\.\d\.\d{3}\)", out)
    backtest = next(
        Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.endswith("backtest.json")
    )
    report = json.loads(backtest.read_text())
    scores = report["scores"]
    assert set(scores) == {"dual tower", "Naive"}
    ratio = report["ratios"]["dual tower"]
    # of the 10 repositories, those with a window at a test cutoff
    assert report["reference"] == "Naive" and 2 <= ratio["repositories"] <= 10
    expected = scores["dual tower"]["overall"]["mase"] / scores["Naive"]["overall"]["mase"]
    assert ratio["ratio"] == pytest.approx(expected)
    assert ratio["low"] <= ratio["ratio"] <= ratio["high"]
    markdown = (backtest.parent / "backtest.md").read_text()
    assert f"interval over the {ratio['repositories']} repositories" in markdown
    assert (
        scores["dual tower"]["overall"]["n_series"] == scores["Naive"]["overall"]["n_series"] > 100
    )
    ours = scores["dual tower"]["overall"]
    assert 0.0 <= ours["coverage"] <= 1.0
    assert ours["coverage"] + ours["below_p10"] + ours["above_p90"] == pytest.approx(1.0)
    assert (backtest.parent / "plots" / "band_misses.png").stat().st_size > 1000
    assert "< p10" in out and "> p90" in out
    by_repo, repo_rows = report["per_repository"], report["repository_rows"]
    assert set(by_repo) == {"dual tower", "Naive"} and 2 <= len(repo_rows) <= 10
    assert sum(repo_rows.values()) == scores["Naive"]["overall"]["n_series"]
    weighted = sum(n * by_repo["Naive"][r] for r, n in repo_rows.items()) / sum(repo_rows.values())
    assert weighted == pytest.approx(scores["Naive"]["overall"]["mase"])
    table = (backtest.parent / "per_repository.csv").read_text().splitlines()
    assert table[0].split(",")[:2] == ["repo", "rows"] and len(table) == len(repo_rows) + 1
    first = dict(zip(table[0].split(","), table[1].split(","), strict=True))
    assert float(first["Naive"]) == pytest.approx(by_repo["Naive"][first["repo"]], rel=1e-5)
    assert "## Repositories that move the dual tower's MASE most against Naive" in markdown
    by_cutoff = report["per_cutoff"]["dual tower"]
    assert len(by_cutoff) == 12 and min(by_cutoff) == "2021-07" and max(by_cutoff) == "2022-06"
    assert "## MASE per test cutoff (all targets)" in markdown
    table = markdown.split("## MASE per test cutoff (all targets)\n")[1].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    row = next(line for line in table if line.startswith("| 2021-10 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[header.index("dual tower")] == f"{by_cutoff['2021-10']:.3f}"
    # each test cutoff recalibrated from the 6 known cutoffs before it
    assert report["recalibrate"] == 6
    assert "recalibrated from its own errors at the latest 6 cutoffs" in " ".join(out.split())
    assert "are recalibrated from its own errors" in markdown.replace("\n", " ")
    assert (backtest.parent / "plots" / "mase_stars.png").stat().st_size > 1000
    by_month = report["per_horizon"]["dual tower"]
    assert len(by_month["mase"]) == len(by_month["coverage"]) == 3
    assert sum(by_month["mase"]) / 3 == pytest.approx(scores["dual tower"]["overall"]["mase"])
    assert "## MASE (p10..p90 coverage) per horizon month" in markdown
    assert "MASE (p10..p90 coverage) per horizon month" in out
    assert (backtest.parent / "plots" / "mase_by_horizon.png").stat().st_size > 1000
    by_scale = report["by_scale"]["dual tower"]
    assert sum(by_scale["rows"]) == scores["dual tower"]["overall"]["n_series"]
    weighted = np.dot(by_scale["mase"], by_scale["rows"]) / sum(by_scale["rows"])
    assert weighted == pytest.approx(scores["dual tower"]["overall"]["mase"])
    assert by_scale["scale_high"][0] <= by_scale["scale_low"][2]
    assert "## MASE / MAE by series scale" in markdown
    assert "MASE / MAE by series scale" in out
    cells = [f"{m:.3f} / {a:.4g}" for m, a in zip(by_scale["mase"], by_scale["mae"], strict=True)]
    dual_row = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| dual tower | ") and " / " in line
    )
    assert dual_row == "| dual tower | " + " | ".join(cells) + " |"
    assert (
        main(["forecast", "predict", "forecast-dualtower", "--repo", "AdguardTeam/AdguardFilters"])
        == 0
    )
    out = capsys.readouterr().out
    assert "2022-10" in out and "2022-12" in out and "openrank" in out
    assert "recalibration: off (the recipe's recalibrate is 0)" in " ".join(out.split())
    # the quick recipe has no refit: its training targets end at the first validation cutoff
    assert "model: trained through 2020-11, 22 months before this forecast's cutoff" in " ".join(
        out.split()
    )
    png = Path(out.split("plot: ")[1].split()[0])
    assert png.stat().st_size > 1000
    assert main(["forecast", "predict", "forecast-dualtower", "--repo", "no/such"]) == 2

"""``forecast predict``: a target the repository has no history of is reported as such (not a
forecast of 0), the JSON file holds the table's numbers, a mistyped name gets suggestions, and
several repositories at once give the same numbers as one at a time, in a CSV."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from towerkit.cli import main
from towerkit.core.errors import TowerkitError
from towerkit.forecast.dataset import Panel
from towerkit.forecast.predict import find_repo, forecast_repo, forecast_repos


def test_find_repo_suggests_the_closest_names(panel: Panel) -> None:
    assert find_repo(panel, "acme/widget") == panel.repos.index("acme/widget")
    with pytest.raises(
        TowerkitError, match=r"'ACME/Widget': not in the dataset; did you mean acme/widget\?$"
    ):
        find_repo(panel, "ACME/Widget")
    with pytest.raises(TowerkitError, match=r"did you mean acme/rocket"):
        find_repo(panel, "acme/rockett")
    with pytest.raises(
        TowerkitError, match=r"e\.g\. acme/rocket \(the model's recipe reads only the first 2"
    ):
        find_repo(panel, "nobody/nothing", repos_limit=2)


@pytest.fixture()
def trained(tmp_path: Path, small_recipe: Callable[..., Any]) -> Any:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast.recipe import train

    registry = ModelRegistry(tmp_path / "r.db")
    return train(small_recipe("refit=false"), registry=registry, runs_root=tmp_path / "runs")


def test_a_missing_metric_is_no_history_not_a_forecast(trained: Any, tmp_path: Path) -> None:
    # zeta/tool has no issues_new file and acme/widget's change_requests file is malformed
    targets = [trained.data.panel.features[i] for i in trained.data.target_idx]
    for repo, missing in (("zeta/tool", "issues_new"), ("acme/widget", "change_requests")):
        forecast = forecast_repo(trained.model, trained.data, repo, tmp_path / f"{missing}.png")
        assert forecast.targets == targets and forecast.raw.shape == (3, len(targets), 3)
        for t, name in enumerate(targets):
            assert forecast.known(t) == (name != missing), name
            assert np.isfinite(forecast.raw[:, t]).all() == (name != missing)
        assert forecast.cell(0, targets.index(missing)) == "no history"
        assert forecast.months == ["2022-01", "2022-02", "2022-03"]
        assert forecast.last_month == "2021-12" and forecast.png.stat().st_size > 1000
    known = forecast.raw[np.isfinite(forecast.raw)]
    assert (known >= 0).all()


def test_predict_command_writes_the_table_as_json(
    trained: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from towerkit.forecast import cli

    monkeypatch.setattr(cli.console, "width", 200)  # one line per table row
    png = tmp_path / "out" / "tool.png"
    run = str(trained.run_dir)
    assert main(["forecast", "predict", run, "--repo", "zeta/tool", "--out", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "p50 [p10, p90]" in printed and "no history" in printed
    report = json.loads(png.with_suffix(".json").read_text())
    assert report["repo"] == "zeta/tool" and report["cutoff"] == "2021-12"
    assert report["months"] == ["2022-01", "2022-02", "2022-03"]
    assert report["forecast"]["issues_new"] is None
    again = forecast_repo(trained.model, trained.data, "zeta/tool", tmp_path / "again.png")
    stars = again.targets.index("stars")
    for k, level in enumerate(("p10", "p50", "p90")):
        assert report["forecast"]["stars"][level] == pytest.approx(again.raw[:, stars, k])
        assert f"{again.raw[0, stars, 1]:.1f} [{again.raw[0, stars, 0]:.1f}," in printed

    assert main(["forecast", "predict", run, "--repo", "zeta/tool", "--out", "x.txt"]) == 2
    assert "--out x.txt: expected a .png path" in capsys.readouterr().err
    assert main(["forecast", "predict", run, "--repo", "zeta/tol"]) == 2
    assert "did you mean zeta/tool?" in capsys.readouterr().err


def test_predict_from_another_corpus(
    trained: Any, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--corpus``: a folder such as ``fetch`` writes, with one repository, even one whose
    data ends earlier; the model reads each series on its own, so an unchanged copy gives the
    same forecast as the corpus it was trained on."""
    import shutil

    mine = tmp_path / "mine"
    shutil.copytree(corpus / "zeta" / "tool", mine / "zeta" / "tool")
    run = str(trained.run_dir)
    args = ["forecast", "predict", run, "--repo", "zeta/tool", "--corpus", str(mine)]
    assert main([*args, "--out", str(tmp_path / "same.png")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    reference = forecast_repo(trained.model, trained.data, "zeta/tool", tmp_path / "ref.png")
    for t, name in enumerate(reference.targets):
        got = same["forecast"][name]
        if not reference.known(t):
            assert got is None
            continue
        for k, level in enumerate(("p10", "p50", "p90")):
            assert got[level] == pytest.approx(reference.raw[:, t, k], rel=1e-5), name

    for metric in (mine / "zeta" / "tool").glob("*.json"):  # six months fewer
        data = json.loads(metric.read_text())
        if all(len(key) == 7 for key in data):  # the monthly files
            metric.write_text(json.dumps({k: v for k, v in data.items() if k <= "2021-06"}))
    # the files are newer than the table prepared from them above: it is prepared again
    assert main([*args, "--out", str(tmp_path / "earlier.png")]) == 0
    earlier = json.loads((tmp_path / "earlier.json").read_text())
    assert earlier["cutoff"] == "2021-06" and earlier["months"][0] == "2021-07"
    assert earlier["forecast"]["stars"]["p50"] != same["forecast"]["stars"]["p50"]

    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")]) == 2
    assert "--corpus" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_a_batch_equals_one_repository_at_a_time(trained: Any, tmp_path: Path) -> None:
    repos = ["zeta/tool", "acme/rocket", "acme/widget"]
    batch = forecast_repos(trained.model, trained.data, repos)
    assert [f.repo for f in batch] == repos
    p = trained.data.panel
    for f in batch:
        alone = forecast_repo(trained.model, trained.data, f.repo, tmp_path / "one.png")
        np.testing.assert_allclose(f.raw, alone.raw, rtol=1e-5, equal_nan=True)
        r = p.repos.index(f.repo)
        for t, feature in enumerate(trained.data.target_idx):
            before = p.values[r, p.end - 2 : p.end + 1, feature].sum()
            expected = f.raw[:, t, 1].sum() / before - 1 if f.known(t) else np.nan
            np.testing.assert_allclose(f.change(t), expected, rtol=1e-9, equal_nan=True)
    assert batch[0].change_cell(batch[0].targets.index("issues_new")) == "no history"
    assert forecast_repos(trained.model, trained.data, []) == []


def test_predict_several_writes_a_csv_sorted_by_change(
    trained: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd

    from towerkit.forecast import cli

    monkeypatch.setattr(cli.console, "width", 200)
    run = str(trained.run_dir)
    csv = tmp_path / "many" / "all.csv"
    args = ["forecast", "predict", run, "--all", "--out", str(csv), "--sort", "stars"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(csv)
    assert list(frame.columns) == [
        *("repo", "model", "cutoff", "target", "month", "p10", "p50", "p90", "change")
    ]
    assert len(frame) == 3 * 6 * 3 and set(frame["cutoff"]) == {"2021-12"}
    batch = forecast_repos(trained.model, trained.data, sorted(set(frame["repo"])))
    stars = batch[0].targets.index("stars")
    order = [f.repo for f in sorted(batch, key=lambda f: -f.change(stars))]
    assert list(dict.fromkeys(frame["repo"])) == order  # largest rise in stars first
    for f in batch:
        rows = frame[(frame["repo"] == f.repo) & (frame["target"] == "stars")]
        np.testing.assert_allclose(rows[["p10", "p50", "p90"]].to_numpy(), f.raw[:, stars], 1e-5)
        assert rows["change"].to_numpy() == pytest.approx([f.change(stars)] * 3)
        assert (csv.parent / f"{f.repo.replace('/', '_')}.png").stat().st_size > 1000
    no_issues = frame[(frame["repo"] == "zeta/tool") & (frame["target"] == "issues_new")]
    assert no_issues[["p10", "p50", "p90", "change"]].isna().all().all()
    assert printed.index(order[0]) < printed.index(order[1]) < printed.index(order[2])
    assert "no history" in printed and f"csv: {csv}" in printed

    two = tmp_path / "two" / "f.csv"
    common = ["forecast", "predict", run, "--repo", "acme/rocket", "--repo", "zeta/tool"]
    assert main([*common, "--out", str(two), "--no-plots"]) == 0
    assert set(pd.read_csv(two)["repo"]) == {"acme/rocket", "zeta/tool"}
    assert not list(two.parent.glob("*.png"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "predict: expected --repo owner/name (repeatable) or --all"),
        (["--all", "--repo", "zeta/tool"], "--repo and --all: expected one of them, not both"),
        (["--all", "--out", "x.png"], "--out x.png: expected a .csv path"),
        (["--all", "--sort", "forks"], "--sort forks: not a target of the model (expected one"),
    ],
)
def test_predict_several_rejects_bad_arguments(
    trained: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "bad.csv"
    args = ["forecast", "predict", str(trained.run_dir), *extra]
    assert main(args if "--out" in extra else [*args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_plots_drawn_by_worker_processes_equal_the_serial_ones(
    trained: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from towerkit.forecast import predict

    batch = forecast_repos(trained.model, trained.data, ["zeta/tool", "acme/rocket"])
    done: list[int] = []
    monkeypatch.setenv("TOWERKIT_FORECAST_JOBS", "1")
    predict.plot_forecasts(trained.data, batch, tmp_path / "serial", lambda: done.append(1))
    monkeypatch.setenv("TOWERKIT_FORECAST_JOBS", "2")
    monkeypatch.setattr(predict, "PLOTS_PER_JOB", 1)  # two processes for two plots
    predict.plot_forecasts(trained.data, batch, tmp_path / "pool", lambda: done.append(1))
    assert len(done) == 4
    for f in batch:
        name = f"{f.repo.replace('/', '_')}.png"
        assert f.png == tmp_path / "pool" / name
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()


def test_predict_recalibrates_from_the_latest_known_cutoffs(
    tmp_path: Path,
    small_recipe: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from towerkit.core.registry import ModelRegistry
    from towerkit.forecast import recalibration
    from towerkit.forecast.data import SplitWindows, pair_windows, predict_scaled, to_raw
    from towerkit.forecast.recalibration import apply_band, band_as_trained, correction
    from towerkit.forecast.recipe import train

    result = train(
        small_recipe("refit=false", "calibrate=true", "recalibrate=2"),
        registry=ModelRegistry(tmp_path / "r.db"),
        runs_root=tmp_path / "runs",
    )
    model, data = result.model, result.data
    end = data.panel.end
    repos = ["acme/rocket", "acme/widget"]
    as_calibrated = forecast_repos(model, data, repos)
    # the synthetic corpus has too few repositories for the default minimum: no correction
    same = forecast_repos(model, data, repos, recalibrate=2)
    np.testing.assert_array_equal(same[0].raw, as_calibrated[0].raw)
    run = str(result.run_dir)
    assert main(["forecast", "predict", run, "--repo", "acme/rocket"]) == 0
    assert "recalibration: none (only" in capsys.readouterr().out

    monkeypatch.setattr(recalibration, "MIN_WINDOWS", 1)
    found = forecast_repos(model, data, repos, recalibrate=2)
    pool_arrays = data.windows([end - 4, end - 3])  # the latest 2 whose 3 months are known
    pool = SplitWindows(pool_arrays, data.text_for(pool_arrays.pairs, progress=False))
    rows = [data.panel.repos.index(r) for r in repos]
    mine = pair_windows(
        data.panel, np.array([[r, end] for r in rows]), data.config, data.target_idx, data.base
    )
    window = SplitWindows(mine, data.text_for(mine.pairs, progress=False))
    with band_as_trained(model):
        plain_pool, plain = predict_scaled(model, pool), predict_scaled(model, window)
    a = pool_arrays
    fix = correction(plain_pool, a.y, a.y_mask, model.config.quantiles)
    expected = to_raw(apply_band(plain, fix.offset, fix.shift, fix.shift), mine, data.target_idx)
    for f in found:
        e = np.clip(expected[repos.index(f.repo)], 0, None)
        known = np.isfinite(f.raw)
        np.testing.assert_allclose(f.raw[known], e[known], rtol=1e-5, atol=1e-6)
    assert not np.allclose(found[0].raw, as_calibrated[0].raw)
    assert main(["forecast", "predict", run, "--repo", "acme/rocket"]) == 0
    label = data.panel.label
    assert (
        f"median and band from the model's errors on {len(a.pairs)} windows at cutoffs "
        f"{label(end - 4)}..{label(end - 3)} (trained through {model.config.trained_through})"
    ) in capsys.readouterr().out.replace("\n", " ")

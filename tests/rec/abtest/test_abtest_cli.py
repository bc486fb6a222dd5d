"""``towerkit rec abtest assign | analyse | simulate`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from towerkit.cli import main
from towerkit.rec.abtest.assign import Assigner
from towerkit.rec.abtest.events import EventLog, Experiment
from towerkit.rec.store.engine import create_store_engine


def test_assign_prints_the_same_variant_as_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    expected = Assigner("exp-7", ("A", "B"), (0.2, 0.8)).assign("user-123")
    assert (
        main(["rec", "abtest", "assign", "user-123", "--salt", "exp-7", "--weights", "0.2,0.8"])
        == 0
    )
    assert capsys.readouterr().out.startswith(f"{expected}  (user 'user-123', salt 'exp-7'")


def test_assign_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rec", "abtest", "assign", "u", "--weights", "0.5,0.3,0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --weights: expected 2 weights, got 3"


def _logged_store(path: Path) -> Experiment:
    engine = create_store_engine(str(path))
    log = EventLog(engine)
    log.create()
    experiment = Experiment(
        "checkout-v2", "s", ("A", "B"), (0.5, 0.5), {"converted": "binary", "spend": "continuous"}
    )
    log.save_experiment(experiment)
    users = [str(n) for n in range(600)]
    variants = log.expose(experiment, users)
    rng = np.random.default_rng(1)
    p = {"A": 0.10, "B": 0.25}
    events = [
        (u, "converted", 1.0) for u, v in zip(users, variants, strict=True) if rng.random() < p[v]
    ]
    events += [(u, "spend", float(rng.gamma(2.0, 10.0))) for u in users]
    log.record(experiment, events)
    engine.dispose()
    return experiment


def test_analyse_prints_tables_and_writes_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    _logged_store(db)
    out = tmp_path / "report"
    args = ["rec", "abtest", "analyse", "--db", str(db), "--experiment", "checkout-v2"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SRM ok" in text and "z-test" in text and "Welch" in text
    report = json.loads((out / "report.json").read_text())
    assert report["experiment"]["name"] == "checkout-v2"
    converted = next(c for c in report["comparisons"] if c["metric"] == "converted")
    assert converted["proportion"]["p_value"] < 1e-3 < converted["proportion"]["diff"]
    spend = next(c for c in report["comparisons"] if c["metric"] == "spend")
    assert spend["welch"]["p_value"] > 0.01  # the same spend distribution in both arms
    assert (out / "abtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyse_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.db"
    _logged_store(db)
    assert main(["rec", "abtest", "analyse", "--db", str(db), "--experiment", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: experiment 'nope': not in the database (known: checkout-v2)"
    missing = tmp_path / "missing.db"
    assert main(["rec", "abtest", "analyse", "--db", str(missing), "--experiment", "x"]) == 2
    assert "no SQLite store" in capsys.readouterr().err
    assert not missing.exists()  # nothing created on the way to the error


def test_assign_with_a_logged_experiment_uses_its_salt_and_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    experiment = _logged_store(db)
    for user in ("1", "2", "3", "abc"):
        args = ["rec", "abtest", "assign", user, "--db", str(db), "--experiment", "checkout-v2"]
        assert main(args) == 0
        assert capsys.readouterr().out.startswith(f"{experiment.assigner.assign(user)}  ")
    assert main(["rec", "abtest", "assign", "1", "--db", str(db)]) == 2
    assert "give both" in capsys.readouterr().err


def test_analyse_on_a_store_without_ab_tables_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    db = tmp_path / "store.db"
    engine = create_store_engine(str(db))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id TEXT PRIMARY KEY)"))
    assert main(["rec", "abtest", "analyse", "--db", str(db), "--experiment", "x"]) == 2
    assert "no A/B tables (ab_experiments, ...)" in capsys.readouterr().err
    assert sa.inspect(engine).get_table_names() == ["users"]
    engine.dispose()


def test_simulate_on_a_missing_store_fails_before_loading_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    args = ["rec", "abtest", "simulate", "--db", str(missing), "--a", "m/1", "--b", "m/2"]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: --db '{missing}': no SQLite store")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--start", "yesterday"], "error: --start: expected an ISO 8601 instant, got 'yesterday'"),
        (["--k", "0"], "error: --k: expected at least 1, got 0"),
        (["--weights", "0.5"], "error: --weights: expected 2 weights, got 1"),
        (["--mapping", "{tmp}/nope.yaml"], "error: config file {tmp}/nope.yaml: not found"),
    ],
)
def test_simulate_bad_flags_fail_before_the_store_or_the_models(
    flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    db = tmp_path / "store.db"
    engine = create_store_engine(str(db))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id TEXT PRIMARY KEY)"))
    # the models do not exist: a check after loading them would name them instead
    args = ["rec", "abtest", "simulate", "--db", str(db), "--a", "nope/1", "--b", "nope/2"]
    assert main([*args, *(flag.format(tmp=tmp_path) for flag in flags)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == expected.format(tmp=tmp_path)
    assert sa.inspect(engine).get_table_names() == ["users"]  # no A/B tables created
    engine.dispose()


def test_simulate_mapping_of_an_absent_table_fails_before_the_models_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from towerkit.rec.store.schema import DefaultTables

    db = tmp_path / "store.db"
    engine = create_store_engine(str(db))
    DefaultTables().metadata.create_all(engine)  # users, items, interactions; no 'swipes'
    engine.dispose()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("interactions:\n  table: swipes\n")
    # the models do not exist: binding the mapping after loading them would name them instead
    args = ["rec", "abtest", "simulate", "--db", str(db), "--a", "nope/1", "--b", "nope/2"]
    assert main([*args, "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: mapping {mapping}: key 'interactions.table': ")
    assert "swipes" in err
    assert "nope" not in err


@pytest.mark.parametrize("alpha", ["2", "0", "-0.1"])
def test_analyse_bad_alpha_fails_before_the_store_is_opened(
    alpha: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"  # a check after opening the store would name --db
    args = ["rec", "abtest", "analyse", "--db", str(missing), "--experiment", "x"]
    assert main([*args, "--alpha", alpha]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --alpha: expected a number between 0 and 1, got {float(alpha)}"
    assert not missing.exists()

"""``towerkit registry ...`` through towerkit.cli.main: output, exit codes and the database after."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from towerkit.cli import main
from towerkit.core.registry import ModelRegistry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOWERKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables wide enough not to wrap cells
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path, tmp_path: Path) -> ModelRegistry:
    """The default registry ($TOWERKIT_HOME/registry.db) with m/1..3 and base/1."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    reg = ModelRegistry()
    base = reg.register("base", model_dir, git_commit=None)
    for i in range(3):
        reg.register(
            "m",
            model_dir,
            metrics={"recall@10": 0.1 * (i + 1)},
            parent=base.uri if i == 0 else f"m/{i}",
            description=f"try {i + 1}",
            git_commit="a" * 40,
        )
    reg.set_alias("m", "production", 1)
    reg.set_alias("m", "production", 2)
    return reg


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["registry", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_models_latest_version_and_aliases(registry, capsys) -> None:
    code, out, err = _run(capsys, "list")
    assert (code, err) == (0, "")
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert set(rows) == {"base", "m"}
    cells = [cell.strip() for cell in rows["m"].split("│")[1:-1]]
    assert cells[:5] == ["m", "3", "3", "production→2", "-"]


def test_list_of_an_empty_registry_says_so(home: Path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "empty.db"
    code, out, _ = _run(capsys, "list", "--db", str(db))
    assert code == 0
    assert out.strip() == f"no models registered in {db}"


def test_show_model_lists_versions_and_alias_history(registry, capsys) -> None:
    code, out, _ = _run(capsys, "show", "m")
    assert code == 0
    assert "production → 2 (before: 1)" in out
    version_rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert [row.split("│")[1].strip() for row in version_rows] == ["1", "2", "3"]
    assert "recall@10=0.2" in version_rows[1] and "production" in version_rows[1]
    assert "try 3" in version_rows[2] and "m/2" in version_rows[2]


@pytest.mark.parametrize("ref", ["m/3", "m@latest"])
def test_show_one_version_in_detail(registry, capsys, ref: str) -> None:
    registry.set_tag("m", 3, "owner", "ana")
    code, out, _ = _run(capsys, "show", ref)
    assert code == 0
    assert out.splitlines()[0].strip() == "m/3"
    assert "m/3 ← m/2 ← m/1 ← base/1" in out  # lineage
    assert "a" * 40 in out and "owner=ana" in out and "try 3" in out
    assert "recall@10" in out and "0.3" in out


def test_unknown_version_is_one_line_on_stderr_exit_2(registry, capsys) -> None:
    code, out, err = _run(capsys, "show", "m/7")
    assert (code, out) == (2, "")
    assert err == "error: registry: model 'm' has no version 7 (versions: 1-3)\n"


def test_bad_reference_exit_2(registry, capsys) -> None:
    code, _, err = _run(capsys, "show", "m/seven")
    assert code == 2
    assert err.startswith("error: registry: bad model reference 'm/seven'")


def test_alias_set_and_delete(registry, capsys) -> None:
    code, out, _ = _run(capsys, "alias", "m", "staging", "3")
    assert (code, out.strip()) == (0, "m@staging → m/3")
    code, out, _ = _run(capsys, "alias", "m", "production", "3")
    assert (code, out.strip()) == (0, "m@production → m/3 (was m/2)")
    assert registry.get_model("m").aliases == {"production": 3, "staging": 3}
    code, _, _ = _run(capsys, "alias", "m", "staging", "--delete")
    assert code == 0
    assert registry.get_model("m").aliases == {"production": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["m", "staging"], "registry: alias needs a VERSION for 'm@staging' (or --delete)"),
        (["m", "latest", "1"], "registry: bad alias name 'latest'"),
        (["m", "canary", "--delete"], "registry: model 'm' has no alias 'canary'"),
    ],
)
def test_alias_errors(registry, capsys, args: list[str], message: str) -> None:
    code, _, err = _run(capsys, "alias", *args)
    assert code == 2
    assert err.startswith(f"error: {message}")
    assert registry.get_model("m").aliases == {"production": 2}


def test_rollback_twice_then_clear_error(registry, capsys) -> None:
    registry.set_alias("m", "production", 3)
    code, out, _ = _run(capsys, "rollback", "m")
    assert (code, out.strip()) == (0, "m@production: m/3 → m/2")
    code, out, _ = _run(capsys, "rollback", "m", "--alias", "production")
    assert (code, out.strip()) == (0, "m@production: m/2 → m/1")
    code, _, err = _run(capsys, "rollback", "m")
    assert code == 2
    assert "has no earlier version to roll back to" in err
    assert registry.resolve("m").version == 1


def test_delete_refuses_without_yes_when_not_interactive(registry, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _run(capsys, "delete", "m/3")
    assert code == 2
    assert err == "error: registry: refusing to delete 'm/3' without --yes (not interactive)\n"
    assert [v.version for v in registry.list_versions("m")] == [1, 2, 3]


def test_delete_version_and_model_with_yes(registry, capsys) -> None:
    code, out, _ = _run(capsys, "delete", "m/2", "--yes")
    assert (code, out.strip()) == (0, "deleted m/2 and its aliases production")
    assert [v.version for v in registry.list_versions("m")] == [1, 3]
    assert registry.get_model("m").aliases == {}
    code, _, err = _run(capsys, "delete", "m@production", "--yes")
    assert code == 2 and "not an alias" in err
    code, out, _ = _run(capsys, "delete", "m", "-y")
    assert (code, out.strip()) == (0, "deleted model m (2 version(s))")
    assert registry.list_models() == ["base"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, [1, 2, 3]), ("y\n", 0, [1, 2])])
def test_delete_asks_on_a_terminal(registry, capsys, monkeypatch, answer, code, left) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    got, out, _ = _run(capsys, "delete", "m/3")
    assert got == code
    assert "delete 'm/3'?" in out
    assert [v.version for v in registry.list_versions("m")] == left


def test_tag_versions_models_and_aliases(registry, capsys) -> None:
    assert _run(capsys, "tag", "m/1", "stage", "dev")[:2] == (0, "tagged m/1: stage=dev\n")
    assert _run(capsys, "tag", "m", "team", "rec")[0] == 0
    assert _run(capsys, "tag", "m@production", "checked", "yes")[0] == 0
    assert registry.get("m", 1).tags == {"stage": "dev"}
    assert registry.get("m", 2).tags == {"checked": "yes"}
    assert registry.get_model("m").tags == {"team": "rec"}
    assert _run(capsys, "tag", "m/1", "stage", "--delete")[0] == 0
    assert registry.get("m", 1).tags == {}
    code, _, err = _run(capsys, "tag", "m/1", "stage")
    assert code == 2 and "tag needs a VALUE for 'stage' on 'm/1'" in err


def test_db_option_picks_another_file(registry, tmp_path: Path, capsys) -> None:
    other = ModelRegistry(tmp_path / "other.db")
    other.register("solo", tmp_path / "model", git_commit=None)
    code, out, _ = _run(capsys, "list", "--db", str(tmp_path / "other.db"))
    assert code == 0
    assert "solo" in out and "base" not in out


def test_corrupt_database_file_is_one_line_error(home: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all " * 300)
    code, out, err = _run(capsys, "list", "--db", str(bad))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"error: registry: '{bad}' is not a SQLite database")

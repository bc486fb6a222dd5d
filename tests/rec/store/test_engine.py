"""create_store_engine: accepted --db forms, and one-line errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.cli import main
from towerkit.core.errors import TowerkitError
from towerkit.rec.store.engine import (
    absolute_store,
    check_connection,
    create_store_engine,
    redact,
)


def test_a_file_path_is_an_absolute_sqlite_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_store_engine("stores/app.db")
    assert engine.url.drivername == "sqlite"
    assert engine.url.database == str(tmp_path / "stores" / "app.db")
    assert create_store_engine(f"sqlite:///{tmp_path}/b.db").url.database == f"{tmp_path}/b.db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@db.example.supabase.co:5432/postgres",
        "postgres://u:pw@db.example.supabase.co:5432/postgres",
        "postgresql+psycopg://u:pw@db.example.supabase.co:5432/postgres",
    ],
)
def test_postgres_urls_run_through_psycopg3(url: str) -> None:
    engine = create_store_engine(url)
    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.url.database == "postgres"


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("mysql://root:hunter2@localhost/app", "unsupported database"),
        ("", "empty"),
        ("sqlite:///:memory:", "needs a file"),
        ("postgresql://u:hunter2@host", "no database name"),
        ("postgresql://u:hunter2@host:notaport/db", "not a database URL"),
    ],
)
def test_bad_urls_are_one_line_without_the_password(db: str, message: str) -> None:
    with pytest.raises(TowerkitError, match=message) as caught:
        create_store_engine(db)
    text = str(caught.value)
    assert "\n" not in text and "hunter2" not in text
    assert "sqlite:///FILE or postgresql+psycopg://" in text


def test_missing_sqlite_store_is_refused_for_reading(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match="no SQLite store at"):
        create_store_engine(str(tmp_path / "absent.db"), must_exist=True)
    assert not (tmp_path / "absent.db").exists()


def test_unreachable_server_is_one_line_and_redacted() -> None:
    engine = create_store_engine("postgresql://u:hunter2@127.0.0.1:1/app")
    with pytest.raises(TowerkitError, match="cannot connect") as caught:
        check_connection(engine)
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
    assert redact(engine.url) == "postgresql+psycopg://u:***@127.0.0.1:1/app"


def test_cli_bad_url_and_missing_store_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rec", "export", "--db", "mysql://r:hunter2@h/app", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --db 'mysql://r:***@h/app': unsupported database")
    assert err.count("\n") == 1
    absent = tmp_path / "absent.db"
    assert main(["rec", "export", "--db", str(absent), "--out", str(tmp_path / "x")]) == 2
    assert "no SQLite store at" in capsys.readouterr().err
    assert main(["rec", "seed-db", "--db", str(tmp_path / "s.db"), "--schema", "a;b"]) == 2
    assert "--schema 'a;b': not a plain identifier" in capsys.readouterr().err


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_text("these are my notes, not a SQLite database\n" * 100)
    assert main(["rec", "export", "--db", str(garbage), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --db 'sqlite:///{garbage}': export failed: file is not a database\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ("store.db", "{cwd}/store.db"),
        ("sqlite:///store.db", "sqlite:///{cwd}/store.db"),
        ("sqlite:////srv/app.db", "sqlite:////srv/app.db"),
        ("postgresql://u:secret@db.example:5432/app", "postgresql://u:secret@db.example:5432/app"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),  # refused later, by create_store_engine
        ("", ""),
    ],
)
def test_absolute_store_anchors_sqlite_files_to_the_working_directory(
    db: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_store(db) == expected.format(cwd=tmp_path)

"""``create_store_engine``: a SQLite file (the embedded default) or a Postgres URL (Supabase).

Accepted ``--db`` values: a file path (``store.db``), ``sqlite:///path``, or a Postgres URL
(``postgresql+psycopg://user:pass@host:5432/db``; plain ``postgresql://`` and ``postgres://``,
as Supabase shows them, are run through psycopg 3 too). Anything else is one clear error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from towerkit.core.errors import TowerkitError

_EXPECTED = "a SQLite file path, sqlite:///FILE or postgresql+psycopg://USER[:PASS]@HOST[:PORT]/DB"
_POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: URL | str) -> str:
    """The URL as text with any password shown as ***."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):  # e.g. a non-numeric port
        return _PASSWORD.sub(r"\1***@", str(url))
    return parsed.render_as_string(hide_password=True)


def _parse(db: str) -> URL:
    text = db.strip()
    if not text:
        raise TowerkitError(f"--db {db!r}: empty; expected {_EXPECTED}")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise TowerkitError(
            f"--db {redact(text)!r}: not a database URL; expected {_EXPECTED}"
        ) from None
    if url.drivername in _POSTGRES_SCHEMES:
        if not url.database:
            raise TowerkitError(f"--db {redact(url)!r}: no database name; expected {_EXPECTED}")
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        if not url.database or url.database == ":memory:":
            raise TowerkitError(f"--db {redact(url)!r}: needs a file; expected {_EXPECTED}")
        return url.set(drivername="sqlite")
    raise TowerkitError(f"--db {redact(url)!r}: unsupported database; expected {_EXPECTED}")


def absolute_store(db: str) -> str:
    """``db`` with a SQLite file as an absolute path (a file path stays a path, a sqlite:/// URL
    a URL); a server URL as given. An invalid value is returned as it is: opening it names it."""
    text = db.strip()
    if text and "://" not in text:
        return str(Path(text).expanduser().absolute())
    try:
        url = _parse(db)
    except TowerkitError:
        return db
    if url.drivername != "sqlite":
        return db
    absolute = str(Path(str(url.database)).expanduser().absolute())
    return url.set(database=absolute).render_as_string(hide_password=False)


def _transactional_sqlite(engine: Engine) -> None:
    # pysqlite commits implicitly before DDL; SQLAlchemy's documented recipe hands transaction
    # control to SQLAlchemy so that a failed seed rolls back its CREATE TABLEs as well
    @event.listens_for(engine, "connect")
    def _no_implicit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def create_store_engine(db: str, *, must_exist: bool = False) -> Engine:
    """An engine for ``db`` (see the module docstring); ``must_exist`` refuses a missing SQLite
    file instead of creating an empty store. Nothing connects until first use."""
    url = _parse(db)
    if url.drivername == "sqlite":
        path = Path(str(url.database))
        if must_exist and not path.is_file():
            raise TowerkitError(f"--db {db!r}: no SQLite store at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        _transactional_sqlite(engine)
        return engine
    return create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)


def _first_line(exc: SQLAlchemyError) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return reason[0] if reason else type(exc).__name__


@contextmanager
def database_errors(engine: Engine, doing: str) -> Iterator[None]:
    """A database failure (lost connection, permission denied) as one line naming the store."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise TowerkitError(f"--db {redact(engine.url)!r}: {doing}: {_first_line(exc)}") from None


def check_connection(engine: Engine) -> None:
    """Connect once, turning a refused or failed connection into a one-line error."""
    with database_errors(engine, "cannot connect"), engine.connect():
        pass

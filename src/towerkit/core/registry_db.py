"""The registry's storage: one SQLite file (stdlib sqlite3) in WAL mode, its schema, what it
accepts (names, metrics, tags) and lookups.

WAL lets readers run while one process writes; a busy timeout makes a second writer wait instead
of failing; every write begins with BEGIN IMMEDIATE so the write lock is taken before anything is
read (two processes can never read the same next version number).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from towerkit.core.errors import TowerkitError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SCHEMA = [
    """CREATE TABLE models (name TEXT PRIMARY KEY, next_version INTEGER NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE versions (
        name TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        version INTEGER NOT NULL, run_dir TEXT, model_dir TEXT NOT NULL, metrics TEXT NOT NULL,
        config_hash TEXT, data_fingerprint TEXT, git_commit TEXT, description TEXT NOT NULL,
        parent TEXT, created_at TEXT NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE model_tags (name TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key))""",
    """CREATE TABLE version_tags (name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL,
        value TEXT NOT NULL, PRIMARY KEY (name, version, key),
        FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE)""",
    """CREATE TABLE aliases (name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (name, alias),
        FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE)""",
    # the versions an alias pointed at before, newest last; rollback pops from the end. Deleting
    # a version drops it from here too, so a rollback never lands on a deleted version.
    """CREATE TABLE alias_history (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
        alias TEXT NOT NULL, version INTEGER NOT NULL,
        FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE)""",
]


def check_name(name: str, kind: str = "model") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TowerkitError(
            f"registry: bad {kind} name {name!r} (expected up to 128 letters, digits, '-', '_', "
            "'.', not starting with '-' or '.')"
        )
    return name


def check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if alias.isdigit() or alias.lower() == "latest":
        raise TowerkitError(f"registry: bad alias name {alias!r} (cannot be a number or 'latest')")
    return alias


def clean_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    cleaned: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            if not isinstance(key, str) or not key or isinstance(value, bool | str):
                raise TypeError
            cleaned[key] = float(value)
        except (TypeError, ValueError):
            raise TowerkitError(
                f"registry: metric {key!r} = {value!r} is not a number (metrics map names to floats)"
            ) from None
    return cleaned


def check_tag(key: str, value: str) -> None:
    if not isinstance(key, str) or not key.strip() or len(key) > 250:
        raise TowerkitError(f"registry: bad tag key {key!r} (expected 1-250 characters)")
    if not isinstance(value, str):
        raise TowerkitError(f"registry: tag {key!r} value {value!r} is not a string")


class RegistryDB:
    """Opens one connection per call, so one instance is safe across threads and forks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit); sqlite3 errors become
        one-line TowerkitErrors naming the file."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise TowerkitError(f"registry: cannot open '{self.path}': {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise TowerkitError(
                    f"registry: '{self.path}' is not a SQLite database (corrupt or another kind "
                    "of file); move it aside or pass another --db"
                ) from exc
            raise TowerkitError(f"registry: database '{self.path}': {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A write takes the lock at BEGIN; a read sees one consistent snapshot."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the file
            conn.execute("BEGIN IMMEDIATE")
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                conn.execute("ROLLBACK")
                raise TowerkitError(
                    f"registry: '{self.path}' is a SQLite database but not a towerkit registry; "
                    "pass another --db"
                )
            if found == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        if found > SCHEMA_VERSION:
            raise TowerkitError(
                f"registry: '{self.path}' has schema version {found}, newer than this towerkit "
                f"understands ({SCHEMA_VERSION}); upgrade towerkit"
            )

    def journal_mode(self) -> str:
        with self.connect() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def format_versions(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


def model_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM models ORDER BY name")]


def require_model(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
        names = model_names(conn)
        known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        where = f"(models: {known})" if names else "(the registry is empty)"
        raise TowerkitError(f"registry: no model '{name}' {where}")


def version_numbers(conn: sqlite3.Connection, name: str) -> list[int]:
    rows = conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))
    return [r[0] for r in rows]


def latest_version(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT max(version) FROM versions WHERE name = ?", (name,)).fetchone()
    return None if row[0] is None else int(row[0])


def require_version(conn: sqlite3.Connection, name: str, version: int) -> None:
    found = "SELECT 1 FROM versions WHERE name = ? AND version = ?"
    if conn.execute(found, (name, version)).fetchone() is None:
        require_model(conn, name)
        numbers = version_numbers(conn, name)
        raise TowerkitError(
            f"registry: model '{name}' has no version {version} "
            f"(versions: {format_versions(numbers)})"
        )


def aliases_of(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
    return {r["alias"]: r["version"] for r in rows}


def require_alias(conn: sqlite3.Connection, name: str, alias: str) -> int:
    require_model(conn, name)
    aliases = aliases_of(conn, name)
    if alias not in aliases:
        raise TowerkitError(
            f"registry: model '{name}' has no alias '{alias}' "
            f"(aliases: {', '.join(aliases) or 'none'})"
        )
    return aliases[alias]


def upsert_alias(conn: sqlite3.Connection, name: str, alias: str, version: int) -> None:
    conn.execute(
        "INSERT INTO aliases VALUES (?, ?, ?) "
        "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        (name, alias, version),
    )


def push_history(conn: sqlite3.Connection, name: str, alias: str, version: int) -> None:
    conn.execute(
        "INSERT INTO alias_history (name, alias, version) VALUES (?, ?, ?)", (name, alias, version)
    )


def pop_history(conn: sqlite3.Connection, name: str, alias: str) -> int | None:
    """Remove and return the newest earlier version of ``alias``, or None when there is none."""
    row = conn.execute(
        "SELECT id, version FROM alias_history WHERE name = ? AND alias = ? "
        "ORDER BY id DESC LIMIT 1",
        (name, alias),
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM alias_history WHERE id = ?", (row["id"],))
    return int(row["version"])


def history_of(conn: sqlite3.Connection, name: str, alias: str) -> list[int]:
    rows = conn.execute(
        "SELECT version FROM alias_history WHERE name = ? AND alias = ? ORDER BY id", (name, alias)
    )
    return [r[0] for r in rows]

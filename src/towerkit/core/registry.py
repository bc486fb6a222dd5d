"""Model registry after MLflow's: registered models -> integer versions -> aliases and tags.

One SQLite file (stdlib sqlite3, WAL) so training jobs on one machine can register at the same time
without a server. Every write takes the database's write lock up front (BEGIN IMMEDIATE), so two
processes can never read the same next version number. Written on sqlite3 rather than MLflow's
registry because that needs a tracking server or SQLAlchemy + alembic migrations for one small
file, and has no alias history to roll back with.

References: ``name`` (alias ``production`` if set, else the latest version), ``name/3``,
``name@alias`` and ``name@latest``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType

from towerkit.core import registry_db as db
from towerkit.core.errors import TowerkitError
from towerkit.core.fingerprint import data_fingerprint
from towerkit.core.paths import towerkit_home

__all__ = [
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "data_fingerprint",
    "detect_git_commit",
    "parse_ref",
]

DEFAULT_ALIAS = "production"
_REF_RE = re.compile(r"(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_dir: str | None
    model_dir: str
    metrics: dict[str, float]
    config_hash: str | None
    data_fingerprint: str | None
    git_commit: str | None
    tags: dict[str, str]
    aliases: list[str]
    description: str
    parent: str | None  # "name/3" this version was derived from
    created_at: str  # ISO 8601, UTC

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """One row of ``ModelRegistry.models()``: a model with its versions, aliases and tags."""

    name: str
    versions: list[int]
    aliases: dict[str, int]
    tags: dict[str, str]
    created_at: str
    latest: int | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "latest", max(self.versions) if self.versions else None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``name`` -> (name, None, None); ``name/3`` -> (name, 3, None); ``name@a`` -> (name, None, a)."""
    match = _REF_RE.fullmatch(ref.strip())
    version = match["version"] if match else None
    if match is None or (version is not None and not (version.isdigit() and int(version) > 0)):
        raise TowerkitError(
            f"registry: bad model reference {ref!r} (expected NAME, NAME/VERSION, NAME@ALIAS "
            "or NAME@latest)"
        )
    alias = match["alias"]
    if alias is not None and alias != "latest":
        db.check_alias(alias)
    return db.check_name(match["name"]), int(version) if version else None, alias


def detect_git_commit(directory: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository around ``directory`` (default: the working
    directory), with ``-dirty`` appended when tracked files differ from it (as ``git describe
    --dirty`` does: the commit alone would not reproduce the model); None outside a repository
    or without git."""
    commit = _git_output(directory, "rev-parse", "HEAD")
    if commit is None or not re.fullmatch(r"[0-9a-f]{40,64}", commit):
        return None
    changes = _git_output(directory, "status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changes else commit


def _git_output(directory: str | Path | None, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _existing_dir(path: str | Path, what: str) -> str:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise TowerkitError(f"registry: {what} '{path}' is not a directory")
    return str(resolved)


class ModelRegistry:
    """The registry in one SQLite file; each call opens its own connection, so an instance is
    safe to share between threads and to create before forking."""

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.db_path = Path(db_path).expanduser() if db_path else towerkit_home() / "registry.db"
        self._db = db.RegistryDB(self.db_path)

    def journal_mode(self) -> str:
        """SQLite's journal mode for this file ("wal")."""
        return self._db.journal_mode()

    def _load(self, conn: sqlite3.Connection, name: str, version: int | None) -> list[ModelVersion]:
        where, args = (
            ("name = ?", (name,))
            if version is None
            else ("name = ? AND version = ?", (name, version))
        )
        rows = conn.execute(
            f"SELECT * FROM versions WHERE {where} ORDER BY version", args
        ).fetchall()
        tags: dict[int, dict[str, str]] = {}
        for r in conn.execute(f"SELECT * FROM version_tags WHERE {where} ORDER BY key", args):
            tags.setdefault(r["version"], {})[r["key"]] = r["value"]
        aliases: dict[int, list[str]] = {}
        for alias, number in db.aliases_of(conn, name).items():
            aliases.setdefault(number, []).append(alias)
        return [
            ModelVersion(
                **{k: r[k] for k in r.keys() if k != "metrics"},  # noqa: SIM118 (Row iterates values)
                metrics=json.loads(r["metrics"]),
                tags=tags.get(r["version"], {}),
                aliases=aliases.get(r["version"], []),
            )
            for r in rows
        ]

    def _resolve(self, conn: sqlite3.Connection, ref: str) -> ModelVersion:
        name, version, alias = parse_ref(ref)
        db.require_model(conn, name)
        if version is None and alias is None and DEFAULT_ALIAS in db.aliases_of(conn, name):
            alias = DEFAULT_ALIAS
        if alias is not None and alias != "latest":
            version = db.require_alias(conn, name, alias)
        if version is None:
            version = db.latest_version(conn, name)
            if version is None:
                raise TowerkitError(f"registry: model '{name}' has no versions left")
        db.require_version(conn, name, version)
        return self._load(conn, name, version)[0]

    # -- public API -----------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_dir: str | Path,
        *,
        run_dir: str | Path | None = None,
        metrics: Mapping[str, float] | None = None,
        config_hash: str | None = None,
        data_fingerprint: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        parent: str | None = None,
        git_commit: str | EllipsisType | None = ...,
    ) -> ModelVersion:
        """Add the next version of ``name`` (created on first use). ``parent`` is any reference
        (``base/2``, ``base@production``) and is stored resolved, as ``name/version``.
        ``git_commit=...`` detects the working directory's commit; pass None to record none."""
        db.check_name(name)
        model_path = _existing_dir(model_dir, "model directory")
        run_path = _existing_dir(run_dir, "run directory") if run_dir is not None else None
        metric_values = json.dumps(db.clean_metrics(metrics), sort_keys=True)
        for key, value in (tags or {}).items():
            db.check_tag(key, value)
        commit = detect_git_commit() if git_commit is ... else git_commit
        with self._db.transaction(write=True) as conn:
            parent_uri = self._resolve(conn, parent).uri if parent else None
            conn.execute(
                "INSERT INTO models (name, next_version, created_at) VALUES (?, 1, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, _now()),
            )
            row = conn.execute("SELECT next_version FROM models WHERE name = ?", (name,)).fetchone()
            version = int(row[0])
            conn.execute("UPDATE models SET next_version = ? WHERE name = ?", (version + 1, name))
            conn.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    run_path,
                    model_path,
                    metric_values,
                    config_hash,
                    data_fingerprint,
                    commit,
                    description,
                    parent_uri,
                    _now(),
                ),
            )
            conn.executemany(
                "INSERT INTO version_tags VALUES (?, ?, ?, ?)",
                [(name, version, k, v) for k, v in (tags or {}).items()],
            )
            return self._load(conn, name, version)[0]

    def get(self, name: str, version: int) -> ModelVersion:
        with self._db.transaction(write=False) as conn:
            db.require_version(conn, name, version)
            return self._load(conn, name, version)[0]

    def resolve(self, ref: str) -> ModelVersion:
        """``name`` (alias production if set, else latest), ``name/3``, ``name@alias``,
        ``name@latest``."""
        with self._db.transaction(write=False) as conn:
            return self._resolve(conn, ref)

    def list_models(self) -> list[str]:
        """Model names, sorted. ``models()`` gives whole rows."""
        with self._db.transaction(write=False) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM models ORDER BY name")]

    def models(self) -> list[RegisteredModel]:
        with self._db.transaction(write=False) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM models ORDER BY name")]
            return [self._model_row(conn, name) for name in names]

    def get_model(self, name: str) -> RegisteredModel:
        with self._db.transaction(write=False) as conn:
            db.require_model(conn, name)
            return self._model_row(conn, name)

    def _model_row(self, conn: sqlite3.Connection, name: str) -> RegisteredModel:
        created = conn.execute("SELECT created_at FROM models WHERE name = ?", (name,)).fetchone()
        tags = conn.execute(
            "SELECT key, value FROM model_tags WHERE name = ? ORDER BY key", (name,)
        )
        return RegisteredModel(
            name=name,
            versions=db.version_numbers(conn, name),
            aliases=db.aliases_of(conn, name),
            tags={r["key"]: r["value"] for r in tags},
            created_at=created[0],
        )

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._db.transaction(write=False) as conn:
            db.require_model(conn, name)
            return self._load(conn, name, None)

    def lineage(self, ref: str) -> list[str]:
        """The chain of parents of ``ref``, nearest first; a deleted parent ends the chain."""
        chain: list[str] = []
        with self._db.transaction(write=False) as conn:
            parent = self._resolve(conn, ref).parent
            while parent is not None and parent not in chain:
                chain.append(parent)
                name, version, _ = parse_ref(parent)
                found = self._load(conn, name, version)
                parent = found[0].parent if found else None
        return chain

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version``; the version it pointed at before is kept for rollback."""
        db.check_alias(alias)
        with self._db.transaction(write=True) as conn:
            db.require_version(conn, name, version)
            current = db.aliases_of(conn, name).get(alias)
            if current == version:
                return
            if current is not None:
                db.push_history(conn, name, alias, current)
            db.upsert_alias(conn, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; ``rollback`` brings it back to the version it pointed at."""
        with self._db.transaction(write=True) as conn:
            version = db.require_alias(conn, name, alias)
            db.push_history(conn, name, alias, version)
            conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))

    def alias_history(self, name: str, alias: str) -> list[int]:
        """Versions ``alias`` pointed at before, oldest first (rollback takes the last)."""
        with self._db.transaction(write=False) as conn:
            db.require_model(conn, name)
            return db.history_of(conn, name, alias)

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before; again goes one more step."""
        db.check_alias(alias)
        with self._db.transaction(write=True) as conn:
            db.require_model(conn, name)
            current = db.aliases_of(conn, name).get(alias)
            previous = db.pop_history(conn, name, alias)
            while previous is not None and previous == current:  # history may repeat it
                previous = db.pop_history(conn, name, alias)
            if previous is None and current is None:
                db.require_alias(conn, name, alias)  # raises, naming the known aliases
            if previous is None:
                raise TowerkitError(
                    f"registry: alias '{name}@{alias}' has no earlier version to roll back to "
                    f"(it points at version {current})"
                )
            db.upsert_alias(conn, name, alias, previous)
            return self._load(conn, name, previous)[0]

    def set_tag(self, name: str, version: int | None, key: str, value: str) -> None:
        """Tag a version, or the model itself when ``version`` is None."""
        db.check_tag(key, value)
        with self._db.transaction(write=True) as conn:
            if version is None:
                db.require_model(conn, name)
                conn.execute(
                    "INSERT OR REPLACE INTO model_tags VALUES (?, ?, ?)", (name, key, value)
                )
            else:
                db.require_version(conn, name, version)
                conn.execute(
                    "INSERT OR REPLACE INTO version_tags VALUES (?, ?, ?, ?)",
                    (name, version, key, value),
                )

    def delete_tag(self, name: str, version: int | None, key: str) -> None:
        args: list[object]
        with self._db.transaction(write=True) as conn:
            if version is None:
                db.require_model(conn, name)
                table, args = "model_tags WHERE name = ?", [name, key]
            else:
                db.require_version(conn, name, version)
                table, args = "version_tags WHERE name = ? AND version = ?", [name, version, key]
            if conn.execute(f"DELETE FROM {table} AND key = ?", args).rowcount == 0:
                where = name if version is None else f"{name}/{version}"
                raise TowerkitError(f"registry: '{where}' has no tag '{key}'")

    def delete_version(self, name: str, version: int) -> None:
        """Delete one version with its tags, the aliases on it and its place in alias histories.
        Its number is never given out again."""
        with self._db.transaction(write=True) as conn:
            db.require_version(conn, name, version)
            conn.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))

    def delete_model(self, name: str) -> None:
        """Delete a model and everything under it; registering the name again starts at 1."""
        with self._db.transaction(write=True) as conn:
            db.require_model(conn, name)
            conn.execute("DELETE FROM models WHERE name = ?", (name,))

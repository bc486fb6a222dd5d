"""The SQLite model registry: versions, resolve forms, aliases + rollback, tags, lineage, deletes,
git detection, WAL, bad database files and registration from 8 processes at once."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from towerkit.core.errors import TowerkitError
from towerkit.core.registry import ModelRegistry, detect_git_commit, parse_ref


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOWERKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture
def registry(home: Path, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry.db")


def _register_n(registry: ModelRegistry, name: str, model_dir: Path, n: int) -> None:
    for i in range(n):
        registry.register(name, model_dir, metrics={"step": i}, git_commit=None)


def test_default_database_lives_in_towerkit_home(home: Path, model_dir: Path) -> None:
    registry = ModelRegistry()
    registry.register("m", model_dir, git_commit=None)
    assert registry.db_path == home / "registry.db"
    assert ModelRegistry(home / "registry.db").list_models() == ["m"]


def test_wal_mode_is_on_and_stored_in_the_file(registry: ModelRegistry) -> None:
    assert registry.journal_mode() == "wal"
    with sqlite3.connect(registry.db_path) as conn:  # a plain connection sees it too
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_register_records_every_field(registry: ModelRegistry, model_dir: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = registry.register(
        "two-tower",
        model_dir,
        run_dir=run_dir,
        metrics={"recall@10": 0.25, "epochs": 3},
        config_hash="abc123",
        data_fingerprint="f" * 64,
        tags={"owner": "rec"},
        description="first try",
        git_commit="0" * 40,
    )
    assert (first.name, first.version, first.uri) == ("two-tower", 1, "two-tower/1")
    assert first.model_dir == str(model_dir.resolve())
    assert first.run_dir == str(run_dir.resolve())
    assert first.metrics == {"recall@10": 0.25, "epochs": 3.0}
    assert isinstance(first.metrics["epochs"], float)
    assert (first.config_hash, first.data_fingerprint) == ("abc123", "f" * 64)
    assert (first.git_commit, first.tags, first.aliases) == ("0" * 40, {"owner": "rec"}, [])
    assert (first.description, first.parent) == ("first try", None)
    assert datetime.fromisoformat(first.created_at).tzinfo is not None
    assert registry.get("two-tower", 1) == first
    second = registry.register("two-tower", model_dir, git_commit=None)
    assert second.version == 2
    assert (second.run_dir, second.metrics, second.tags, second.description) == (None, {}, {}, "")
    assert [v.version for v in registry.list_versions("two-tower")] == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "has space"}, "bad model name 'has space'"),
        ({"name": "-dash"}, "bad model name '-dash'"),
        ({"name": "a/b"}, "bad model name 'a/b'"),
        ({"metrics": {"acc": "high"}}, "metric 'acc' = 'high' is not a number"),
        ({"tags": {"k": 3}}, "tag 'k' value 3 is not a string"),
        ({"model_dir": "missing"}, "model directory 'missing' is not a directory"),
        ({"run_dir": "nowhere"}, "run directory 'nowhere' is not a directory"),
        ({"parent": "base/1"}, "no model 'base' (the registry is empty)"),
    ],
)
def test_register_rejects_bad_input_and_writes_nothing(
    registry: ModelRegistry, model_dir: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"name": "m", "model_dir": model_dir, "git_commit": None, **kwargs}
    with pytest.raises(TowerkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.register(args.pop("name"), args.pop("model_dir"), **args)
    assert registry.list_models() == []


def test_version_numbers_are_never_reused(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "m", model_dir, 3)
    registry.delete_version("m", 3)
    registry.delete_version("m", 2)
    assert registry.register("m", model_dir, git_commit=None).version == 4
    assert [v.version for v in registry.list_versions("m")] == [1, 4]
    with pytest.raises(TowerkitError) as err:
        registry.get("m", 2)
    assert str(err.value) == "registry: model 'm' has no version 2 (versions: 1, 4)"
    registry.delete_version("m", 1)
    registry.delete_version("m", 4)
    assert registry.get_model("m").versions == []
    with pytest.raises(TowerkitError, match="registry: model 'm' has no versions left"):
        registry.resolve("m")
    assert registry.register("m", model_dir, git_commit=None).version == 5


def test_resolve_forms(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "m", model_dir, 3)
    assert registry.resolve("m").version == 3  # no production alias: latest
    assert registry.resolve("m@latest").version == 3
    assert registry.resolve("m/2").version == 2
    registry.set_alias("m", "production", 1)
    registry.set_alias("m", "staging", 2)
    assert registry.resolve("m").version == 1  # production wins over latest
    assert registry.resolve("m@production").version == 1
    assert registry.resolve("m@staging").version == 2
    assert registry.resolve("m@latest").version == 3
    assert registry.resolve("m/3").aliases == []
    assert registry.resolve("m/1").aliases == ["production"]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("m/7", "registry: model 'm' has no version 7 (versions: 1-3)"),
        ("x", "registry: no model 'x' (models: m)"),
        ("m@canary", "registry: model 'm' has no alias 'canary' (aliases: none)"),
        ("m/0", "registry: bad model reference 'm/0'"),
        ("m/two", "registry: bad model reference 'm/two'"),
        ("m@", "registry: bad model reference 'm@'"),
        ("a/b/c", "registry: bad model reference 'a/b/c'"),
        ("m@3", "registry: bad alias name '3'"),
    ],
)
def test_resolve_errors_name_what_is_missing(
    registry: ModelRegistry, model_dir: Path, ref: str, message: str
) -> None:
    _register_n(registry, "m", model_dir, 3)
    with pytest.raises(TowerkitError) as err:
        registry.resolve(ref)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_parse_ref() -> None:
    assert parse_ref("m") == ("m", None, None)
    assert parse_ref("m.v2_x-y/12") == ("m.v2_x-y", 12, None)
    assert parse_ref("m@prod") == ("m", None, "prod")
    assert parse_ref("m@latest") == ("m", None, "latest")


@pytest.mark.parametrize("alias", ["3", "latest", "LATEST", "has space", "", "a@b"])
def test_alias_names_are_validated(registry: ModelRegistry, model_dir: Path, alias: str) -> None:
    _register_n(registry, "m", model_dir, 1)
    with pytest.raises(TowerkitError, match="registry: bad alias name"):
        registry.set_alias("m", alias, 1)
    assert registry.get_model("m").aliases == {}
    with pytest.raises(TowerkitError, match=r"model 'm' has no version 5 \(versions: 1\)"):
        registry.set_alias("m", "production", 5)


def test_rollback_goes_back_one_step_each_time(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "m", model_dir, 3)
    for version in (1, 2, 2, 3):  # setting the same version again adds no history
        registry.set_alias("m", "production", version)
    assert registry.alias_history("m", "production") == [1, 2]
    assert registry.rollback("m").version == 2
    assert registry.resolve("m@production").version == 2
    assert registry.rollback("m", "production").version == 1
    with pytest.raises(TowerkitError) as err:
        registry.rollback("m")
    assert str(err.value) == (
        "registry: alias 'm@production' has no earlier version to roll back to "
        "(it points at version 1)"
    )
    assert registry.resolve("m@production").version == 1  # the failed rollback changed nothing


def test_rollback_of_unknown_alias_names_the_known_ones(
    registry: ModelRegistry, model_dir: Path
) -> None:
    _register_n(registry, "m", model_dir, 2)
    registry.set_alias("m", "staging", 2)
    with pytest.raises(TowerkitError) as err:
        registry.rollback("m")
    assert str(err.value) == "registry: model 'm' has no alias 'production' (aliases: staging)"


def test_aliases_are_per_model(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "a", model_dir, 2)
    _register_n(registry, "b", model_dir, 2)
    registry.set_alias("a", "production", 1)
    registry.set_alias("b", "production", 2)
    registry.set_alias("a", "production", 2)
    assert registry.rollback("a").uri == "a/1"
    assert registry.resolve("b").uri == "b/2"
    assert registry.alias_history("b", "production") == []


def test_delete_alias_then_rollback_restores_it(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "m", model_dir, 2)
    registry.set_alias("m", "production", 2)
    registry.delete_alias("m", "production")
    assert registry.resolve("m").version == 2  # latest
    assert registry.get_model("m").aliases == {}
    with pytest.raises(TowerkitError, match="has no alias 'production'"):
        registry.delete_alias("m", "production")
    assert registry.rollback("m").version == 2
    assert registry.get_model("m").aliases == {"production": 2}


def test_delete_version_drops_its_aliases_and_its_place_in_history(
    registry: ModelRegistry, model_dir: Path
) -> None:
    _register_n(registry, "m", model_dir, 4)
    for version in (1, 2, 3):
        registry.set_alias("m", "production", version)
    registry.set_alias("m", "staging", 4)
    registry.delete_version("m", 2)
    assert registry.rollback("m").version == 1  # 2 is gone, so back past it
    registry.delete_version("m", 4)
    assert registry.get_model("m").aliases == {"production": 1}
    assert registry.resolve("m@latest").version == 3
    with pytest.raises(TowerkitError, match="has no alias 'staging'"):
        registry.resolve("m@staging")


def test_delete_model_removes_everything(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "m", model_dir, 2)
    _register_n(registry, "keep", model_dir, 1)
    registry.set_alias("m", "production", 2)
    registry.set_tag("m", None, "team", "rec")
    registry.delete_model("m")
    assert registry.list_models() == ["keep"]
    with pytest.raises(TowerkitError, match=r"registry: no model 'm' \(models: keep\)"):
        registry.get_model("m")
    with sqlite3.connect(registry.db_path) as conn:  # nothing left behind under the name
        for table in ("versions", "aliases", "alias_history", "model_tags", "version_tags"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE name = 'm'").fetchone() == (0,)
    assert registry.register("m", model_dir, git_commit=None).version == 1


def test_tags_on_versions_and_models(registry: ModelRegistry, model_dir: Path) -> None:
    registry.register("m", model_dir, tags={"stage": "dev"}, git_commit=None)
    _register_n(registry, "m", model_dir, 1)
    registry.set_tag("m", 1, "stage", "prod")
    registry.set_tag("m", 1, "owner", "ana")
    registry.set_tag("m", None, "team", "rec")
    assert registry.get("m", 1).tags == {"owner": "ana", "stage": "prod"}
    assert registry.get("m", 2).tags == {}
    assert registry.get_model("m").tags == {"team": "rec"}
    registry.delete_tag("m", 1, "owner")
    registry.delete_tag("m", None, "team")
    assert registry.get("m", 1).tags == {"stage": "prod"}
    assert registry.get_model("m").tags == {}
    with pytest.raises(TowerkitError, match="registry: 'm/1' has no tag 'owner'"):
        registry.delete_tag("m", 1, "owner")
    with pytest.raises(TowerkitError, match="model 'm' has no version 9"):
        registry.set_tag("m", 9, "k", "v")
    with pytest.raises(TowerkitError, match="bad tag key ''"):
        registry.set_tag("m", 1, "", "v")


def test_lineage_is_stored_resolved_and_followed(registry: ModelRegistry, model_dir: Path) -> None:
    _register_n(registry, "base", model_dir, 2)
    registry.set_alias("base", "production", 1)
    tuned = registry.register("tuned", model_dir, parent="base@production", git_commit=None)
    assert tuned.parent == "base/1"  # the alias is resolved when registering
    merged = registry.register("merged", model_dir, parent="tuned", git_commit=None)
    assert merged.parent == "tuned/1"
    assert registry.lineage("merged/1") == ["tuned/1", "base/1"]
    assert registry.lineage("base/1") == []
    registry.delete_version("base", 1)
    assert registry.lineage("merged") == ["tuned/1", "base/1"]  # a deleted parent ends the chain
    with pytest.raises(TowerkitError, match="model 'tuned' has no version 4"):
        registry.register("next", model_dir, parent="tuned/4", git_commit=None)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_git_commit_is_detected_from_the_working_directory(
    registry: ModelRegistry, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    assert registry.register("m", model_dir).git_commit == head
    assert registry.register("m", model_dir, git_commit=None).git_commit is None
    assert registry.register("m", model_dir, git_commit="f" * 40).git_commit == "f" * 40
    (repo / "train.py").write_text("print('changed')\n")  # a tracked file edited, not committed
    assert registry.register("m", model_dir).git_commit == f"{head}-dirty"
    (repo / "notes.txt").write_text("untracked\n")
    _git(repo, "checkout", "--", "train.py")  # untracked files alone leave it clean
    assert registry.register("m", model_dir).git_commit == head

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(outside)
    assert detect_git_commit() is None
    assert registry.register("m", model_dir).git_commit is None
    assert detect_git_commit(repo) == head


def test_corrupt_file_gives_one_readable_line(tmp_path: Path) -> None:
    bad = tmp_path / "registry.db"
    garbage = bytes(range(256)) * 32
    bad.write_bytes(garbage)
    with pytest.raises(TowerkitError) as err:
        ModelRegistry(bad)
    assert str(err.value) == (
        f"registry: '{bad}' is not a SQLite database (corrupt or another kind of file); "
        "move it aside or pass another --db"
    )
    assert bad.read_bytes() == garbage  # left as it was


def test_other_sqlite_database_is_not_taken_over(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE swipes (user INTEGER, item INTEGER)")
    with pytest.raises(TowerkitError, match="is a SQLite database but not a towerkit registry"):
        ModelRegistry(other)
    with sqlite3.connect(other) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["swipes"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    ModelRegistry(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(TowerkitError, match="schema version 99, newer than this towerkit"):
        ModelRegistry(path)


def _register_worker(db_path: str, model_dir: str, worker: int, count: int, start: Any, out: Any):
    registry = ModelRegistry(db_path)  # every worker also races to create the schema
    start.wait()
    versions: list[int] = []
    for i in range(count):
        # a parent makes each write transaction read before it writes
        parent = f"shared/{versions[-1]}" if versions else None
        mv = registry.register(
            "shared", model_dir, description=f"w{worker}-{i}", parent=parent, git_commit=None
        )
        versions.append(mv.version)
    out.put((worker, versions))


@pytest.mark.multiproc
@pytest.mark.timeout(180)
def test_eight_processes_register_at_once(tmp_path: Path, model_dir: Path) -> None:
    workers, per_worker = 8, 6
    db_path = tmp_path / "fresh" / "registry.db"  # does not exist yet
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(
            target=_register_worker,
            args=(str(db_path), str(model_dir), w, per_worker, start, out),
        )
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=150) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    total = workers * per_worker
    got = sorted(v for versions in results.values() for v in versions)
    assert got == list(range(1, total + 1))  # unique, consecutive, nothing lost
    stored = {v.version: v for v in ModelRegistry(db_path).list_versions("shared")}
    assert sorted(stored) == list(range(1, total + 1))
    for worker, versions in results.items():
        assert [stored[v].description for v in versions] == [
            f"w{worker}-{i}" for i in range(per_worker)
        ]
        parents = [stored[v].parent for v in versions]
        assert parents == [None] + [f"shared/{v}" for v in versions[:-1]]

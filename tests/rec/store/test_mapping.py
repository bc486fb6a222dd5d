"""YAML mappings: hostile identifiers refused, missing tables/columns named, other schemas read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from towerkit.cli import main
from towerkit.core.errors import ConfigError
from towerkit.rec.store import export_store, read_export
from towerkit.rec.store.engine import create_store_engine
from towerkit.rec.store.schema import DefaultTables

DATING = Path(__file__).resolve().parents[3] / "configs" / "rec" / "schema-dating.yaml"
DEFAULT = DATING.with_name("schema-default.yaml")


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


def _rows(engine: Engine, schema: str | None = None) -> int:
    table = DefaultTables(schema).interactions
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


HOSTILE = [
    ("users:\n  table: 'users; DROP TABLE interactions; --'\n", "users.table"),
    ("items:\n  table: items\n  id: 'id\" OR 1=1 --'\n", "items.id"),
    ("interactions:\n  created_at: 'created_at) --'\n", "interactions.created_at"),
    ("users:\n  table: users\n  features: {'age; --': numeric}\n", "users.features.age; --"),
    ("schema: 'public; DROP SCHEMA public'\n", "schema"),
    ("users:\n  table: 9lives\n", "users.table"),
]


@pytest.mark.parametrize(("text", "key"), HOSTILE)
def test_hostile_identifiers_are_refused_before_any_sql(
    sqlite_store: Engine, tmp_path: Path, text: str, key: str
) -> None:
    mapping = _mapping(tmp_path, text)
    with pytest.raises(ConfigError, match=f"key '{key}': .* is not a plain identifier") as caught:
        export_store(sqlite_store, tmp_path / "out", mapping=mapping)
    assert str(caught.value).startswith(f"mapping {mapping}: key '{key}'")
    assert _rows(sqlite_store) == 4000  # nothing ran
    assert not (tmp_path / "out").exists()


def test_hostile_table_name_on_postgres_via_the_cli(
    pg_store: tuple[Engine, str], pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, schema = pg_store
    mapping = _mapping(tmp_path, 'interactions:\n  table: "interactions; DROP TABLE users"\n')
    argv = ["rec", "export", "--db", pg_url, "--schema", schema, "--out", str(tmp_path / "o")]
    assert main([*argv, "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: mapping {mapping}: key 'interactions.table': ")
    assert err.count("\n") == 1
    assert _rows(engine, schema) == 4000


def test_action_values_are_bound_parameters(sqlite_store: Engine, tmp_path: Path) -> None:
    mapping = _mapping(
        tmp_path, "interactions:\n  actions: {like: \"like' OR '1'='1\", pass: pass}\n"
    )
    result = export_store(sqlite_store, tmp_path / "out", mapping=mapping)
    actions = read_export(tmp_path / "out").interactions["action"].unique().to_list()
    assert actions == ["pass"] and 0 < result.new_rows < 4000  # the quote matched nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "users:\n  table: profiles\n",
            "key 'users.table': no table 'profiles' (tables: interactions, items, users)",
        ),
        (
            "users:\n  table: users\n  features: {height: numeric}\n",
            "key 'users.features.height': table 'users' has no column 'height' "
            "(columns: id, age, gender, occupation, zip_prefix)",
        ),
        (
            "interactions:\n  viewer_id: swiper_id\n",
            "key 'interactions.viewer_id': table 'interactions' has no column 'swiper_id'",
        ),
        (
            "interactions:\n  created_at: action\n",
            "key 'interactions.created_at': column 'action' of 'interactions' is VARCHAR(16), "
            "expected a timestamp",
        ),
        ("interactions:\n  actions: {superlike: s}\n", "key 'interactions.actions': 'superlike'"),
        ("users:\n  table: users\n  features: {age: number}\n", "key 'users.features.age'"),
        ("users:\n  table: users\n  colour: blue\n", "unknown key 'users.colour'"),
    ],
)
def test_missing_tables_and_columns_name_the_key(
    sqlite_store: Engine, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        export_store(sqlite_store, tmp_path / "out", mapping=_mapping(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_cli_missing_table_and_schema_exit_2(
    pg_store: tuple[Engine, str], pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    assert main(["rec", "export", "--db", pg_url, "--schema", "tk_absent", "--out", out]) == 2
    assert "default mapping: key 'schema': no schema 'tk_absent'" in capsys.readouterr().err
    mapping = _mapping(tmp_path, "items:\n  table: movies\n")
    _, schema = pg_store
    argv = ["rec", "export", "--db", pg_url, "--schema", schema, "--out", out]
    assert main([*argv, "--mapping", str(mapping)]) == 2
    assert "key 'items.table': no table 'movies' in schema" in capsys.readouterr().err
    mapping = _mapping(tmp_path, "interactions:\n  target_id: movie_id\n")
    assert main([*argv, "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert "key 'interactions.target_id': table 'interactions' has no column 'movie_id'" in err
    assert err.count("\n") == 1


def test_default_mapping_file_equals_the_built_in_default(
    sqlite_store: Engine, tmp_path: Path
) -> None:
    export_store(sqlite_store, tmp_path / "a")
    export_store(sqlite_store, tmp_path / "b", mapping=DEFAULT)
    a, b = read_export(tmp_path / "a"), read_export(tmp_path / "b")
    assert a.interactions.equals(b.interactions) and a.items.equals(b.items)
    assert a.kinds == b.kinds


# --- a dating app: profiles are both users and items, swipes right/left/match ------------------


def _dating_tables(postgres: bool, schema: str | None) -> tuple[MetaData, Table, Table]:
    metadata = MetaData(schema=schema)
    profile_id = UUID(as_uuid=True) if postgres else String(36)
    profiles = Table(
        "profiles",
        metadata,
        Column("id", profile_id, primary_key=True),
        Column("age", Integer),
        Column("gender", Text),
        Column("looking_for", Text),
        Column("city", Text),
        Column("bio", Text),
        Column("interests", ARRAY(Text) if postgres else Text),
    )
    swipes = Table(
        "swipes",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True),
        Column("swiper_id", profile_id, nullable=False),
        Column("swipee_id", profile_id, nullable=False),
        Column("direction", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    return metadata, profiles, swipes


def _fill_dating(engine: Engine, postgres: bool, schema: str | None) -> list[str]:
    metadata, profiles, swipes = _dating_tables(postgres, schema)
    metadata.create_all(engine)
    ids = [uuid.UUID(int=n) for n in range(1, 4)]
    interests = [["hiking", "jazz"], [], None]
    people = [
        {"id": i if postgres else str(i), "age": 30 + n, "gender": "f" if n else "m",
         "looking_for": "any", "city": "Lyon", "bio": f"bio {n}",
         "interests": (tags if postgres or tags is None else "|".join(tags))}
        for n, (i, tags) in enumerate(zip(ids, interests, strict=True))
    ]  # fmt: skip
    key = (lambda i: i) if postgres else str
    start = datetime(2025, 2, 14, 20, 0, tzinfo=UTC)
    swiped = [
        (0, 1, "right"), (1, 0, "right"), (0, 1, "match"), (2, 0, "left"), (2, 1, "superlike"),
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(profiles), people)
        conn.execute(
            insert(swipes),
            [
                {"swiper_id": key(ids[a]), "swipee_id": key(ids[b]), "direction": d,
                 "created_at": start + timedelta(minutes=n)}
                for n, (a, b, d) in enumerate(swiped)
            ],
        )  # fmt: skip
    return [str(i) for i in ids]


def _check_dating_export(out: Path, ids: list[str]) -> None:
    data = read_export(out)
    inter = data.interactions
    assert inter["action"].to_list() == ["like", "like", "match", "pass"]  # superlike skipped
    assert inter["viewer_id"].to_list() == [ids[0], ids[1], ids[0], ids[2]]
    assert inter["target_id"].to_list() == [ids[1], ids[0], ids[1], ids[0]]
    assert data.users.drop("user_id").equals(data.items.drop("item_id"))
    assert data.users["user_id"].to_list() == ids
    assert data.users["interests"].to_list() == [["hiking", "jazz"], [], []]
    assert data.users.schema["age"] == pl.Float64
    assert data.kinds["users"]["bio"] == "text"
    assert data.kinds["items"]["interests"] == "multi_categorical"


def test_dating_schema_on_sqlite(tmp_path: Path) -> None:
    engine = create_store_engine(str(tmp_path / "app.db"))
    ids = _fill_dating(engine, postgres=False, schema=None)
    export_store(engine, tmp_path / "out", mapping=DATING)
    _check_dating_export(tmp_path / "out", ids)


def test_dating_schema_on_postgres_with_uuid_and_text_array(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    engine = create_store_engine(pg_url)
    ids = _fill_dating(engine, postgres=True, schema=pg_schema)
    argv = ["rec", "export", "--db", pg_url, "--schema", pg_schema, "--mapping", str(DATING)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    _check_dating_export(tmp_path / "out", ids)
    engine.dispose()

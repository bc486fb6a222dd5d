from __future__ import annotations

from pathlib import Path

import pytest

from towerkit.core.io import atomic_dir, atomic_path, write_json_atomic


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_whole_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_write_json_atomic(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": 1, "a": 0.5})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 0.5,\n  "b": 1\n}\n'


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "m.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_atomic_dir_gets_the_permissions_of_a_plain_mkdir(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "weights.bin").write_bytes(b"1")
        os.mkdir(tmp_path / "plain")
    finally:
        os.umask(old)
    mode = (tmp_path / "model").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_the_umask_is_read_without_changing_it(mask: int) -> None:
    import os

    from towerkit.core.io import _umask

    old = os.umask(mask)
    try:
        assert _umask() == mask
        assert os.umask(mask) == mask  # still in force after the read
    finally:
        os.umask(old)


def test_the_umask_fallback_without_proc_puts_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from towerkit.core.io import _umask

    def no_proc(self: Path, *args: object, **kwargs: object) -> str:
        raise OSError("no /proc here")

    monkeypatch.setattr(Path, "read_text", no_proc)
    old = os.umask(0o027)
    try:
        assert _umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_read_json_object_names_the_file_and_what_was_expected(tmp_path: Path) -> None:
    from towerkit.core.errors import TowerkitError
    from towerkit.core.io import read_json_object

    path = tmp_path / "info.json"
    path.write_text("{oops")
    with pytest.raises(TowerkitError, match=r"info\.json: not valid JSON .*; run it again"):
        read_json_object(path, "run it again")
    path.write_text("[1, 2]")
    with pytest.raises(TowerkitError, match=r"info\.json: expected a JSON object, got list"):
        read_json_object(path)
    with pytest.raises(TowerkitError, match=r"absent\.json: not found"):
        read_json_object(tmp_path / "absent.json")
    path.write_text('{"a": 1}')
    assert read_json_object(path) == {"a": 1}


def test_read_parquet_turns_an_empty_or_corrupt_file_into_one_line(tmp_path: Path) -> None:
    import polars as pl

    from towerkit.core.errors import TowerkitError
    from towerkit.core.io import read_parquet

    empty, junk, good = tmp_path / "empty.parquet", tmp_path / "junk.parquet", tmp_path / "ok.pq"
    empty.write_bytes(b"")
    junk.write_text("not parquet at all")
    for path in (empty, junk):
        with pytest.raises(TowerkitError, match=rf"{path.name}: not a readable Parquet file") as e:
            read_parquet(path, "export again")
        assert "\n" not in str(e.value) and str(e.value).endswith("; export again")
    pl.DataFrame({"a": [1, 2]}).write_parquet(good)
    assert read_parquet(good)["a"].to_list() == [1, 2]

"""data_fingerprint: same data -> same hash wherever it lives; any change -> a different hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from towerkit.core.errors import TowerkitError
from towerkit.core.fingerprint import data_fingerprint
from towerkit.core.registry import data_fingerprint as exported


def _dataset(root: Path) -> Path:
    data = root / "ml"
    (data / "split").mkdir(parents=True)
    (data / "ratings.csv").write_bytes(b"user,item,rating\n" + b"1,2,5\n" * 500_000)  # 3 MiB
    (data / "split" / "test.csv").write_text("1,3\n")
    return data


def test_same_data_elsewhere_has_the_same_fingerprint(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "a")
    copy = tmp_path / "b" / "ml"
    shutil.copytree(data, copy)
    fingerprint = data_fingerprint([data])
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert data_fingerprint([copy]) == fingerprint
    assert exported is data_fingerprint


def test_one_changed_byte_at_the_end_of_a_large_file_changes_it(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    before = data_fingerprint([data])
    big = data / "ratings.csv"
    content = bytearray(big.read_bytes())
    content[-2] = ord("4")  # same size, last row's rating
    big.write_bytes(bytes(content))
    assert data_fingerprint([data]) != before
    content[-2] = ord("5")  # the byte back: the content decides, not the file's mtime
    big.write_bytes(bytes(content))
    assert data_fingerprint([data]) == before


def test_names_and_extra_files_count(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    before = data_fingerprint([data])
    (data / "split" / "test.csv").rename(data / "split" / "valid.csv")
    renamed = data_fingerprint([data])
    assert renamed != before
    (data / "extra.txt").write_text("")
    assert data_fingerprint([data]) != renamed
    (data / "extra.txt").unlink()
    assert data_fingerprint([data]) == renamed
    (data / "split" / "valid.csv").rename(data / "split" / "test.csv")
    assert data_fingerprint([data]) == before


def test_order_of_paths_does_not_matter(tmp_path: Path) -> None:
    first, second = tmp_path / "users.csv", tmp_path / "items.csv"
    first.write_text("u\n1\n")
    second.write_text("i\n2\n")
    assert data_fingerprint([first, second]) == data_fingerprint([second, first])
    assert data_fingerprint([first]) != data_fingerprint([first, second])


def test_missing_path_and_no_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match=r"data_fingerprint: '.*nope' does not exist"):
        data_fingerprint([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TowerkitError, match="no files found"):
        data_fingerprint([tmp_path / "empty"])

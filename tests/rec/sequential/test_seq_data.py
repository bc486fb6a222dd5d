"""Loaders for each format, k-core, id maps, chronological order, leave-one-out, item text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from towerkit.core.asset_sources import shared_root
from towerkit.core.errors import TowerkitError
from towerkit.rec.sequential.data import SeqDataset, build_dataset, item_text, k_core
from towerkit.rec.sequential.formats import read_source

AMAZON = shared_root() / "data" / "amazon" / "Musical_Instruments_5.json"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_seqfile_order_split_and_maps(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "u2 b c a d\nu1 a b c\n10 a\n")
    data = build_dataset(read_source("seqfile", path), "toy", user_core=1, item_core=1)
    # user "10" has one item: dropped (needs train, valid, test); ids in natural order
    assert data.user_ids == ["u1", "u2"]
    assert data.item_ids == ["<pad>", "a", "b", "c", "d"]
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3], [2, 3, 1, 4]]
    assert data.train_sequence(1).tolist() == [2, 3]
    assert (data.valid_item(1), data.test_item(1)) == (1, 4)
    assert data.history(1, "test").tolist() == [2, 3, 1]
    assert data.targets("valid").tolist() == [2, 1]
    assert data.vocab_size == 5 and data.item_index["d"] == 4 and data.user_index["u2"] == 1


def test_equal_timestamps_keep_source_order(tmp_path: Path) -> None:
    inter = "user_id:token\titem_id:token\ttimestamp:float\n"
    rows = ["1\t30\t5", "1\t10\t5", "1\t20\t4", "1\t40\t5", "2\t10\t1", "2\t20\t1", "2\t30\t1"]
    _write(tmp_path / "toy" / "toy.inter", inter + "\n".join(rows) + "\n")
    data = build_dataset(read_source("recbole", tmp_path / "toy"), "toy", 1, 1)
    raw = [[data.item_ids[i] for i in s] for s in data.sequences]
    assert raw == [["20", "30", "10", "40"], ["10", "20", "30"]]
    assert data.timestamps[0].tolist() == [4, 5, 5, 5]


def test_k_core_repeats_until_stable() -> None:
    # dropping user c (1 interaction) leaves item y with 1 user: it must go too, then user b
    frame = pl.DataFrame(
        {
            "user": ["a", "a", "b", "b", "c"],
            "item": ["x", "z", "x", "y", "y"],
            "timestamp": [1, 2, 3, 4, 5],
            "order": [0, 1, 2, 3, 4],
        }
    )
    kept = k_core(frame, user_core=2, item_core=2)
    assert kept.is_empty()
    kept = k_core(frame, user_core=1, item_core=2)
    assert sorted(zip(kept["user"], kept["item"], strict=True)) == [
        ("a", "x"), ("b", "x"), ("b", "y"), ("c", "y"),
    ]  # fmt: skip


def test_ml1m_dat_files(tmp_path: Path) -> None:
    ratings = "\n".join(f"1::{m}::5::{100 + m}" for m in (3, 1, 2)) + "\n2::1::3::50\n"
    _write(tmp_path / "ratings.dat", ratings)
    movies = (
        "1::Toy Story (1995)::Animation|Comedy\n2::Jumanji (1995)::Adventure\n3::Amélie::Drama\n"
    )
    _write(tmp_path / "movies.dat", movies, "latin-1")
    data = build_dataset(read_source("ml-1m", tmp_path), "ml-1m", 1, 1)
    assert data.user_ids == ["1"]
    assert [data.item_ids[i] for i in data.sequences[0]] == ["1", "2", "3"]
    assert data.item_texts[1] == "Toy Story (1995). Genres: Animation, Comedy"
    assert data.item_texts[3] == "Amélie. Genres: Drama"


def test_ml1m_bad_line_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.dat", "1::2::5::10\n1::2::5\n")
    with pytest.raises(TowerkitError, match=r"ratings.dat: line 2: expected 4"):
        read_source("ml-1m", tmp_path)


def test_amazon_with_metadata_and_leak_free_reviews(tmp_path: Path) -> None:
    reviews = [
        {"reviewerID": "U", "asin": "A", "unixReviewTime": 1, "summary": "first"},
        {"reviewerID": "U", "asin": "B", "unixReviewTime": 2, "summary": "second"},
        {"reviewerID": "U", "asin": "C", "unixReviewTime": 3, "summary": "valid review"},
        {"reviewerID": "U", "asin": "D", "unixReviewTime": 4, "summary": "test review"},
    ]
    path = _write(tmp_path / "r.json", "\n".join(json.dumps(r) for r in reviews) + "\n")
    meta = [
        "{'asin': 'A', 'title': 'Guitar Strings', 'categories': [['Musical Instruments', "
        "'Strings']], 'imUrl': 'http://x/a.jpg', 'brand': 'Ernie'}",
        json.dumps({"asin": "D", "description": ["Loud", "amp"], "category": ["Amps"]}),
    ]
    meta_path = _write(tmp_path / "meta.json", "\n".join(meta) + "\n")
    data = build_dataset(read_source("amazon", path, meta_path), "amz", 1, 1)
    text = dict(zip(data.item_ids, data.item_texts, strict=True))
    assert text["A"] == (
        "Guitar Strings. Genres: Musical Instruments, Strings. Brand: Ernie. Reviews: first"
    )
    assert text["B"] == "Reviews: second"
    assert text["C"] == ""  # its only review is the validation interaction's
    assert text["D"] == "Genres: Amps. Loud amp"
    assert data.item_meta["image_url"].to_list() == ["http://x/a.jpg", None, None, None]


def test_amazon_missing_key_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", json.dumps({"reviewerID": "U", "asin": "A"}) + "\n")
    with pytest.raises(TowerkitError, match=r"r.json: line 1: missing key 'unixReviewTime'"):
        read_source("amazon", path)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match="format: expected one of"):
        read_source("csv", tmp_path)
    with pytest.raises(TowerkitError, match=r"nope.txt: missing"):
        read_source("seqfile", tmp_path / "nope.txt")


def test_item_text_uses_what_exists() -> None:
    assert item_text({"title": "X", "year": "1999", "genres": None}) == "X (1999)"
    assert item_text({}) == ""


def test_save_load_round_trip_and_atomic_export(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "a 1 2 3 4\nb 2 3 1\nc 4 4 2\n")
    data = build_dataset(read_source("seqfile", path), "toy", 1, 1)
    loaded = SeqDataset.load(data.save(tmp_path / "prepared"))
    assert [s.tolist() for s in loaded.sequences] == [s.tolist() for s in data.sequences]
    assert loaded.item_ids == data.item_ids and loaded.user_ids == data.user_ids
    assert loaded.info["n_interactions"] == 10
    folder = data.export_atomic(tmp_path / "atomic")
    lines = (folder / "toy.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert lines[1:5] == ["0\t1\t0", "0\t2\t1", "0\t3\t2", "0\t4\t3"]
    again = build_dataset(read_source("recbole", folder / "toy.inter"), "toy", 1, 1)
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in data.sequences]


def test_load_rejects_a_folder_that_is_not_prepared(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match="not a prepared dataset"):
        SeqDataset.load(tmp_path)


def test_load_names_a_corrupt_dataset_json_or_parquet(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "a 1 2 3 4\nb 2 3 1\n")
    folder = build_dataset(read_source("seqfile", path), "toy", 1, 1).save(tmp_path / "prepared")
    (folder / "items.parquet").write_text("junk")
    with pytest.raises(TowerkitError, match=r"items\.parquet: not a readable Parquet file"):
        SeqDataset.load(folder)
    (folder / "dataset.json").write_text("{oops")
    with pytest.raises(TowerkitError, match=r"dataset\.json: not valid JSON .*prepare --force"):
        SeqDataset.load(folder)


def test_movielens_100k_five_core(ml100k_dir: Path) -> None:
    data = build_dataset(read_source("ml-100k", ml100k_dir), "ml-100k")
    assert (data.n_users, data.n_items, data.n_interactions) == (943, 1349, 99287)
    assert all(np.all(np.diff(t) >= 0) for t in data.timestamps)
    assert data.item_texts[data.item_index["1"]] == (
        "Toy Story (1995). Genres: Animation, Children's, Comedy"
    )


@pytest.mark.skipif(not AMAZON.is_file(), reason=f"{AMAZON} is absent on this machine")
def test_amazon_musical_instruments_file() -> None:
    data = build_dataset(read_source("amazon", AMAZON), "amazon-mi")
    assert (data.n_users, data.n_items, data.n_interactions) == (1429, 900, 10261)
    assert min(len(s) for s in data.sequences) >= 5
    assert sum(bool(t) for t in data.item_texts[1:]) > 850

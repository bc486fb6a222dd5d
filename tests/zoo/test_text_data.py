"""Text data: text,label tables (CSV/Parquet) and their errors, the seeded split, the tokenizer."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from towerkit.core.errors import TowerkitError
from towerkit.zoo.data.text import (
    EncodedTextDataset,
    SplitFractions,
    TextExamples,
    collate_text,
    pad_batch,
    read_rotten_tomatoes,
    read_text_label_table,
    split_examples,
    stratified_split_indices,
    train_wordpiece_tokenizer,
)

REVIEWS = [
    ("A gorgeous, witty film.", "pos"),
    ("Dull and far too long.", "neg"),
    ("The cast is wonderful and the script sings.", "pos"),
    ("A tedious mess of a movie.", "neg"),
]


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_reads_texts_and_sorted_class_names(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "reviews.csv",
        ["id", "text", "label"],
        [(str(i), t, lab) for i, (t, lab) in enumerate(REVIEWS)],
    )
    examples = read_text_label_table(path)
    assert examples.texts == [t for t, _ in REVIEWS]
    assert examples.class_names == ["neg", "pos"]
    assert examples.labels == [1, 0, 1, 0]


def test_csv_missing_column_names_file_and_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", ["text", "sentiment"], list(REVIEWS))
    with pytest.raises(TowerkitError) as info:
        read_text_label_table(path)
    message = str(info.value)
    assert str(path) in message
    assert "missing column 'label'" in message
    assert "text, sentiment" in message
    assert "\n" not in message


def test_csv_empty_text_names_the_row(tmp_path: Path) -> None:
    rows = [REVIEWS[0], ("   ", "neg"), REVIEWS[2]]
    path = write_csv(tmp_path / "holes.csv", ["text", "label"], rows)
    # the header is row 1, so the second record is row 3
    with pytest.raises(TowerkitError, match=r"holes\.csv: row 3: column 'text' is empty"):
        read_text_label_table(path)


def test_csv_empty_label_names_the_row(tmp_path: Path) -> None:
    rows = [REVIEWS[0], REVIEWS[1], ("fine", "")]
    path = write_csv(tmp_path / "nolabel.csv", ["text", "label"], rows)
    with pytest.raises(TowerkitError, match=r"row 4: column 'label' is empty"):
        read_text_label_table(path)


def test_csv_short_row_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("text,label\nA fine film.,pos\nno label here\n", encoding="utf-8")
    with pytest.raises(TowerkitError, match=r"row 3: column 'label' is empty"):
        read_text_label_table(path)


def test_single_class_and_missing_and_unknown_files(tmp_path: Path) -> None:
    one = write_csv(tmp_path / "one.csv", ["text", "label"], [("a", "x"), ("b", "x")])
    with pytest.raises(TowerkitError, match="one value only"):
        read_text_label_table(one)
    with pytest.raises(TowerkitError, match="file not found"):
        read_text_label_table(tmp_path / "absent.csv")
    other = tmp_path / "reviews.json"
    other.write_text("{}")
    with pytest.raises(TowerkitError, match="unsupported file type"):
        read_text_label_table(other)


def test_parquet_reads_and_reports_bad_rows(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(
        pa.table({"text": [t for t, _ in REVIEWS], "label": [lab for _, lab in REVIEWS]}), good
    )
    examples = read_text_label_table(good)
    assert examples.texts[2] == REVIEWS[2][0]
    assert examples.labels == [1, 0, 1, 0]

    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "y": [0, 1]}), missing)
    with pytest.raises(TowerkitError, match=r"missing\.parquet: missing column 'label'"):
        read_text_label_table(missing)

    null_label = tmp_path / "null.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [1, None, 0]}), null_label)
    with pytest.raises(TowerkitError, match=r"row 2: column 'label' is empty"):
        read_text_label_table(null_label)

    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(TowerkitError, match=r"corrupt\.parquet: cannot be read as Parquet"):
        read_text_label_table(corrupt)


def test_split_is_seeded_disjoint_and_stratified() -> None:
    labels = [0] * 700 + [1] * 300
    train, val, test = stratified_split_indices(labels, seed=0)
    assert (train, val, test) == stratified_split_indices(labels, seed=0)
    assert stratified_split_indices(labels, seed=1)[0] != train
    assert sorted(train + val + test) == list(range(1000))
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    for part in (train, val, test):
        counts = Counter(labels[i] for i in part)
        assert counts[1] / len(part) == pytest.approx(0.3)
    with pytest.raises(TowerkitError, match="split fractions"):
        stratified_split_indices(labels, fractions=SplitFractions(train=0.95, val=0.1))


def test_tokenizer_round_trip_and_save_load(tmp_path: Path) -> None:
    texts = [t for t, _ in REVIEWS] * 5
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=200, min_frequency=1, max_length=16)
    encoding = tokenizer.encode("A gorgeous, witty film.")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"
    assert tokenizer.token_to_id("[PAD]") == 0
    assert tokenizer.decode(encoding.ids) == "a gorgeous, witty film."
    long = tokenizer.encode(" ".join(["film"] * 50))
    assert len(long.ids) == 16  # truncation is part of the saved tokenizer

    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    loaded = Tokenizer.from_file(str(path))
    for text in ["The cast is wonderful.", "unseen zebra words", " ".join(["film"] * 50)]:
        assert loaded.encode(text).ids == tokenizer.encode(text).ids


def test_pad_batch_and_collate_masks() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    tokenizer = train_wordpiece_tokenizer([t for t, _ in REVIEWS], 100, 1)
    examples = read_examples_in_memory()
    batch = collate_text([EncodedTextDataset(examples, tokenizer)[i] for i in range(4)])
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["label"].tolist() == examples.labels
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert lengths == [len(tokenizer.encode(t).ids) for t in examples.texts]


def read_examples_in_memory() -> TextExamples:
    return TextExamples([t for t, _ in REVIEWS], [1, 0, 1, 0], ["neg", "pos"], "memory")


def rotten_tomatoes_path() -> Path:
    from towerkit.zoo.assets import fetch

    try:
        return fetch("rotten-tomatoes")
    except TowerkitError as exc:
        pytest.skip(f"rotten-tomatoes corpus unavailable: {exc}")


def test_rotten_tomatoes_corpus_and_fixed_split() -> None:
    examples = read_rotten_tomatoes(rotten_tomatoes_path())
    assert examples.class_names == ["fresh", "rotten"]
    assert Counter(examples.labels) == {0: 7403, 1: 5405}  # the plot summaries are dropped
    splits = split_examples(examples, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10246, 1280, 1282)
    # the split is fixed: the same seed always gives the same first validation/test reviews
    assert splits.val.texts[0].startswith("This is a movie about the world at war with itself")
    assert splits.test.texts[0].startswith("An exhaustive investigation into the roots")

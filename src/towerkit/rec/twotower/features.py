"""Featurisation for the two towers: frames of users / items -> fixed-shape tensors.

One ``SideFeaturizer`` per tower (query = users, candidate = items), fitted on the training split
only: vocabularies of categorical and multi-categorical columns and of the entity ids (values
seen in training), means and standard deviations of numeric columns. Index 0 of every vocabulary
means "missing" (and pads multi-categorical lists); values outside a vocabulary go to one of
``oov_buckets`` hashed rows, so an unseen id or category still gets a stable embedding row.
Text columns are embedded by a ``TextEncoder`` (MiniLM, cached; see ``text.py``).

The fitted state is plain JSON (``to_dict`` / ``from_dict``) and is saved beside the model
weights, so a loaded model featurises exactly as it did in training.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
import polars as pl
import torch
from torch import Tensor

from towerkit.core.errors import TowerkitError

FeatureKind = Literal["categorical", "numeric", "text", "multi_categorical"]
FEATURE_KINDS: tuple[str, ...] = ("categorical", "numeric", "text", "multi_categorical")
MISSING = 0


class TextEncoder(Protocol):
    """Sentence embeddings: ``encode(texts) -> (len(texts), dim)`` float32."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def stable_bucket(value: str, buckets: int) -> int:
    """A hash that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(value.encode("utf-8")) % buckets


@dataclass
class Vocabulary:
    """Index 0: missing; 1..len(values): known values; then ``oov_buckets`` hashed rows."""

    values: list[str]
    oov_buckets: int = 1

    def __post_init__(self) -> None:
        if self.oov_buckets < 1:
            raise TowerkitError(f"oov_buckets: expected >= 1, got {self.oov_buckets}")
        self._index = {value: i + 1 for i, value in enumerate(self.values)}

    @classmethod
    def fit(cls, values: Iterable[str | None], oov_buckets: int, min_count: int = 1) -> Vocabulary:
        counts = Counter(v for v in values if v is not None)
        kept = sorted(v for v, n in counts.items() if n >= min_count)
        return cls(kept, oov_buckets)

    @property
    def size(self) -> int:
        return 1 + len(self.values) + self.oov_buckets

    def oov_index(self, value: str) -> int:
        return 1 + len(self.values) + stable_bucket(value, self.oov_buckets)

    def index(self, value: str | None) -> int:
        if value is None:
            return MISSING
        known = self._index.get(value)
        return known if known is not None else self.oov_index(value)

    def __contains__(self, value: object) -> bool:
        return value in self._index


@dataclass
class NumericStats:
    mean: float
    std: float


T = TypeVar("T", bound="TensorRecord")


class TensorRecord:
    """Row-aligned tensors named by ``FIELDS`` (a dataclass in that order): row selection and
    a flat ``prefix.field`` state for safetensors."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __len__(self) -> int:
        return int(getattr(self, self.FIELDS[0]).shape[0])

    def take(self: T, rows: Tensor) -> T:
        return type(self)(*(getattr(self, name)[rows] for name in self.FIELDS))

    def state(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}.{name}": getattr(self, name).contiguous() for name in self.FIELDS}

    @classmethod
    def from_state(cls: type[T], state: Mapping[str, Tensor], prefix: str) -> T:
        missing = [n for n in cls.FIELDS if f"{prefix}.{n}" not in state]
        if missing:
            raise TowerkitError(f"feature tables: no '{prefix}.{missing[0]}' tensor")
        return cls(*(state[f"{prefix}.{name}"] for name in cls.FIELDS))


@dataclass
class SideTensors(TensorRecord):
    """One tower's inputs for n entities. ``ids`` (n,), ``oov_ids`` (n,) (each id's hashed row,
    for id dropout), ``cat`` (n, n_cat), ``multi`` (n, n_multi, max_len), ``num`` (n, n_num),
    ``text`` (n, n_text, text_dim)."""

    ids: Tensor
    oov_ids: Tensor
    cat: Tensor
    multi: Tensor
    num: Tensor
    text: Tensor

    FIELDS: ClassVar[tuple[str, ...]] = ("ids", "oov_ids", "cat", "multi", "num", "text")

    def inputs(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The tower's forward arguments: (ids, cat, multi, num, text)."""
        return self.ids, self.cat, self.multi, self.num, self.text


@dataclass
class SideFeaturizer:
    """Fitted featurisation of one entity table (users or items)."""

    id_column: str
    ids: Vocabulary
    categorical: dict[str, Vocabulary] = field(default_factory=dict)
    multi_categorical: dict[str, Vocabulary] = field(default_factory=dict)
    multi_max_len: int = 1
    numeric: dict[str, NumericStats] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    text_dim: int = 0

    @classmethod
    def fit(
        cls,
        entities: pl.DataFrame,
        id_column: str,
        kinds: Mapping[str, str],
        train_ids: Iterable[str],
        *,
        oov_buckets: int = 8,
        id_oov_buckets: int | None = None,
        min_count: int = 1,
        text_dim: int = 0,
    ) -> SideFeaturizer:
        """Fit on the entities that occur in the training interactions (``train_ids``).
        ``id_oov_buckets`` (default ``oov_buckets``) sizes the id vocabulary's hashed rows."""
        train_set = set(train_ids)
        if id_column not in entities.columns:
            raise TowerkitError(f"entities: no id column '{id_column}'")
        seen = entities.filter(pl.col(id_column).cast(pl.String).is_in(list(train_set)))
        id_buckets = oov_buckets if id_oov_buckets is None else id_oov_buckets
        out = cls(id_column, Vocabulary.fit(sorted(train_set), id_buckets), text_dim=text_dim)
        for column, kind in kinds.items():
            if column == id_column:
                continue
            if column not in entities.columns:
                raise TowerkitError(f"feature '{column}': not a column of the {id_column} table")
            values = seen[column]
            if kind == "categorical":
                cast = values.cast(pl.String).to_list()
                out.categorical[column] = Vocabulary.fit(cast, oov_buckets, min_count)
            elif kind == "multi_categorical":
                lists = [row or [] for row in values.to_list()]
                flat = [str(v) for row in lists for v in row]
                out.multi_categorical[column] = Vocabulary.fit(flat, oov_buckets, min_count)
                out.multi_max_len = max(out.multi_max_len, *(len(row) for row in lists), 1)
            elif kind == "numeric":
                floats = values.cast(pl.Float64).drop_nulls().drop_nans()
                mean = float(floats.mean()) if len(floats) else 0.0  # type: ignore[arg-type]
                std = float(floats.std()) if len(floats) > 1 else 1.0  # type: ignore[arg-type]
                out.numeric[column] = NumericStats(mean, std if std > 0 else 1.0)
            elif kind == "text":
                out.text.append(column)
            else:
                raise TowerkitError(
                    f"feature '{column}': kind {kind!r} is not one of {', '.join(FEATURE_KINDS)}"
                )
        if out.text and text_dim < 1:
            raise TowerkitError(f"text features {out.text}: need a text encoder (text_dim >= 1)")
        return out

    # --- transform ---------------------------------------------------------------------------

    def transform(
        self, entities: pl.DataFrame, text_encoder: TextEncoder | None = None
    ) -> SideTensors:
        """Tensors for every row of ``entities`` (columns the fit saw; absent ones count as
        missing). Unknown ids and categories map to their hashed OOV rows."""
        n = entities.height
        keys = self.keys_of(entities)
        ids = torch.tensor([self.ids.index(k) for k in keys], dtype=torch.long)
        oov = torch.tensor([self.ids.oov_index(k) for k in keys], dtype=torch.long)
        cat = torch.zeros(n, len(self.categorical), dtype=torch.long)
        for j, (column, vocab) in enumerate(self.categorical.items()):
            values = _column(entities, column, n, pl.String)
            cat[:, j] = torch.tensor([vocab.index(v) for v in values], dtype=torch.long)
        multi = torch.zeros(n, len(self.multi_categorical), self.multi_max_len, dtype=torch.long)
        for j, (column, vocab) in enumerate(self.multi_categorical.items()):
            for i, row in enumerate(_column(entities, column, n, None)):
                indices = [vocab.index(str(v)) for v in (row or [])][: self.multi_max_len]
                multi[i, j, : len(indices)] = torch.tensor(indices, dtype=torch.long)
        num = torch.zeros(n, len(self.numeric), dtype=torch.float32)
        for j, (column, stats) in enumerate(self.numeric.items()):
            raw = _column(entities, column, n, pl.Float64)
            num[:, j] = torch.tensor([_normalise(v, stats) for v in raw], dtype=torch.float32)
        text = torch.zeros(n, len(self.text), self.text_dim, dtype=torch.float32)
        for j, column in enumerate(self.text):
            text[:, j] = _embed(_column(entities, column, n, pl.String), text_encoder, column)
        return SideTensors(ids, oov, cat, multi, num, text)

    def transform_one(
        self, features: Mapping[str, Any], text_encoder: TextEncoder | None = None
    ) -> SideTensors:
        """One entity described by a mapping (a user not in the tables); keys are checked."""
        known = {self.id_column, *self.feature_columns()}
        unknown = sorted(set(features) - known)
        if unknown:
            raise TowerkitError(
                f"features: unknown key '{unknown[0]}' (expected some of {', '.join(sorted(known))})"
            )
        row = {self.id_column: [str(features.get(self.id_column) or "")]}
        frame = pl.DataFrame(row).with_columns(
            *(
                pl.Series(name, [features.get(name)], dtype=_dtype_for(self, name))
                for name in self.feature_columns()
            )
        )
        return self.transform(frame, text_encoder)

    def keys_of(self, entities: pl.DataFrame) -> list[str]:
        if self.id_column not in entities.columns:
            raise TowerkitError(f"entities: no id column '{self.id_column}'")
        return [str(v) for v in entities[self.id_column].cast(pl.String).to_list()]

    def feature_columns(self) -> list[str]:
        return [*self.categorical, *self.multi_categorical, *self.numeric, *self.text]

    # --- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        def vocab(v: Vocabulary) -> dict[str, Any]:
            return {"values": v.values, "oov_buckets": v.oov_buckets}

        return {
            "id_column": self.id_column,
            "ids": vocab(self.ids),
            "categorical": {k: vocab(v) for k, v in self.categorical.items()},
            "multi_categorical": {k: vocab(v) for k, v in self.multi_categorical.items()},
            "multi_max_len": self.multi_max_len,
            "numeric": {k: {"mean": s.mean, "std": s.std} for k, s in self.numeric.items()},
            "text": list(self.text),
            "text_dim": self.text_dim,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SideFeaturizer:
        try:

            def vocab(v: Mapping[str, Any]) -> Vocabulary:
                return Vocabulary([str(x) for x in v["values"]], int(v["oov_buckets"]))

            return cls(
                id_column=str(data["id_column"]),
                ids=vocab(data["ids"]),
                categorical={k: vocab(v) for k, v in data["categorical"].items()},
                multi_categorical={k: vocab(v) for k, v in data["multi_categorical"].items()},
                multi_max_len=int(data["multi_max_len"]),
                numeric={
                    k: NumericStats(float(s["mean"]), float(s["std"]))
                    for k, s in data["numeric"].items()
                },
                text=[str(t) for t in data["text"]],
                text_dim=int(data["text_dim"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TowerkitError(f"feature state: malformed ({type(exc).__name__}: {exc})") from None


def _dtype_for(side: SideFeaturizer, name: str) -> Any:
    if name in side.multi_categorical:
        return pl.List(pl.String)
    return pl.Float64 if name in side.numeric else pl.String


def _column(entities: pl.DataFrame, column: str, n: int, dtype: Any) -> list[Any]:
    if column not in entities.columns:
        return [None] * n
    series = entities[column]
    if dtype is not None:
        series = series.cast(dtype, strict=False)
    return series.to_list()


def _normalise(value: float | None, stats: NumericStats) -> float:
    if value is None or math.isnan(value):
        return 0.0  # the training mean
    return (value - stats.mean) / stats.std


def _embed(texts: list[str | None], encoder: TextEncoder | None, column: str) -> Tensor:
    if encoder is None:
        raise TowerkitError(f"text feature '{column}': no text encoder given")
    present = [i for i, t in enumerate(texts) if t]
    out = torch.zeros(len(texts), encoder.dim, dtype=torch.float32)
    if present:
        vectors = encoder.encode([str(texts[i]) for i in present])
        out[present] = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    return out

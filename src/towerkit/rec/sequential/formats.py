"""Readers for the interaction formats next-item datasets are published in, into one shape.

Every reader returns ``RawData``:

- ``interactions``: user str, item str, timestamp i64, order i64 (row number in the source, the
  stable tie-break for equal timestamps) and, where the format has one, review str;
- ``items``: item str plus whichever of title, year, genres, brand, description, image_url the
  source has (all str; missing values null), or None when the source has no item metadata.

Formats: ``ml-100k`` (GroupLens ``u.*`` or RecBole atomic, through ``rec.store.movielens``),
``ml-1m`` (``ratings.dat``/``movies.dat``), ``recbole`` (any ``<name>.inter`` + optional
``.item``), ``amazon`` (5-core reviews as JSON lines + optional metadata lines, JSON or the 2014
Python-literal style) and ``seqfile`` (``user item item ...`` per line, in time order, as
published with S3-Rec and ICLRec: the position is the timestamp).
"""

from __future__ import annotations

import ast
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from towerkit.core.errors import TowerkitError

ITEM_FIELDS = ("title", "year", "genres", "brand", "description", "image_url")
FORMATS = ("ml-100k", "ml-1m", "recbole", "amazon", "seqfile")


@dataclass(frozen=True)
class RawData:
    interactions: pl.DataFrame
    items: pl.DataFrame | None
    description: str


def _interactions(
    users: list[str], items: list[str], stamps: list[int], reviews: list[str] | None = None
) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"user": users, "item": items, "timestamp": stamps, "order": range(len(users))},
        schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64, "order": pl.Int64},
    )
    if reviews is not None:
        frame = frame.with_columns(pl.Series("review", reviews, dtype=pl.String))
    return frame


def _item_frame(rows: dict[str, list[Any]]) -> pl.DataFrame:
    schema = {"item": pl.String, **{k: pl.String for k in rows if k != "item"}}
    return pl.DataFrame(rows, schema=schema).unique("item", keep="first", maintain_order=True)


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise TowerkitError(f"{path}: missing ({what})")
    return path


# --- MovieLens ---------------------------------------------------------------------------------


def read_ml100k(folder: Path) -> RawData:
    """The ``movielens-100k`` asset's folder, in either of its layouts."""
    from towerkit.rec.store.movielens import load_movielens_100k

    ml = load_movielens_100k(folder)
    ratings = ml.ratings
    interactions = _interactions(
        ratings["user_id"].to_list(), ratings["item_id"].to_list(), ratings["timestamp"].to_list()
    )
    items = ml.items.select(
        pl.col("item_id").alias("item"),
        "title",
        pl.col("year").cast(pl.String),
        pl.col("genres").list.join(", "),
    )
    return RawData(interactions, items, f"MovieLens-100K ({folder})")


def _read_dat(path: Path, n_fields: int) -> list[list[str]]:
    text = _need(path, "MovieLens-1M needs it").read_bytes().decode("latin-1")
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != n_fields:
            raise TowerkitError(
                f"{path}: line {line_no}: expected {n_fields} '::'-separated fields, "
                f"got {len(parts)}"
            )
        rows.append(parts)
    return rows


def read_ml1m(folder: Path) -> RawData:
    """GroupLens MovieLens-1M: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp) and
    ``movies.dat`` (MovieID::Title (year)::Genre|Genre), Latin-1."""
    ratings = _read_dat(folder / "ratings.dat", 4)
    try:
        stamps = [int(r[3]) for r in ratings]
    except ValueError:
        raise TowerkitError(f"{folder / 'ratings.dat'}: a timestamp is not an integer") from None
    interactions = _interactions([r[0] for r in ratings], [r[1] for r in ratings], stamps)
    items = None
    if (folder / "movies.dat").is_file():
        movies = _read_dat(folder / "movies.dat", 3)
        titles, years = [], []
        for _, title, _ in movies:
            stripped = title.rstrip()
            has_year = stripped.endswith(")") and stripped[-5:-1].isdigit()
            titles.append(stripped[:-6].rstrip() if has_year else stripped)
            years.append(stripped[-5:-1] if has_year else None)
        items = _item_frame(
            {
                "item": [m[0] for m in movies],
                "title": titles,
                "year": years,
                "genres": [m[2].replace("|", ", ") for m in movies],
            }
        )
    return RawData(interactions, items, f"MovieLens-1M ({folder})")


# --- RecBole atomic files ----------------------------------------------------------------------


def _read_atomic(path: Path) -> pl.DataFrame:
    text = _need(path, "RecBole atomic file").read_text(encoding="utf-8")
    frame = pl.read_csv(io.StringIO(text), separator="\t", quote_char=None, infer_schema=False)
    return frame.rename({name: name.split(":", 1)[0] for name in frame.columns})


def _pick(frame: pl.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def read_recbole(path: Path) -> RawData:
    """``path``: a ``<name>.inter`` file or the folder holding it (the folder's name = <name>)."""
    inter_path = path if path.suffix == ".inter" else path / f"{path.name}.inter"
    frame = _read_atomic(inter_path)
    user = _pick(frame, "user_id")
    item = _pick(frame, "item_id")
    if user is None or item is None:
        raise TowerkitError(
            f"{inter_path}: expected columns user_id:token and item_id:token, got {frame.columns}"
        )
    stamp_col = _pick(frame, "timestamp")
    try:
        stamps = (
            frame[stamp_col].cast(pl.Float64).cast(pl.Int64).to_list()
            if stamp_col
            else list(range(frame.height))
        )
    except pl.exceptions.InvalidOperationError:
        raise TowerkitError(f"{inter_path}: column timestamp holds a non-number") from None
    interactions = _interactions(frame[user].to_list(), frame[item].to_list(), stamps)
    item_path = inter_path.with_suffix(".item")
    items = _recbole_items(_read_atomic(item_path)) if item_path.is_file() else None
    return RawData(interactions, items, f"RecBole atomic files ({inter_path})")


_RECBOLE_FIELDS = {
    "title": ("movie_title", "title", "name"),
    "year": ("release_year", "year"),
    "genres": ("class", "genre", "genres", "categories", "category"),
    "brand": ("brand",),
    "description": ("description",),
    "image_url": ("imUrl", "image_url", "imageURL"),
}


def _recbole_items(frame: pl.DataFrame) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {"item": frame["item_id"].to_list()}
    for field, names in _RECBOLE_FIELDS.items():
        column = next((n for n in names if n in frame.columns), None)
        if column is not None:
            values = frame[column].to_list()
            rows[field] = [None if v in (None, "", "unkonwn") else v for v in values]
    if "genres" in rows:
        rows["genres"] = [None if g is None else ", ".join(g.split()) for g in rows["genres"]]
    return _item_frame(rows)


# --- Amazon reviews ----------------------------------------------------------------------------


def _json_lines(path: Path, parse: Callable[[str], Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    with _need(path, "Amazon reviews / metadata").open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse(line)
            except (ValueError, SyntaxError):
                raise TowerkitError(f"{path}: line {line_no}: not a JSON object") from None
            if not isinstance(record, dict):
                raise TowerkitError(f"{path}: line {line_no}: expected a JSON object")
            yield line_no, record


def _loose(line: str) -> Any:
    """JSON, or the 2014 metadata dumps' Python literals (literal_eval evaluates no code)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return ast.literal_eval(line)


def read_amazon(path: Path, meta_path: Path | None = None) -> RawData:
    """Amazon 5-core reviews (reviewerID, asin, unixReviewTime; summary kept as review text)."""
    users, items, stamps, reviews = [], [], [], []
    for line_no, record in _json_lines(path, json.loads):
        try:
            users.append(str(record["reviewerID"]))
            items.append(str(record["asin"]))
            stamps.append(int(record["unixReviewTime"]))
        except KeyError as exc:
            raise TowerkitError(f"{path}: line {line_no}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise TowerkitError(
                f"{path}: line {line_no}: unixReviewTime is not an integer"
            ) from None
        reviews.append(str(record.get("summary") or "").strip())
    interactions = _interactions(users, items, stamps, reviews)
    items_frame = _amazon_meta(meta_path) if meta_path is not None else None
    return RawData(interactions, items_frame, f"Amazon reviews ({path.name})")


def _flatten(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return [str(value)] if value not in (None, "") else []


def _amazon_meta(path: Path) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {f: [] for f in ("item", *ITEM_FIELDS)}
    for line_no, record in _json_lines(path, _loose):
        if "asin" not in record:
            raise TowerkitError(f"{path}: line {line_no}: missing key 'asin'")
        genres = list(dict.fromkeys(_flatten(record.get("categories") or record.get("category"))))
        description = " ".join(_flatten(record.get("description")))
        image = record.get("imUrl") or next(iter(_flatten(record.get("imageURL"))), None)
        rows["item"].append(str(record["asin"]))
        rows["title"].append(record.get("title") or None)
        rows["year"].append(None)
        rows["genres"].append(", ".join(genres) or None)
        rows["brand"].append(record.get("brand") or None)
        rows["description"].append(description or None)
        rows["image_url"].append(image)
    return _item_frame(rows)


# --- sequence files ----------------------------------------------------------------------------


def read_seqfile(path: Path) -> RawData:
    """One line per user: ``user_id item_id item_id ...`` already in time order."""
    users: list[str] = []
    items: list[str] = []
    stamps: list[int] = []
    with _need(path, "sequence file").open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise TowerkitError(
                    f"{path}: line {line_no}: expected 'user_id item_id item_id ...', "
                    "got a user with no items"
                )
            users.extend([parts[0]] * (len(parts) - 1))
            items.extend(parts[1:])
            stamps.extend(range(len(parts) - 1))
    if not users:
        raise TowerkitError(f"{path}: no sequences in the file")
    return RawData(_interactions(users, items, stamps), None, f"sequence file ({path.name})")


def read_source(fmt: str, path: Path, meta_path: Path | None = None) -> RawData:
    """Dispatch on ``fmt`` (one of ``FORMATS``)."""
    if meta_path is not None and fmt != "amazon":
        raise TowerkitError(f"--meta: only the amazon format takes a metadata file, not {fmt!r}")
    if fmt == "ml-100k":
        return read_ml100k(path)
    if fmt == "ml-1m":
        return read_ml1m(path)
    if fmt == "recbole":
        return read_recbole(path)
    if fmt == "amazon":
        return read_amazon(path, meta_path)
    if fmt == "seqfile":
        return read_seqfile(path)
    raise TowerkitError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")

"""MovieLens-100K from either layout into one set of frames.

Two layouts hold the same GroupLens release: the official zip (``u.data``, ``u.user``, ``u.item``;
Latin-1, ``|``-separated, 19 genre flags) and RecBole's atomic files (``ml-100k.inter``/``.user``/
``.item``; tab-separated, typed headers, the title's ``(year)`` suffix moved to its own column).
Both become the frames of ``MovieLens``, with identical schemas:

- ratings: user_id str, item_id str, rating i64 (1-5), timestamp i64 (Unix seconds, UTC)
- users: user_id str, age i64, gender str, occupation str, zip_code str
- items: item_id str, title str, year i64 (null where the title has no ``(yyyy)``), genres list[str]
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from towerkit.core.errors import TowerkitError

# the order of the 19 genre flags in u.item (GroupLens u.genre)
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)$")
_RECBOLE_UNKNOWN = "unkonwn"  # sic: RecBole's spelling for movie 267's missing title and year


@dataclass(frozen=True)
class MovieLens:
    ratings: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame


def load_movielens_100k(folder: Path) -> MovieLens:
    """Read whichever layout ``folder`` holds (the ``movielens-100k`` asset's folder)."""
    if (folder / "u.data").is_file():
        return _load_grouplens(folder)
    if (folder / "ml-100k.inter").is_file():
        return _load_recbole(folder)
    raise TowerkitError(
        f"{folder}: no MovieLens-100K files (expected u.data/u.user/u.item or "
        "ml-100k.inter/.user/.item)"
    )


def _read(path: Path, separator: str, columns: list[str] | None, encoding: str) -> pl.DataFrame:
    if not path.is_file():
        raise TowerkitError(f"{path}: missing (MovieLens-100K needs it)")
    text = path.read_bytes().decode(encoding)
    return pl.read_csv(
        io.StringIO(text),
        separator=separator,
        has_header=columns is None,
        new_columns=columns,
        quote_char=None,
        infer_schema=False,  # every column as text; converted explicitly below
    )


def _split_title(title: str) -> tuple[str, int | None]:
    match = _YEAR_SUFFIX.match(title)
    if match is None:
        return title, None
    return match["title"], int(match["year"])


def _ratings(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("user_id"),
        pl.col("item_id"),
        pl.col("rating").cast(pl.Float64).cast(pl.Int64),
        pl.col("timestamp").cast(pl.Float64).cast(pl.Int64),
    )


def _users(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "user_id", pl.col("age").cast(pl.Int64), "gender", "occupation", "zip_code"
    ).sort(pl.col("user_id").cast(pl.Int64))


def _items(
    ids: list[str], titles: list[str], years: list[int | None], genres: list[list[str]]
) -> pl.DataFrame:
    return pl.DataFrame(
        {"item_id": ids, "title": titles, "year": years, "genres": genres},
        schema={
            "item_id": pl.String,
            "title": pl.String,
            "year": pl.Int64,
            "genres": pl.List(pl.String),
        },
    ).sort(pl.col("item_id").cast(pl.Int64))


def _load_grouplens(folder: Path) -> MovieLens:
    ratings = _read(folder / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"], "utf-8")
    users = _read(
        folder / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"], "utf-8"
    )
    flags = [f"g{i}" for i in range(len(GENRES))]
    raw = _read(
        folder / "u.item", "|", ["item_id", "title", "date", "video", "url", *flags], "latin-1"
    )
    titles, years = zip(*(_split_title(t) for t in raw["title"]), strict=True)
    genres = [
        [name for name, flag in zip(GENRES, row, strict=True) if flag == "1"]
        for row in raw.select(flags).iter_rows()
    ]
    items = _items(raw["item_id"].to_list(), list(titles), list(years), genres)
    return MovieLens(_ratings(ratings), _users(users), items)


def _strip_types(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({name: name.split(":", 1)[0] for name in frame.columns})


def _load_recbole(folder: Path) -> MovieLens:
    ratings = _strip_types(_read(folder / "ml-100k.inter", "\t", None, "utf-8"))
    users = _strip_types(_read(folder / "ml-100k.user", "\t", None, "utf-8"))
    raw = _strip_types(_read(folder / "ml-100k.item", "\t", None, "utf-8"))
    titles: list[str] = []
    years: list[int | None] = []
    for title, year in raw.select("movie_title", "release_year").iter_rows():
        if title == _RECBOLE_UNKNOWN:
            titles.append("unknown")
            years.append(None)
        elif year and year.isdigit() and len(year) == 4:
            titles.append(title)
            years.append(int(year))
        else:  # RecBole moved a non-year suffix such as "(V)" out of the title: put it back
            titles.append(f"{title} ({year})" if year else title)
            years.append(None)
    genres = [(text or "").split() for text in raw["class"]]
    items = _items(raw["item_id"].to_list(), titles, years, genres)
    return MovieLens(_ratings(ratings), _users(users), items)

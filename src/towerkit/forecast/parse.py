"""Parser for OpenDigger metric files, every kind they come in.

- numeric: ``{"YYYY-MM": v}`` plus yearly ``"YYYY"`` and quarterly ``"YYYYQn"`` keys; OpenDigger
  interpolates 2021-10 and keeps the real value under ``"2021-10-raw"``: the raw value wins;
- duration: ``{"avg": {...}, "levels": {...}, "quantile_0".."quantile_4": {...}}``;
- list: ``{"YYYY-MM": [[name, count], ...]}`` (``contributor_email_suffixes``).

OpenDigger leaves out months whose value is 0; :func:`dense_months` fills them with 0 between
the first and last month. A file that fits none of these raises :class:`MalformedMetric`
naming the file and the key: it is reported and skipped, never zeroed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from towerkit.core.errors import TowerkitError

MetricKind = Literal["numeric", "duration", "list"]
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RAW = re.compile(r"^(\d{4})-(\d{2})-raw$")
_YEAR = re.compile(r"^\d{4}$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
DURATION_KEYS = ("avg", "quantile_0", "quantile_1", "quantile_2", "quantile_3", "quantile_4")


class MalformedMetric(TowerkitError):
    """A metric file that is not valid OpenDigger JSON; the message names the file and key."""


@dataclass
class ParsedMetric:
    """One file's content. ``monthly`` maps a series name (the metric itself, or ``avg`` /
    ``quantile_k`` of a duration file) to ``{month_index: value}``."""

    name: str
    kind: MetricKind
    monthly: dict[str, dict[int, float]] = field(default_factory=dict)
    yearly: dict[int, float] = field(default_factory=dict)
    quarterly: dict[tuple[int, int], float] = field(default_factory=dict)
    levels: dict[int, list[float]] = field(default_factory=dict)  # duration files
    lists: dict[int, list[tuple[str, float]]] = field(default_factory=dict)  # list files


def month_index(label: str) -> int:
    """``"2021-10"`` -> months since year 0 (2021 * 12 + 9)."""
    match = _MONTH.match(label)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a YYYY-MM month: {label!r}")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedMetric(f"{where}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise MalformedMetric(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise MalformedMetric(f"{where}: expected a finite number, got {value!r}")
    return number


def _numeric(data: dict[str, Any], where: str, out: ParsedMetric, series: str) -> None:
    values: dict[int, float] = {}
    raw: dict[int, float] = {}
    for key, value in data.items():
        at = f"{where}: key {key!r}"
        if _MONTH.match(key):
            values[_month(key, at)] = _number(value, at)
        elif match := _RAW.match(key):
            raw[_month(f"{match.group(1)}-{match.group(2)}", at)] = _number(value, at)
        elif _YEAR.match(key):
            out.yearly[int(key)] = _number(value, at)
        elif match := _QUARTER.match(key):
            out.quarterly[(int(match.group(1)), int(match.group(2)))] = _number(value, at)
        else:
            raise MalformedMetric(f"{at}: expected YYYY-MM, YYYY-MM-raw, YYYY or YYYYQn")
    values.update(raw)  # the real value of an interpolated month
    out.monthly[series] = values


def _month(label: str, where: str) -> int:
    try:
        return month_index(label)
    except ValueError:
        raise MalformedMetric(f"{where}: month out of range") from None


def _duration(data: dict[str, Any], where: str, out: ParsedMetric) -> None:
    for key in DURATION_KEYS:
        part = data.get(key)
        if not isinstance(part, dict):
            raise MalformedMetric(f"{where}: key {key!r}: expected an object of months")
        _numeric(part, f"{where}: {key}", out, key)
    levels = data.get("levels", {})
    if not isinstance(levels, dict):
        raise MalformedMetric(f"{where}: key 'levels': expected an object of months")
    for key, value in levels.items():
        at = f"{where}: levels {key!r}"
        if not isinstance(value, list):
            raise MalformedMetric(f"{at}: expected a list of counts")
        if _MONTH.match(key):
            out.levels[_month(key, at)] = [_number(v, at) for v in value]


def _list(data: dict[str, Any], where: str, out: ParsedMetric) -> None:
    for key, value in data.items():
        at = f"{where}: key {key!r}"
        if _RAW.match(key) or _YEAR.match(key) or _QUARTER.match(key):
            continue  # aggregates of a list file carry nothing the months do not
        if not _MONTH.match(key) or not isinstance(value, list):
            raise MalformedMetric(f"{at}: expected YYYY-MM -> [[name, count], ...]")
        pairs = []
        for item in value:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise MalformedMetric(f"{at}: expected [name, count] pairs, got {item!r}")
            pairs.append((item[0], _number(item[1], at)))
        out.lists[_month(key, at)] = pairs


def parse_metric(data: Any, name: str, where: str = "") -> ParsedMetric:
    """Parse one decoded metric file; ``where`` (the path or URL) prefixes every error."""
    where = where or name
    if not isinstance(data, dict):
        raise MalformedMetric(f"{where}: expected a JSON object, got {type(data).__name__}")
    if "avg" in data or "levels" in data:
        out = ParsedMetric(name, "duration")
        _duration(data, where, out)
    elif any(isinstance(v, list) for v in data.values()):
        out = ParsedMetric(name, "list")
        _list(data, where, out)
    else:
        out = ParsedMetric(name, "numeric")
        _numeric(data, where, out, name)
    return out


def read_metric(path: Path) -> ParsedMetric:
    """Read and parse ``<metric>.json``; MalformedMetric names the path."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMetric(f"{path}: not valid JSON ({exc})") from None
    return parse_metric(data, path.stem, str(path))


def dense_months(values: dict[int, float]) -> tuple[int, np.ndarray]:
    """(first month, values) with the months OpenDigger left out filled with 0 between the
    first and last month present."""
    if not values:
        return 0, np.zeros(0)
    first, last = min(values), max(values)
    dense = np.zeros(last - first + 1)
    for month, value in values.items():
        dense[month - first] = value
    return first, dense

"""The corpus as a table: repositories x months x metrics, saved as Parquet.

Each repository's rows run from its first month with any data to the last month of the corpus.
Inside that range a month a metric file leaves out is 0 (OpenDigger omits zeros); a metric
whose file is missing (404 / absent) or malformed is null for the whole repository, so it is
masked, never mistaken for zero. Duration files contribute their ``avg`` as ``<metric>_avg``;
``contributor_email_suffixes`` becomes the ``orgs`` column (organisation domains with counts),
and an ``about.json`` (:mod:`towerkit.forecast.about`) the ``about`` column, the same in every
month of the repository.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path, read_parquet, write_json_atomic
from towerkit.forecast.about import ABOUT_FILE, MalformedAbout, read_about
from towerkit.forecast.client import DEFAULT_METRICS
from towerkit.forecast.parse import (
    MalformedMetric,
    ParsedMetric,
    month_index,
    month_label,
    read_metric,
)

TEXT_COLUMNS = ("orgs", "about")  # per repository and month, beside the numeric features
TARGETS = ("activity", "openrank", "stars", "participants", "issues_new", "change_requests")
ORGS_METRIC = "contributor_email_suffixes"
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")  # free-text junk is dropped
DURATION_METRICS = frozenset(
    f"{kind}_{what}"
    for kind in ("issue", "change_request")
    for what in ("response_time", "resolution_duration", "age")
)
# personal mail and GitHub's own no-reply addresses say nothing about an organisation
PERSONAL_DOMAINS = frozenset(
    [
        "gmail.com",
        "users.noreply.github.com",
        "qq.com",
        "163.com",
        "126.com",
        "hotmail.com",
        "outlook.com",
        "yahoo.com",
        "foxmail.com",
        "icloud.com",
        "me.com",
        "live.com",
        "protonmail.com",
        "googlemail.com",
        "mail.ru",
        "yandex.ru",
        "sina.com",
        "gmx.de",
        "web.de",
        "proton.me",
    ]
)


@dataclass
class LoadReport:
    repos: int = 0
    files: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)  # repo -> metrics absent
    malformed: list[str] = field(default_factory=list)  # one line each, naming the path
    abouts: int = 0  # repositories with a readable about.json

    def summary(self) -> str:
        absent = sum(len(v) for v in self.missing.values())
        abouts = f", {self.abouts} with an about" if self.abouts else ""
        return (
            f"{self.repos} repositories{abouts}, {self.files} files read, {absent} metric files "
            f"missing, {len(self.malformed)} malformed (skipped)"
        )


def feature_name(parsed: ParsedMetric) -> str:
    return f"{parsed.name}_avg" if parsed.kind == "duration" else parsed.name


def expected_kind(metric: str) -> str:
    if metric == ORGS_METRIC:
        return "list"
    return "duration" if metric in DURATION_METRICS else "numeric"


def feature_columns(metrics: Sequence[str]) -> list[str]:
    """Table columns of these metrics: duration files give ``<metric>_avg``; the list file none."""
    kinds = {m: expected_kind(m) for m in metrics}
    return [f"{m}_avg" if k == "duration" else m for m, k in kinds.items() if k != "list"]


def _orgs(pairs: list[tuple[str, float]], top: int = 5) -> str:
    kept = [
        (d.lower(), int(c))
        for d, c in pairs
        if _DOMAIN.match(d.lower()) and d.lower() not in PERSONAL_DOMAINS
    ]
    kept.sort(key=lambda p: (-p[1], p[0]))
    return ", ".join(f"{d} {c}" for d, c in kept[:top])


def _read_repo(
    folder: Path, metrics: Sequence[str], report: LoadReport, repo: str
) -> dict[str, ParsedMetric]:
    parsed = {}
    for metric in metrics:
        path = folder / f"{metric}.json"
        if not path.is_file():
            report.missing.setdefault(repo, []).append(metric)
            continue
        try:
            metric_file = read_metric(path)
        except MalformedMetric as exc:
            report.malformed.append(str(exc))
            continue
        if metric_file.kind != expected_kind(metric):
            report.malformed.append(
                f"{path}: expected a {expected_kind(metric)} file, found a {metric_file.kind} one"
            )
            continue
        parsed[metric] = metric_file
        report.files += 1
    return parsed


def _read_about(folder: Path, report: LoadReport) -> str:
    """The about's text, "" without an about file; a malformed one is reported and skipped."""
    path = folder / ABOUT_FILE
    if not path.is_file():
        return ""  # optional: OpenDigger has none
    try:
        text = read_about(path).text()
    except MalformedAbout as exc:
        report.malformed.append(str(exc))
        return ""
    report.abouts += 1
    return text


def _repo_frame(
    repo: str, parsed: dict[str, ParsedMetric], columns: list[str], end: int, about: str = ""
) -> pl.DataFrame | None:
    series = {
        feature_name(p): p.monthly["avg" if p.kind == "duration" else p.name]
        for p in parsed.values()
        if p.kind != "list"
    }
    starts = [min(v) for v in series.values() if v]
    if not starts:
        return None
    first = min(starts)
    months = np.arange(first, end + 1)
    data: dict[str, object] = {"repo": repo, "month": [month_label(int(m)) for m in months]}
    for column in columns:
        if column not in series:
            data[column] = pl.Series(column, [None] * len(months), dtype=pl.Float64)
            continue
        values = np.zeros(len(months))
        for month, value in series[column].items():
            if first <= month <= end:
                values[month - first] = value
        data[column] = values
    lists = parsed[ORGS_METRIC].lists if ORGS_METRIC in parsed else {}
    data["orgs"] = [_orgs(lists.get(int(m), [])) for m in months]
    data["about"] = [about] * len(months)
    return pl.DataFrame(data)


def corpus_end(root: Path, repos: Sequence[str]) -> int:
    """The last month any repository's activity file has: the corpus's end."""
    ends = []
    for repo in repos:
        try:
            monthly = read_metric(root / repo / "activity.json").monthly["activity"]
        except (MalformedMetric, OSError):
            continue
        if monthly:
            ends.append(max(monthly))
    if not ends:
        raise TowerkitError(f"{root}: no readable activity.json in any repository")
    return max(ends)


def build_table(
    root: Path,
    repos: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    progress: bool = True,
) -> tuple[pl.DataFrame, LoadReport]:
    """The long-by-month, wide-by-metric table of every repository and its load report."""
    if not root.is_dir():
        raise TowerkitError(
            f"{root}: the OpenDigger folder does not exist (run `towerkit forecast fetch`)"
        )
    columns = feature_columns(metrics)
    report = LoadReport()
    end = corpus_end(root, repos)
    frames = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("read OpenDigger files", total=len(repos))
        for repo in repos:
            folder = root / repo
            bar.advance(task)
            if not folder.is_dir():
                report.missing[repo] = list(metrics)
                continue
            parsed = _read_repo(folder, metrics, report, repo)
            frame = _repo_frame(repo, parsed, columns, end, _read_about(folder, report))
            if frame is None:
                report.missing.setdefault(repo, []).append("(no numeric data)")
                continue
            frames.append(frame)
            report.repos += 1
    if not frames:
        raise TowerkitError(f"{root}: none of the {len(repos)} repositories has usable data")
    return pl.concat(frames, how="vertical"), report


def write_table(table: pl.DataFrame, report: LoadReport, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)
    write_json_atomic(
        path.with_suffix(".report.json"),
        {"summary": report.summary(), "missing": report.missing, "malformed": report.malformed},
    )
    return path


@dataclass
class Panel:
    """The table as arrays on one month grid: ``values[repo, month, feature]`` (NaN before a
    repository's first month and for missing metrics), ``first[repo]`` its first grid month."""

    repos: list[str]
    features: list[str]
    month0: int  # month index of grid position 0
    values: np.ndarray
    first: np.ndarray
    orgs: list[list[str]]  # per repo, per grid month ("" before its first month)
    about: list[str] = field(default_factory=list)  # per repo: its about's text, or ""

    @property
    def n_months(self) -> int:
        return int(self.values.shape[1])

    @property
    def end(self) -> int:
        """Grid position of the corpus's last month."""
        return self.n_months - 1

    def label(self, position: int) -> str:
        return month_label(self.month0 + position)

    def target_indices(self, targets: Sequence[str] = TARGETS) -> list[int]:
        missing = [t for t in targets if t not in self.features]
        if missing:
            raise TowerkitError(f"dataset: target {missing[0]!r} is not a column of the table")
        return [self.features.index(t) for t in targets]


def read_panel(path: Path, repos_limit: int = 0) -> Panel:
    if not path.is_file():
        raise TowerkitError(f"{path}: no prepared dataset (run `towerkit forecast prepare`)")
    table = read_parquet(path, "run `towerkit forecast prepare` again")
    for column in ("repo", "month", "orgs"):
        if column not in table.columns:
            raise TowerkitError(f"{path}: expected a column {column!r}")
    features = [c for c in table.columns if c not in ("repo", "month", *TEXT_COLUMNS)]
    repos = sorted(table["repo"].unique().to_list())
    if repos_limit > 0:
        repos = repos[:repos_limit]
        table = table.filter(pl.col("repo").is_in(repos))
    months = [month_index(m) for m in table["month"].to_list()]
    month0, end = min(months), max(months)
    values = np.full((len(repos), end - month0 + 1, len(features)), np.nan, dtype=np.float64)
    orgs = [[""] * (end - month0 + 1) for _ in repos]
    first = np.zeros(len(repos), dtype=np.int64)
    position = {r: i for i, r in enumerate(repos)}
    rows = table.select(["repo", *features]).to_numpy()
    org_column = table["orgs"].to_list()
    for row, month, org in zip(rows, months, org_column, strict=True):
        r, t = position[row[0]], month - month0
        values[r, t] = row[1:].astype(np.float64)
        orgs[r][t] = org or ""
    for r in range(len(repos)):
        present = np.flatnonzero(~np.all(np.isnan(values[r]), axis=1))
        first[r] = present[0] if present.size else end - month0 + 1
    about = [""] * len(repos)
    if "about" in table.columns:  # tables prepared before it have none
        for repo, text in table.group_by("repo").agg(pl.col("about").first()).iter_rows():
            about[position[repo]] = text or ""
    return Panel(repos, features, month0, values, first, orgs, about)

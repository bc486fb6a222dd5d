"""OpenDigger client: ``<base>/github/<owner>/<repo>/<metric>.json`` for a list of repositories.

Files land in a cache folder laid out as ``<cache>/<owner>/<repo>/<metric>.json`` (the layout of
the offline corpus, so ``prepare`` reads either). A file already cached is not fetched again.
Transient failures (5xx, 429, timeouts, refused connections) are retried with exponential
backoff; 404 means OpenDigger has no such file (it omits metrics that are all zero or unknown).
Bodies that are not valid OpenDigger JSON are reported as malformed and never cached. With
``about``, each repository's description, topics and language also come from the GitHub API
(:mod:`towerkit.forecast.about`). The standard library's urllib is enough here (and reads
``file://`` bases too).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.progress import Progress

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path, write_json_atomic
from towerkit.forecast.about import ABOUT_FILE, GITHUB_HEADERS, MalformedAbout, about_from_body
from towerkit.forecast.parse import MalformedMetric, parse_metric

DEFAULT_BASE_URL = "https://oss.open-digger.cn"
LEGACY_BASE_URL = "https://oss.x-lab.info"  # serves the older open_digger/github/... layout
# the metrics the forecaster reads (targets, inputs and the text tower's organisations)
DEFAULT_METRICS = (
    "activity",
    "openrank",
    "stars",
    "participants",
    "issues_new",
    "change_requests",
    "attention",
    "technical_fork",
    "issues_closed",
    "issue_comments",
    "change_requests_accepted",
    "change_requests_reviews",
    "new_contributors",
    "inactive_contributors",
    "bus_factor",
    "code_change_lines_sum",
    "issue_response_time",
    "change_request_resolution_duration",
    "contributor_email_suffixes",
)
Layout = Literal["current", "legacy"]


def check_url(url: str, option: str) -> str:
    """``url`` if it is an http(s)://HOST/... or file:///DIR URL, else a one-line error."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "file") or (
        parsed.scheme != "file" and not parsed.netloc
    ):
        raise TowerkitError(f"{option} {url!r}: expected an http(s)://HOST/... or file:///DIR URL")
    return url


@dataclass
class ClientConfig:
    base_url: str = DEFAULT_BASE_URL
    layout: Layout = "current"  # legacy: <base>/open_digger/github/<owner>/<repo>/<metric>.json
    retries: int = 3  # extra attempts after the first, for transient failures only
    backoff_s: float = 0.5  # first wait; doubles with every retry
    concurrency: int = 8  # requests in flight at once
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.concurrency < 1 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise TowerkitError(
                "fetch: expected retries >= 0, concurrency >= 1, backoff >= 0 and timeout > 0"
            )
        check_url(self.base_url, "--base-url")

    def url(self, repo: str, metric: str) -> str:
        prefix = "/open_digger" if self.layout == "legacy" else ""
        return f"{self.base_url.rstrip('/')}{prefix}/github/{repo}/{metric}.json"


@dataclass
class FetchReport:
    """What one fetch did; ``missing`` and ``malformed`` are (repo, metric) / (url, reason)."""

    fetched: int = 0
    cached: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0

    def summary(self) -> str:
        return (
            f"{self.fetched} fetched, {self.cached} already cached, {len(self.missing)} missing "
            f"(404), {len(self.malformed)} malformed, {len(self.failed)} failed after retries"
        )

    def missing_by_repo(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for repo, metric in self.missing:
            out.setdefault(repo, []).append(metric)
        return out


class _Transient(Exception):
    pass


class _Refused(Exception):
    """A refusal that retrying now will not fix (GitHub's rate limit): the file fails."""


@dataclass(frozen=True)
class _Job:
    repo: str
    name: str  # a metric, or "about"
    url: str
    target: Path
    headers: dict[str, str] = field(default_factory=dict)


def check_repo(repo: str) -> str:
    parts = repo.strip().split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
        raise TowerkitError(f"repository {repo!r}: expected owner/name")
    return "/".join(parts)


def _get(url: str, timeout: float, headers: dict[str, str]) -> bytes | None:
    """The body, None for 404; _Transient for what a retry may fix."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from None
        if exc.code == 403 and exc.headers.get("X-RateLimit-Remaining") == "0":
            reset = exc.headers.get("X-RateLimit-Reset", "?")
            raise _Refused(
                f"HTTP 403: rate limit reached until {reset} (epoch seconds); set GITHUB_TOKEN"
            ) from None
        raise TowerkitError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # file:// base
            return None
        raise _Transient(str(exc.reason)) from None
    except (TimeoutError, ConnectionError) as exc:
        raise _Transient(type(exc).__name__) from None


def _checked(job: _Job, body: bytes) -> bytes:
    """What to cache of a body: the metric file as it came, or the about's keys; raises
    MalformedMetric / MalformedAbout / ValueError when it is not what it should be."""
    if job.name == "about":
        return about_from_body(body, job.url)
    parse_metric(json.loads(body), job.name, job.url)
    return body


def _fetch_one(
    job: _Job, config: ClientConfig, sleep: Callable[[float], None]
) -> tuple[str, str, int]:
    """('fetched' | 'missing' | 'malformed' | 'failed', detail, retries used)."""
    for attempt in range(config.retries + 1):
        try:
            body = _get(job.url, config.timeout_s, job.headers)
        except _Refused as exc:
            return "failed", str(exc), attempt
        except _Transient as exc:
            if attempt == config.retries:
                return "failed", f"{exc} after {attempt + 1} attempts", attempt
            sleep(config.backoff_s * 2**attempt)
            continue
        if body is None:
            return "missing", "", attempt
        try:
            cached = _checked(job, body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "malformed", "not valid JSON", attempt
        except (MalformedMetric, MalformedAbout) as exc:
            return "malformed", str(exc).removeprefix(f"{job.url}: "), attempt
        with atomic_path(job.target) as tmp:
            tmp.write_bytes(cached)
        return "fetched", "", attempt
    raise AssertionError("unreachable")


def _jobs(
    repos: Sequence[str],
    cache_dir: Path,
    config: ClientConfig,
    metrics: Sequence[str],
    about: str | None,
    token: str | None,
) -> list[_Job]:
    headers = GITHUB_HEADERS | ({"Authorization": f"Bearer {token}"} if token else {})
    jobs = []
    for repo in dict.fromkeys(check_repo(r) for r in repos):
        for metric in metrics:
            jobs.append(
                _Job(repo, metric, config.url(repo, metric), cache_dir / repo / f"{metric}.json")
            )
        if about is not None:
            url = f"{about.rstrip('/')}/repos/{repo}"
            jobs.append(_Job(repo, "about", url, cache_dir / repo / ABOUT_FILE, headers))
    return jobs


def fetch_corpus(
    repos: Sequence[str],
    cache_dir: Path,
    config: ClientConfig | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    about: str | None = None,
    token: str | None = None,
    refresh: bool = False,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchReport:
    """Fetch every (repo, metric) into ``cache_dir``, and each repository's about from the GitHub
    API at ``about`` (e.g. ``https://api.github.com``; ``token`` raises its rate limit); writes
    ``cache_dir/fetch_report.json``."""
    config = config or ClientConfig()
    report = FetchReport()
    jobs = []
    for job in _jobs(repos, cache_dir, config, metrics, about, token):
        if job.target.is_file() and not refresh:
            report.cached += 1
        else:
            jobs.append(job)
    with (
        Progress(disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=config.concurrency) as pool,
    ):
        task = bar.add_task("fetch OpenDigger", total=len(jobs))
        futures = {pool.submit(_fetch_one, job, config, sleep): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            outcome, detail, retried = future.result()
            report.retries += retried
            if outcome == "fetched":
                report.fetched += 1
            elif outcome == "missing":
                report.missing.append((job.repo, job.name))
            elif outcome == "malformed":
                report.malformed.append((job.url, detail))
            else:
                report.failed.append((job.url, detail))
            bar.advance(task)
    for items in (report.missing, report.malformed, report.failed):
        items.sort()
    write_json_atomic(
        cache_dir / "fetch_report.json",
        {
            "base_url": config.base_url,
            "layout": config.layout,
            "about_api": about,
            "summary": report.summary(),
            "missing": report.missing_by_repo(),
            "malformed": dict(report.malformed),
            "failed": dict(report.failed),
        },
    )
    return report


def read_repo_list(path: Path) -> list[str]:
    """``owner/name`` per line (``#`` comments allowed), or a corpus folder of owner/name dirs."""
    if path.is_dir():
        return sorted(
            f"{o.name}/{r.name}"
            for o in path.iterdir()
            if o.is_dir()
            for r in o.iterdir()
            if r.is_dir()
        )
    if not path.is_file():
        raise TowerkitError(f"{path}: expected a file of owner/name lines or a corpus folder")
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [check_repo(line) for line in lines if line]

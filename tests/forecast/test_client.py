"""The OpenDigger client against a local http.server serving OpenDigger-format files: found,
missing (404), malformed, and a transient 503 that a retry fixes; plus the legacy layout, and
repositories' abouts from a GitHub-API-shaped route (found, missing, malformed, rate-limited)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from towerkit.core.errors import TowerkitError
from towerkit.forecast.client import ClientConfig, check_repo, fetch_corpus

FILES = {
    "/github/acme/rocket/activity.json": json.dumps({"2021-01": 4.5, "2021-10-raw": 9}),
    "/github/acme/rocket/stars.json": json.dumps({"2021-01": 3}),
    "/github/acme/widget/activity.json": '{"2021-01": ',  # malformed JSON
    "/github/acme/widget/stars.json": json.dumps({"2021-01": "lots"}),  # malformed value
    "/open_digger/github/old/layout/activity.json": json.dumps({"2020-05": 1}),
    "/repos/acme/rocket": json.dumps(
        {
            "full_name": "acme/rocket",
            "description": "Rockets for everyone",
            "topics": ["space", "rust"],
            "language": "Rust",
            "archived": True,  # state that changes with time: never cached
            "stargazers_count": 12,
        }
    ),
    "/repos/acme/widget": "<html>a login page</html>",  # malformed
    "/repos/zeta/tool": json.dumps({"full_name": "zeta/tool", "description": None}),
}


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.flaky = {"/github/acme/rocket/stars.json": 2}  # 503 twice, then the file
        self.headers: dict[str, dict[str, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                server.headers[self.path] = dict(self.headers)
                if self.path == "/repos/limited/repo":  # GitHub's primary rate limit
                    self.send_response(403)
                    self.send_header("X-RateLimit-Remaining", "0")
                    self.send_header("X-RateLimit-Reset", "1767225600")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif server.flaky.get(self.path, 0) >= server.hits[self.path]:
                    self.send_error(503)
                elif self.path in FILES:
                    body = FILES[self.path].encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_fetch_reports_missing_and_malformed(server: Server, tmp_path: Path) -> None:
    waits: list[float] = []
    config = ClientConfig(server.url, retries=3, backoff_s=0.25, concurrency=2)
    repos = ["acme/rocket", "acme/widget", "acme/gone"]
    report = fetch_corpus(
        repos, tmp_path, config, ["activity", "stars"], progress=False, sleep=waits.append
    )
    assert report.fetched == 2 and report.retries == 2
    assert sorted(waits) == [0.25, 0.5]  # exponential backoff
    assert report.missing == [("acme/gone", "activity"), ("acme/gone", "stars")]
    malformed = dict(report.malformed)
    assert malformed[f"{server.url}/github/acme/widget/activity.json"] == "not valid JSON"
    assert "expected a number" in malformed[f"{server.url}/github/acme/widget/stars.json"]
    assert json.loads((tmp_path / "acme/rocket/activity.json").read_text())["2021-10-raw"] == 9
    assert not (tmp_path / "acme/widget").exists()  # malformed bodies are never cached
    saved = json.loads((tmp_path / "fetch_report.json").read_text())
    assert saved["missing"] == {"acme/gone": ["activity", "stars"]}
    again = fetch_corpus(repos[:1], tmp_path, config, ["activity", "stars"], progress=False)
    assert again.cached == 2 and again.fetched == 0
    assert server.hits["/github/acme/rocket/activity.json"] == 1


def test_failure_after_retries_and_legacy_layout(server: Server, tmp_path: Path) -> None:
    server.flaky["/github/acme/rocket/activity.json"] = 99
    config = ClientConfig(server.url, retries=1, backoff_s=0.0)
    report = fetch_corpus(
        ["acme/rocket"], tmp_path, config, ["activity"], progress=False, sleep=lambda s: None
    )
    assert report.failed == [
        (f"{server.url}/github/acme/rocket/activity.json", "HTTP 503 after 2 attempts")
    ]
    legacy = ClientConfig(server.url, layout="legacy")
    assert (
        legacy.url("old/layout", "activity")
        == f"{server.url}/open_digger/github/old/layout/activity.json"
    )
    report = fetch_corpus(["old/layout"], tmp_path, legacy, ["activity"], progress=False)
    assert report.fetched == 1 and (tmp_path / "old/layout/activity.json").is_file()


def test_bad_repository_names() -> None:
    assert check_repo(" acme/rocket ") == "acme/rocket"
    for bad in ("acme", "acme/rocket/x", "../etc", "acme/.."):
        with pytest.raises(TowerkitError, match="expected owner/name"):
            check_repo(bad)


def test_fetch_about_from_the_github_api(server: Server, tmp_path: Path) -> None:
    repos = ["acme/rocket", "acme/widget", "zeta/tool", "acme/gone", "limited/repo"]
    config = ClientConfig(server.url, retries=2, backoff_s=0.0)
    report = fetch_corpus(
        repos, tmp_path, config, [], about=server.url, token="t0k3n", progress=False
    )
    assert report.fetched == 2 and report.missing == [("acme/gone", "about")]
    assert dict(report.malformed) == {f"{server.url}/repos/acme/widget": "not valid JSON"}
    (url, reason), *_ = report.failed
    assert url == f"{server.url}/repos/limited/repo" and len(report.failed) == 1
    assert reason.startswith("HTTP 403: rate limit reached until 1767225600")
    assert "set GITHUB_TOKEN" in reason
    assert server.hits["/repos/limited/repo"] == 1  # a rate limit is not retried at once
    # only the about's keys are kept: no time-varying state such as archived or stars
    assert json.loads((tmp_path / "acme/rocket/about.json").read_text()) == {
        "description": "Rockets for everyone",
        "topics": ["space", "rust"],
        "language": "Rust",
    }
    assert json.loads((tmp_path / "zeta/tool/about.json").read_text())["description"] == ""
    sent = server.headers["/repos/acme/rocket"]
    assert sent["Authorization"] == "Bearer t0k3n" and sent["User-Agent"] == "towerkit-forecast"
    saved = (tmp_path / "fetch_report.json").read_text()
    assert "t0k3n" not in saved and json.loads(saved)["about_api"] == server.url
    again = fetch_corpus(repos[:1], tmp_path, config, [], about=server.url, progress=False)
    assert again.cached == 1 and server.hits["/repos/acme/rocket"] == 1

"""A repository's "about": its description, topics and language, for the text tower's profile.

OpenDigger has no repository descriptions. ``fetch --about`` takes them from the GitHub REST API
(``GET <api>/repos/<owner>/<repo>``) into ``<cache>/<owner>/<repo>/about.json``, next to the
metric files; a file written by hand in the same format works as well::

    {"description": "A JavaScript library for building user interfaces",
     "topics": ["react", "frontend"], "language": "JavaScript"}

Every key is optional. The about is what the repository says today, not at each cutoff: it is
read as a fixed trait of the repository (state that changes with time, such as ``archived``, is
left out, since a backtest would learn the future from it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GITHUB_API = "https://api.github.com"
ABOUT_FILE = "about.json"
GITHUB_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "towerkit-forecast",  # GitHub refuses requests without one
}


class MalformedAbout(ValueError):
    """An about file or API answer that is not what the format above says; names the source."""


@dataclass(frozen=True)
class About:
    description: str = ""
    topics: tuple[str, ...] = ()
    language: str = ""

    def text(self) -> str:
        """One sentence or three for the profile text; "" when nothing is known."""
        parts = [self.description.strip().rstrip(".")] if self.description.strip() else []
        if self.topics:
            parts.append("topics " + ", ".join(self.topics))
        if self.language:
            parts.append(f"written in {self.language}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "topics": list(self.topics),
            "language": self.language,
        }


def parse_about(data: Any, source: str) -> About:
    """The about of a JSON object (an about file, or the GitHub API's repository object)."""
    if not isinstance(data, dict):
        raise MalformedAbout(f"{source}: expected a JSON object")
    description, topics, language = (data.get(k) for k in ("description", "topics", "language"))
    if description is not None and not isinstance(description, str):
        raise MalformedAbout(f"{source}: 'description' must be a string or null")
    if language is not None and not isinstance(language, str):
        raise MalformedAbout(f"{source}: 'language' must be a string or null")
    if topics is not None and (
        not isinstance(topics, list) or not all(isinstance(t, str) for t in topics)
    ):
        raise MalformedAbout(f"{source}: 'topics' must be a list of strings")
    return About(description or "", tuple(topics or ()), language or "")


def about_from_body(body: bytes, source: str) -> bytes:
    """The about file to cache from an API answer (only the keys above): MalformedAbout when
    the body is not a repository object."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedAbout(f"{source}: not valid JSON") from None
    if isinstance(data, dict) and "full_name" not in data and "description" not in data:
        raise MalformedAbout(f"{source}: not a repository object (no full_name)")
    about = parse_about(data, source)
    return json.dumps(about.to_json(), ensure_ascii=False).encode("utf-8")


def read_about(path: Path) -> About:
    """The about file at ``path``; MalformedAbout naming the path when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedAbout(f"{path}: not valid JSON") from None
    return parse_about(data, str(path))

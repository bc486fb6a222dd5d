"""The element schema shared by every language's analyser, and the analysis file's layout.

``repository_analysis.json`` (``SCHEMA_VERSION``) holds ``project``, ``files`` (path, language,
sha256, lines, imports, element ids), ``elements`` (``CodeElement`` dicts), ``call_graph``,
``module_interactions``, ``patterns``, ``skipped`` (path + reason) and ``stats``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = "1.0"

LANGUAGE_BY_SUFFIX = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
}

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "get",
        "has",
        "have",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "set",
        "self",
        "cls",
        "the",
        "this",
        "to",
        "with",
        "none",
        "true",
        "false",
        "return",
        "returns",
        "args",
        "kwargs",
        "value",
        "values",
        "new",
        "obj",
        "param",
        "type",
        "str",
        "int",
        "bool",
        "dict",
        "list",
    ]
)


@dataclass
class Param:
    name: str
    annotation: str | None = None
    default: str | None = None


@dataclass
class CodeElement:
    """A function, method, class (or Go struct / interface) with everything generate needs."""

    id: str  # "<file>::<qualname>", unique in a repository
    kind: str  # function | method | class | interface
    name: str
    qualname: str
    language: str
    file: str  # repository-relative, forward slashes
    module: str
    start_line: int
    end_line: int
    params: list[Param] = field(default_factory=list)
    returns: str | None = None
    decorators: list[str] = field(default_factory=list)
    docstring: str = ""
    calls: list[str] = field(default_factory=list)
    parent: str | None = None  # enclosing class qualname, for methods
    bases: list[str] = field(default_factory=list)  # parent classes / embedded types
    complexity: int = 1
    keywords: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeElement:
        values = dict(data)
        values["params"] = [Param(**p) for p in data.get("params", [])]
        return cls(**values)

    @property
    def summary(self) -> str:
        """The docstring's first sentence (or an empty string)."""
        first = self.docstring.strip().split("\n\n")[0].replace("\n", " ").strip()
        return re.split(r"(?<=\.)\s", first, maxsplit=1)[0] if first else ""


@dataclass
class FileResult:
    """What one worker returns for one file."""

    path: str
    language: str
    sha256: str
    lines: int
    module: str
    imports: list[str] = field(default_factory=list)
    elements: list[CodeElement] = field(default_factory=list)
    docstring: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def split_identifier(name: str) -> list[str]:
    """snake_case and CamelCase parts, lowercased."""
    parts = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    return [p.lower() for p in parts]


def business_keywords(name: str, docstring: str, limit: int = 8) -> list[str]:
    """Domain words from the identifier and the docstring's first paragraph, most frequent first."""
    words = split_identifier(name)
    words += re.findall(r"[a-z]{3,}", docstring.split("\n\n")[0].lower())
    counts: dict[str, int] = {}
    for word in words:
        if len(word) > 2 and word not in _STOPWORDS:
            counts[word] = counts.get(word, 0) + 1
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def module_name(path: str) -> str:
    """Dotted module name of a repository-relative path (``src/`` and ``__init__`` dropped)."""
    parts = path.rsplit(".", 1)[0].split("/")
    if parts and parts[0] in ("src", "lib"):
        parts = parts[1:]
    if parts and parts[-1] in ("__init__", "index", "mod"):
        parts = parts[:-1]
    return ".".join(parts)

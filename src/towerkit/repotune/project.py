"""Project context: name, README description, technologies, key modules, architecture style."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from towerkit.repotune.schema import CodeElement

_README_NAMES = ("README.md", "README.rst", "README.txt", "README")


def _readme_description(root: Path) -> str:
    for name in _README_NAMES:
        path = root / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for block in re.split(r"\n\s*\n", text):
                plain = re.sub(r"<[^>]+>|[#*`=\[\]]", "", block).strip()
                if len(plain) > 40 and not plain.startswith(("!", "http")):
                    return " ".join(plain.split())
    return ""


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[(@]", spec.strip(), maxsplit=1)[0]


def _python_deps(root: Path) -> list[str]:
    deps: list[str] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        deps += [_requirement_name(d) for d in data.get("project", {}).get("dependencies", [])]
    for req in root.glob("requirements*.txt"):
        for line in req.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() and not line.lstrip().startswith(("#", "-")):
                deps.append(_requirement_name(line))
    return deps


def _other_deps(root: Path) -> list[str]:
    deps: list[str] = []
    package_json = root / "package.json"
    if package_json.is_file():
        data = json.loads(package_json.read_text(encoding="utf-8"))
        deps += list(data.get("dependencies", {})) + list(data.get("devDependencies", {}))
    go_mod = root / "go.mod"
    if go_mod.is_file():
        deps += re.findall(r"^\s*([\w./-]+\.[\w./-]+)\s+v[\d.]", go_mod.read_text(), flags=re.M)
    pom = root / "pom.xml"
    if pom.is_file():
        deps += re.findall(r"<artifactId>([^<]+)</artifactId>", pom.read_text())[1:]
    return deps


def technologies(root: Path, languages: Counter[str]) -> list[str]:
    """Languages by file count, then dependencies named in the dependency files."""
    found = [lang for lang, _ in languages.most_common()]
    for dep in _python_deps(root) + _other_deps(root):
        if dep and dep not in found:
            found.append(dep)
    return found


def architecture_style(modules: list[str], interactions: list[dict[str, Any]]) -> str:
    """A coarse label from folder names and import structure."""
    parts = {p for m in modules for p in m.split(".")}
    if {"models", "views"} <= parts or {"controllers", "views"} <= parts:
        return "MVC"
    if {"api", "services"} & parts and {"models", "repositories", "store"} & parts:
        return "layered (api / services / data)"
    if "plugins" in parts or "extensions" in parts:
        return "plugin-based"
    if len({m.split(".")[0] for m in modules if "." in m}) > 3:
        return "multi-package"
    fan_in = Counter(i["to"] for i in interactions)
    if fan_in and fan_in.most_common(1)[0][1] >= max(3, len(modules) // 2):
        return f"hub-and-spoke around {fan_in.most_common(1)[0][0]}"
    return "modular library"


def project_context(
    root: Path,
    package_doc: str,
    languages: Counter[str],
    elements: list[CodeElement],
    interactions: list[dict[str, Any]],
) -> dict[str, Any]:
    modules = sorted({e.module for e in elements})
    weight = Counter(e.module for e in elements)
    fan_in = Counter(i["to"] for i in interactions)
    key = sorted(modules, key=lambda m: (-(weight[m] + 2 * fan_in[m]), m))[:5]
    description = _readme_description(root) or " ".join(package_doc.split("\n\n")[0].split())
    return {
        "name": root.resolve().name,
        "description": description,
        "technologies": technologies(root, languages),
        "key_modules": key,
        "architecture": architecture_style(modules, interactions),
        "languages": dict(languages),
    }

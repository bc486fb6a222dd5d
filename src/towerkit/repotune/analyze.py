"""``towerkit repotune analyze``: a repository (folder or git URL) -> repository_analysis.json.

Only files whose sha256 changed since the previous analysis in the same output folder are parsed
again; parsing runs in a process pool behind a Rich progress bar. Files that do not parse are
listed under ``skipped`` with the reason and left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.progress import Progress

from towerkit.core.errors import TowerkitError
from towerkit.core.io import read_json_object, write_json_atomic
from towerkit.core.paths import towerkit_home
from towerkit.repotune.graph import call_graph, code_patterns, module_interactions
from towerkit.repotune.project import project_context
from towerkit.repotune.schema import (
    LANGUAGE_BY_SUFFIX,
    SCHEMA_VERSION,
    CodeElement,
    FileResult,
    module_name,
)

ANALYSIS_FILE = "repository_analysis.json"
_SKIP_DIRS = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        "build",
        "dist",
        "target",
        "vendor",
        "third_party",
        ".idea",
        ".vscode",
    ]
)
_MAX_BYTES = 1_000_000


def resolve_repository(target: str) -> Path:
    """A local folder as is; a git URL is cloned (shallow) into TOWERKIT_HOME/repotune/repos."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path.resolve()
    if "://" not in target and not target.startswith("git@"):
        raise TowerkitError(f"PATH {target!r}: not a folder and not a git URL")
    name = target.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
    digest = hashlib.sha256(target.encode()).hexdigest()[:10]
    dest = towerkit_home() / "repotune" / "repos" / f"{name}-{digest}"
    if not dest.is_dir():
        tmp = dest.with_name(dest.name + ".tmp")
        done = subprocess.run(
            ["git", "clone", "--depth", "1", "--quiet", target, str(tmp)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise TowerkitError(f"git clone {target}: {done.stderr.strip().splitlines()[-1:]}")
        os.replace(tmp, dest)
    return dest


def discover_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix in LANGUAGE_BY_SUFFIX and not name.endswith((".d.ts", ".min.js")):
                found.append(path)
    return found


def _module_for(root: Path, rel: str) -> str:
    base = module_name(rel)
    if (root / "__init__.py").is_file():  # the folder is a package: its name leads
        return f"{root.name}.{base}" if base else root.name
    return base or root.name


def analyzer_digest() -> str:
    """Changes whenever the analyser's code does, so cached file results are not reused."""
    digest = hashlib.sha256()
    for name in ("schema.py", "analyze_python.py", "analyze_treesitter.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def analyze_file(root: str, rel: str) -> FileResult:
    """Parse one file (runs in a worker process). Errors become ``FileResult.error``."""
    path = Path(root) / rel
    data = path.read_bytes()
    language = LANGUAGE_BY_SUFFIX[path.suffix]
    result = FileResult(
        path=rel,
        language=language,
        sha256=hashlib.sha256(data).hexdigest(),
        lines=data.count(b"\n") + 1,
        module=_module_for(Path(root), rel),
    )
    if len(data) > _MAX_BYTES:
        result.error = f"larger than {_MAX_BYTES} bytes"
        return result
    try:
        source = data.decode("utf-8")
        if language == "python":
            from towerkit.repotune.analyze_python import analyze_python

            return analyze_python(source, rel, result.module, result)
        from towerkit.repotune.analyze_treesitter import analyze_treesitter

        return analyze_treesitter(source, rel, result.module, result)
    except UnicodeDecodeError:
        result.error = "not UTF-8 text"
    except SyntaxError as exc:
        result.error = f"SyntaxError line {exc.lineno}: {exc.msg}"
    except Exception as exc:  # a grammar or parser failure: list the file, keep going
        result.error = f"{type(exc).__name__}: {exc}"
    result.elements = []
    return result


def _previous(out_file: Path) -> dict[str, FileResult]:
    if not out_file.is_file():
        return {}
    try:
        data = json.loads(out_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged earlier analysis: parse every file again and overwrite it
    if not isinstance(data, dict):
        return {}
    if data.get("schema_version") != SCHEMA_VERSION or data.get("analyzer") != analyzer_digest():
        return {}
    by_file: dict[str, list[CodeElement]] = {}
    for raw in data["elements"]:
        by_file.setdefault(raw["file"], []).append(CodeElement.from_dict(raw))
    cached = {}
    for info in data["files"]:
        result = FileResult(**{k: v for k, v in info.items() if k != "element_ids"})
        result.elements = by_file.get(info["path"], [])
        cached[info["path"]] = result
    for skipped in data.get("skipped", []):
        cached[skipped["path"]] = FileResult(**skipped["file"])
    return cached


def _parse_all(root: Path, todo: list[str], workers: int, progress: bool) -> list[FileResult]:
    results: list[FileResult] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("analysing", total=len(todo))
        if workers <= 1 or len(todo) < 8:
            for rel in todo:
                results.append(analyze_file(str(root), rel))
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                chunk = max(1, len(todo) // (workers * 4))
                for result in pool.map(
                    analyze_file, [str(root)] * len(todo), todo, chunksize=chunk
                ):
                    results.append(result)
                    bar.advance(task)
    return results


def analyze_repository(
    target: str | Path,
    out_dir: Path,
    *,
    workers: int | None = None,
    incremental: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Analyse ``target`` and write ``out_dir/repository_analysis.json``; returns the dict."""
    started = time.perf_counter()
    root = resolve_repository(str(target))
    files = [p.relative_to(root).as_posix() for p in discover_files(root)]
    if not files:
        raise TowerkitError(f"PATH {root}: no Python, JS/TS, Java or Go files found")
    out_file = out_dir / ANALYSIS_FILE
    cached = _previous(out_file) if incremental else {}
    todo: list[str] = []
    reused: list[FileResult] = []
    for rel in files:
        old = cached.get(rel)
        if old is not None and old.sha256 == hashlib.sha256((root / rel).read_bytes()).hexdigest():
            reused.append(old)
        else:
            todo.append(rel)
    parsed = _parse_all(root, todo, workers or os.cpu_count() or 1, progress)
    results = sorted([*parsed, *reused], key=lambda r: r.path)
    data = _assemble(root, results)
    data["stats"].update(
        files_parsed=len(parsed),
        files_reused=len(reused),
        seconds=round(time.perf_counter() - started, 3),
    )
    write_json_atomic(out_file, data)
    return data


def _assemble(root: Path, results: list[FileResult]) -> dict[str, Any]:
    good = [r for r in results if r.error is None]
    elements = [e for r in good for e in r.elements]
    interactions = module_interactions(good)
    package_doc = next((r.docstring for r in good if r.path == "__init__.py"), "")
    languages = Counter(r.language for r in good)
    file_rows = []
    for r in good:
        row = {k: v for k, v in vars(r).items() if k not in ("elements", "error")}
        file_rows.append({**row, "element_ids": [e.id for e in r.elements]})
    skipped = [
        {
            "path": r.path,
            "reason": r.error,
            "file": {k: v for k, v in vars(r).items() if k != "elements"},
        }
        for r in results
        if r.error is not None
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "analyzer": analyzer_digest(),
        "root": str(root),
        "project": project_context(root, package_doc, languages, elements, interactions),
        "files": file_rows,
        "elements": [e.to_dict() for e in elements],
        "call_graph": call_graph(elements, {r.path: r.imports for r in good}),
        "module_interactions": interactions,
        "patterns": code_patterns(elements, interactions),
        "skipped": skipped,
        "stats": {
            "files": len(good),
            "elements": len(elements),
            "lines": sum(r.lines for r in good),
            "skipped": len(skipped),
        },
    }


def load_analysis(path: Path) -> dict[str, Any]:
    """Read an analysis file, checking its schema version."""
    file = path / ANALYSIS_FILE if path.is_dir() else path
    if not file.is_file():
        raise TowerkitError(f"{file}: no analysis here; run `towerkit repotune analyze` first")
    data = read_json_object(file, "run `towerkit repotune analyze --full` again")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise TowerkitError(
            f"{file}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION!r}"
        )
    return data

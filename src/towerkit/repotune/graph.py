"""Call graph, module interactions and code patterns from the analysed elements."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from towerkit.repotune.schema import CodeElement, FileResult


def _resolve(
    call: str,
    caller: CodeElement,
    by_name: dict[str, list[CodeElement]],
    imports: list[str],
) -> CodeElement | None:
    """The element a call text most likely names: same class, same file, imported module, unique."""
    head, _, last = call.rpartition(".")
    candidates = [c for c in by_name.get(last, []) if c.id != caller.id]
    if not candidates:
        return None
    if head in ("self", "cls", "this", "super()") and caller.parent:
        same_class = [c for c in candidates if c.parent == caller.parent and c.file == caller.file]
        if same_class:
            return same_class[0]
    if not head:
        same_file = [c for c in candidates if c.file == caller.file and c.parent is None]
        if same_file:
            return same_file[0]
    imported = [
        c for c in candidates if any(c.module.endswith(i) or i.endswith(c.module) for i in imports)
    ]
    if head and imported:
        matching = [c for c in imported if c.module.endswith(head) or c.parent == head]
        return (matching or imported)[0] if len(matching or imported) == 1 else None
    if len(candidates) == 1 and (head or candidates[0].parent is None):
        return candidates[0]
    return None


def call_graph(elements: list[CodeElement], imports: dict[str, list[str]]) -> dict[str, list[str]]:
    """caller id -> callee ids, for calls that resolve to an element of the repository."""
    by_name: dict[str, list[CodeElement]] = defaultdict(list)
    for element in elements:
        by_name[element.name].append(element)
    graph: dict[str, list[str]] = {}
    for element in elements:
        callees: dict[str, None] = {}
        for call in element.calls:
            target = _resolve(call, element, by_name, imports.get(element.file, []))
            if target is not None:
                callees[target.id] = None
        if callees:
            graph[element.id] = list(callees)
    return graph


def callers_of(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    inverse: dict[str, list[str]] = defaultdict(list)
    for caller, callees in graph.items():
        for callee in callees:
            inverse[callee].append(caller)
    return dict(inverse)


def module_interactions(results: list[FileResult]) -> list[dict[str, Any]]:
    """Imports between the repository's own modules: from, to, the importing file."""
    own = {r.module: r.path for r in results}
    rows = []
    for result in results:
        for imported in result.imports:
            target = next((m for m in own if imported == m or imported.endswith("." + m)), None)
            if target is None:
                target = next((m for m in own if m.endswith("." + imported)), None)
            if target is not None and target != result.module:
                rows.append({"from": result.module, "to": target, "file": result.path})
    return rows


def code_patterns(
    elements: list[CodeElement], interactions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Class implementations (class + methods), functions with callers, module interactions."""
    methods: dict[tuple[str, str], list[str]] = defaultdict(list)
    for element in elements:
        if element.kind == "method" and element.parent:
            methods[(element.file, element.parent)].append(element.name)
    patterns: list[dict[str, Any]] = []
    for element in elements:
        if element.kind in ("class", "interface"):
            names = methods.get((element.file, element.qualname), [])
            patterns.append(
                {
                    "type": "class_implementation",
                    "element": element.id,
                    "methods": names,
                    "bases": element.bases,
                }
            )
    graph = call_graph(elements, {})
    for callee, callers in sorted(callers_of(graph).items()):
        patterns.append(
            {"type": "function_with_callers", "element": callee, "callers": sorted(callers)}
        )
    pairs = Counter((i["from"], i["to"]) for i in interactions)
    for (source, target), count in sorted(pairs.items()):
        patterns.append(
            {"type": "module_interaction", "from": source, "to": target, "imports": count}
        )
    return patterns

"""Question phrasings and grounded answers for each task type.

Every answer names the file and line range it was built from, taken from the analysis. The last
phrasing of each task is never used for training: it forms the held-out "unseen phrasings" set.
"""

from __future__ import annotations

from typing import Any

from towerkit.repotune.schema import CodeElement

PHRASINGS: dict[str, list[str]] = {
    "code_location": [
        "Where is `{q}` defined?",
        "In which file and lines can I find `{q}`?",
        "Point me to the source of `{q}`.",
        "Which file holds the {kind} `{q}`, and at what lines?",
        "I am looking for the code of `{q}`. Where does it live?",
    ],
    "code_explanation": [
        "What does `{q}` do?",
        "Explain the {kind} `{q}`.",
        "Give me a short explanation of `{q}` and where it is.",
        "Describe the purpose of `{q}` in this repository.",
    ],
    "api_usage": [
        "How do I call `{q}`?",
        "What parameters does `{q}` take?",
        "Show the signature of `{q}` and how to use it.",
        "Which arguments must I pass to `{q}`, and what does it return?",
    ],
    "architecture": [
        "How is the class `{q}` implemented?",
        "What is the structure of `{q}` and how does it fit in the code base?",
        "Walk me through the design of `{q}`.",
    ],
    "implementation_path": [
        "I need to change how `{q}` behaves. Which code path should I follow?",
        "What code would I touch to modify `{q}`?",
        "Trace the call path around `{q}` so I can implement a change there.",
    ],
    "design_proposal": [
        "How would you extend `{q}` to support a new kind of {topic}?",
        "Propose a design for adding new {topic} handling to `{q}`.",
        "What is a good way to add a variant of `{q}` for {topic}?",
    ],
    "project_overview": [
        "What is the {q} project about?",
        "Give me an overview of {q}.",
        "Summarise the {q} code base: purpose, technologies and main modules.",
    ],
}
DIFFICULTY = {
    "code_location": "easy",
    "code_explanation": "medium",
    "api_usage": "medium",
    "project_overview": "easy",
    "architecture": "hard",
    "implementation_path": "hard",
    "design_proposal": "hard",
}


def location(e: CodeElement) -> str:
    return f"`{e.qualname}` is a {e.kind} in `{e.file}`, lines {e.start_line}-{e.end_line}"


def signature(e: CodeElement) -> str:
    parts = []
    for p in e.params:
        text = p.name + (f": {p.annotation}" if p.annotation else "")
        parts.append(text + (f" = {p.default}" if p.default is not None else ""))
    returns = f" -> {e.returns}" if e.returns else ""
    return f"{e.name}({', '.join(parts)}){returns}"


def _param_lines(e: CodeElement) -> str:
    rows = []
    for p in e.params:
        detail = ", ".join(
            x
            for x in (
                f"type {p.annotation}" if p.annotation else "",
                f"default {p.default}" if p.default is not None else "required",
            )
            if x
        )
        rows.append(f"- `{p.name}` ({detail})")
    return "\n".join(rows) if rows else "- no parameters"


def _cite(elements: list[CodeElement], limit: int = 4) -> str:
    return "; ".join(
        f"`{c.qualname}` (`{c.file}`, lines {c.start_line}-{c.end_line})" for c in elements[:limit]
    )


def explanation(e: CodeElement, callees: list[CodeElement]) -> str:
    text = location(e) + f" (module `{e.module}`)."
    text += (
        f" {e.summary}"
        if e.summary
        else f" Its name suggests it deals with {', '.join(e.keywords[:3]) or e.name}."
    )
    if e.parent:
        text += f" It belongs to `{e.parent}`."
    if e.bases:
        text += f" It derives from {', '.join(f'`{b}`' for b in e.bases)}."
    if callees:
        text += f" It calls {_cite(callees, 3)}."
    if e.kind in ("function", "method"):
        text += f" Cyclomatic complexity: {e.complexity}."
    return text


def api_usage(e: CodeElement) -> str:
    text = location(e) + f".\nSignature: `{signature(e)}`\nParameters:\n{_param_lines(e)}"
    if e.decorators:
        text += f"\nDecorators: {', '.join(f'`@{d}`' for d in e.decorators)}"
    required = [p.name for p in e.params if p.default is None and not p.name.startswith("*")]
    call = f"{e.parent + '(...).' if e.kind == 'method' and e.parent else ''}{e.name}({', '.join(required)})"
    return text + f"\nExample: `{call}`"


def architecture(e: CodeElement, methods: list[CodeElement], users: list[CodeElement]) -> str:
    steps = [f"1. Locate it: {location(e)}."]
    steps.append(
        "2. Inheritance: "
        + (
            f"it derives from {', '.join(f'`{b}`' for b in e.bases)}."
            if e.bases
            else "it has no base class."
        )
    )
    steps.append(f"3. Methods: {_cite(methods, 5) if methods else 'none of its own'}.")
    steps.append(
        f"4. Used by: {_cite(users, 3) if users else 'no caller found in the repository'}."
    )
    summary = e.summary or f"a {e.kind} about {', '.join(e.keywords[:3]) or e.name}"
    return "Reasoning:\n" + "\n".join(steps) + f"\nAnswer: `{e.qualname}` is {summary.rstrip('.')}."


def implementation_path(
    e: CodeElement, callers: list[CodeElement], callees: list[CodeElement]
) -> str:
    steps = [f"1. Start at the {e.kind}: {location(e)}."]
    steps.append(
        f"2. Callers that will see the change: {_cite(callers) if callers else 'none inside the repository'}."
    )
    steps.append(
        f"3. Code it relies on: {_cite(callees) if callees else 'no repository functions'}."
    )
    steps.append(
        f"4. Keep the signature `{signature(e)}` compatible or update the callers listed above."
    )
    return (
        "Reasoning:\n"
        + "\n".join(steps)
        + f"\nAnswer: edit `{e.file}` lines {e.start_line}-{e.end_line}, then the callers."
    )


def design_proposal(e: CodeElement, methods: list[CodeElement], topic: str) -> str:
    hooks = methods[:3]
    steps = [f"1. The extension point: {location(e)}."]
    if e.bases:
        steps.append(
            f"2. It already extends {', '.join(f'`{b}`' for b in e.bases)}; follow that pattern."
        )
    else:
        steps.append("2. It has no base class, so a subclass is the least invasive change.")
    steps.append(
        f"3. Override {_cite(hooks) if hooks else 'the behaviour that differs'} in the subclass."
    )
    steps.append(f"4. Keep the new {topic} handling there so existing users are unaffected.")
    return (
        "Reasoning:\n"
        + "\n".join(steps)
        + (
            f"\nAnswer: add a subclass of `{e.qualname}` next to `{e.file}` (lines {e.start_line}-{e.end_line}) for the new {topic} handling."
        )
    )


def project_overview(project: dict[str, Any], cited: list[CodeElement]) -> str:
    text = f"{project['name']}: {project['description'] or 'no README description'}"
    text += f"\nTechnologies: {', '.join(project['technologies']) or 'unknown'}."
    text += f"\nKey modules: {', '.join(f'`{m}`' for m in project['key_modules'])}."
    text += f"\nArchitecture: {project['architecture']}."
    if cited:
        text += f"\nMain entry points: {_cite(cited, 3)}."
    return text

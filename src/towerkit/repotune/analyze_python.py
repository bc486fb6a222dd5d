"""Python files through the standard ``ast``: elements, imports, calls, complexity."""

from __future__ import annotations

import ast

from towerkit.repotune.schema import CodeElement, FileResult, Param, business_keywords

_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.Assert)
_Def = ast.FunctionDef | ast.AsyncFunctionDef


def cyclomatic_complexity(node: ast.AST) -> int:
    """McCabe's number: 1 + decision points (branches, boolean operators, comprehension ifs).

    Written out because the maintained tools (radon, mccabe) work on files or print reports,
    and this walk is a dozen lines over a tree we already have.
    """
    score = 1
    for child in ast.walk(node):
        if isinstance(child, _BRANCHES):
            score += 1
        elif isinstance(child, ast.BoolOp):
            score += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            score += 1 + len(child.ifs)
        elif isinstance(child, ast.match_case):
            score += 1
    return score


def _text(node: ast.AST | None, limit: int = 80) -> str | None:
    if node is None:
        return None
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _params(fn: _Def) -> list[Param]:
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    params = [
        Param(a.arg, _text(a.annotation), _text(d))
        for a, d in zip(positional, defaults, strict=True)
    ]
    if args.vararg is not None:
        params.append(Param("*" + args.vararg.arg, _text(args.vararg.annotation)))
    params += [
        Param(a.arg, _text(a.annotation), _text(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg is not None:
        params.append(Param("**" + args.kwarg.arg, _text(args.kwarg.annotation)))
    return [p for p in params if p.name not in ("self", "cls")]


def _calls(node: ast.AST) -> list[str]:
    seen: dict[str, None] = {}
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            name = _text(child.func, 60)
            if name and "(" not in name and "[" not in name:
                seen[name] = None
    return list(seen)


def _imports(tree: ast.Module, module: str) -> list[str]:
    package = module.rsplit(".", 1)[0] if "." in module else ""
    found: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.name] = None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([p for p in anchor if p] + ([base] if base else []))
            if base:
                found[base] = None
    return list(found)


def _element(node: _Def | ast.ClassDef, path: str, module: str, parent: str | None) -> CodeElement:
    qualname = f"{parent}.{node.name}" if parent else node.name
    is_class = isinstance(node, ast.ClassDef)
    docstring = ast.get_docstring(node) or ""
    return CodeElement(
        id=f"{path}::{qualname}",
        kind="class" if is_class else ("method" if parent else "function"),
        name=node.name,
        qualname=qualname,
        language="python",
        file=path,
        module=module,
        start_line=min([node.lineno, *(d.lineno for d in node.decorator_list)]),
        end_line=node.end_lineno or node.lineno,
        params=[] if is_class else _params(node),  # type: ignore[arg-type]
        returns=None if is_class else _text(node.returns),  # type: ignore[union-attr]
        decorators=[_text(d) or "" for d in node.decorator_list],
        docstring=docstring,
        calls=[] if is_class else _calls(node),
        parent=parent,
        bases=[_text(b) or "" for b in node.bases] if is_class else [],  # type: ignore[union-attr]
        complexity=1 if is_class else cyclomatic_complexity(node),
        keywords=business_keywords(node.name, docstring),
    )


def _walk(
    body: list[ast.stmt], path: str, module: str, parent: str | None, out: list[CodeElement]
) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            element = _element(node, path, module, parent)
            out.append(element)
            if isinstance(node, ast.ClassDef):
                _walk(node.body, path, module, element.qualname, out)


def analyze_python(source: str, path: str, module: str, result: FileResult) -> FileResult:
    """Fill ``result`` from the source; a SyntaxError propagates (the caller lists the file)."""
    tree = ast.parse(source, filename=path)
    result.docstring = ast.get_docstring(tree) or ""
    result.imports = _imports(tree, module)
    _walk(tree.body, path, module, None, result.elements)
    return result

"""JavaScript/TypeScript, Java and Go through tree-sitter, into the same element schema as Python.

Grammars come from tree-sitter-language-pack when it has them on disk, else from the per-language
wheels (tree-sitter-javascript, -typescript, -java, -go), which ship compiled grammars: the
language pack 1.x downloads its parsers on first use, which offline machines cannot do.
"""

from __future__ import annotations

import importlib
import posixpath
from functools import cache
from typing import Any

from towerkit.repotune.schema import (
    CodeElement,
    FileResult,
    Param,
    business_keywords,
    module_name,
)

_WHEELS = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "java": ("tree_sitter_java", "language"),
    "go": ("tree_sitter_go", "language"),
}
_BRANCH_TYPES = frozenset(
    [
        "if_statement",
        "for_statement",
        "for_in_statement",
        "enhanced_for_statement",
        "while_statement",
        "do_statement",
        "catch_clause",
        "conditional_expression",
        "ternary_expression",
        "switch_case",
        "switch_label",
        "expression_case",
        "type_case",
        "communication_case",
    ]
)
_FUNCTION_TYPES = {
    "javascript": {"function_declaration", "generator_function_declaration", "method_definition"},
    "java": {"method_declaration", "constructor_declaration"},
    "go": {"function_declaration", "method_declaration"},
}
_CLASS_TYPES = {
    "javascript": {"class_declaration", "abstract_class_declaration", "interface_declaration"},
    "java": {
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
    },
    "go": {"type_spec"},
}


class GrammarMissing(Exception):
    """No grammar for a language on this machine."""


@cache
def get_parser(language: str) -> Any:
    import tree_sitter

    try:
        import tree_sitter_language_pack as pack

        if language in pack.downloaded_languages():
            return pack.get_parser(language)
    except ImportError:
        pass
    module_name, attr = _WHEELS[language]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GrammarMissing(f"no {language} grammar: pip install {module_name}") from exc
    return tree_sitter.Parser(tree_sitter.Language(getattr(module, attr)()))


def _family(language: str) -> str:
    return "javascript" if language in ("javascript", "typescript", "tsx") else language


def _txt(node: Any | None) -> str | None:
    return None if node is None else node.text.decode("utf-8", "replace")


def _complexity(node: Any) -> int:
    score, stack = 1, [node]
    while stack:
        current = stack.pop()
        if current.type in _BRANCH_TYPES:
            score += 1
        elif current.type == "binary_expression":
            operator = current.child_by_field_name("operator")
            score += int(_txt(operator) in ("&&", "||"))
        stack.extend(current.children)
    return score


def _calls(node: Any) -> list[str]:
    seen: dict[str, None] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "call_expression":
            name = _txt(current.child_by_field_name("function"))
        elif current.type == "method_invocation":
            obj, method = current.child_by_field_name("object"), current.child_by_field_name("name")
            name = f"{_txt(obj)}.{_txt(method)}" if obj is not None else _txt(method)
        else:
            name = None
        if name and len(name) <= 60 and "(" not in name and "\n" not in name:
            seen[name] = None
        stack.extend(reversed(current.children))
    return list(seen)


def _doc_comment(node: Any) -> str:
    """The comment block right above a declaration (JSDoc / Javadoc / Go doc comment)."""
    if node.parent is not None and node.parent.type == "export_statement":
        node = node.parent
    lines: list[str] = []
    sibling = node.prev_named_sibling
    end_row = node.start_point[0]
    while sibling is not None and "comment" in sibling.type and sibling.end_point[0] >= end_row - 1:
        lines.insert(0, _txt(sibling) or "")
        end_row = sibling.start_point[0]
        sibling = sibling.prev_named_sibling
    text = "\n".join(lines)
    cleaned = [ln.strip().lstrip("/*").rstrip("*/").strip() for ln in text.splitlines()]
    return "\n".join(ln for ln in cleaned if ln and not ln.startswith("@")).strip()


def _param(node: Any, family: str) -> list[Param]:
    kind = node.type
    if family == "go" and kind in ("parameter_declaration", "variadic_parameter_declaration"):
        type_text = _txt(node.child_by_field_name("type"))
        names = [_txt(c) or "" for c in node.children_by_field_name("name")]
        return [Param(n, type_text) for n in names] or [Param("_", type_text)]
    if kind in ("identifier", "shorthand_property_identifier_pattern"):
        return [Param(_txt(node) or "")]
    if kind in ("required_parameter", "optional_parameter"):
        annotation = _txt(node.child_by_field_name("type"))
        default = _txt(node.child_by_field_name("value"))
        name = _txt(node.child_by_field_name("pattern")) or ""
        return [Param(name, annotation.lstrip(": ") if annotation else None, default)]
    if kind == "assignment_pattern":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        return [Param(_txt(left) or "", None, _txt(right))]
    if kind in ("formal_parameter", "spread_parameter"):
        name = node.child_by_field_name("name") or node.named_children[-1]
        return [Param(_txt(name) or "", _txt(node.child_by_field_name("type")))]
    if kind == "rest_pattern":
        return [Param("..." + (_txt(node.named_children[0]) or ""))]
    return []


def _params(node: Any, family: str) -> list[Param]:
    plist = node.child_by_field_name("parameters")
    if plist is None:
        return []
    return [p for child in plist.named_children for p in _param(child, family)]


def _returns(node: Any, family: str) -> str | None:
    field_name = {"javascript": "return_type", "java": "type", "go": "result"}[family]
    text = _txt(node.child_by_field_name(field_name))
    return text.lstrip(": ").strip() if text else None


def _name(node: Any) -> str:
    return _txt(node.child_by_field_name("name")) or "<anonymous>"


def _bases(node: Any, family: str) -> list[str]:
    if family == "go":
        body = node.child_by_field_name("type")
        if body is None or body.type not in ("struct_type", "interface_type"):
            return []
        embedded = [c for c in _descendants(body) if c.type == "field_declaration"]
        return [_txt(c) or "" for c in embedded if c.child_by_field_name("name") is None]
    found = []
    for child in node.named_children:
        if child.type in ("class_heritage", "superclass", "super_interfaces", "extends_clause"):
            found += [
                _txt(c) or ""
                for c in _descendants(child)
                if c.type in ("identifier", "type_identifier", "member_expression")
                and c.parent is not None
                and c.parent.type != "member_expression"
            ]
    return found


def _descendants(node: Any) -> list[Any]:
    out, stack = [], list(node.named_children)
    while stack:
        current = stack.pop(0)
        out.append(current)
        stack.extend(current.named_children)
    return out


def _decorators(node: Any) -> list[str]:
    found = []
    for child in node.children:
        if child.type == "decorator":
            found.append((_txt(child) or "").lstrip("@"))
        elif child.type == "modifiers":
            found += [
                (_txt(c) or "").lstrip("@") for c in child.named_children if "annotation" in c.type
            ]
    return found


class _Collector:
    def __init__(self, path: str, module: str, language: str) -> None:
        self.path, self.module, self.language = path, module, language
        self.family = _family(language)
        self.elements: list[CodeElement] = []
        self.imports: dict[str, None] = {}

    def element(self, node: Any, kind: str, name: str, parent: str | None) -> CodeElement:
        qualname = f"{parent}.{name}" if parent else name
        is_fn = kind in ("function", "method")
        docstring = _doc_comment(node.parent if node.type == "type_spec" else node)
        return CodeElement(
            id=f"{self.path}::{qualname}",
            kind=kind,
            name=name,
            qualname=qualname,
            language=self.language,
            file=self.path,
            module=self.module,
            start_line=node.start_point[0] + 1,
            end_line=node.end_point[0] + 1,
            params=_params(node, self.family) if is_fn else [],
            returns=_returns(node, self.family) if is_fn else None,
            decorators=_decorators(node),
            docstring=docstring,
            calls=_calls(node) if is_fn else [],
            parent=parent,
            bases=[] if is_fn else _bases(node, self.family),
            complexity=_complexity(node) if is_fn else 1,
            keywords=business_keywords(name, docstring),
        )

    def add_import(self, text: str) -> None:
        text = text.strip("'\"`").removeprefix("static ")
        if text.startswith("."):  # relative JS/TS import: the module it points at in this repo
            target = posixpath.normpath(posixpath.join(posixpath.dirname(self.path), text))
            text = module_name(target + ("" if "." in posixpath.basename(target) else ".js"))
        self.imports[text] = None

    def visit(self, node: Any, parent: str | None) -> None:
        family, kind = self.family, node.type
        if node.is_error:
            return
        if kind == "call_expression" and _txt(node.child_by_field_name("function")) == "require":
            args = node.child_by_field_name("arguments")
            if args is not None and args.named_children and args.named_children[0].type == "string":
                self.add_import(_txt(args.named_children[0]) or "")
        if kind in ("import_statement", "import_spec") or (
            kind == "import_declaration" and family == "java"
        ):
            source = node.child_by_field_name("source") or node.child_by_field_name("path")
            self.add_import(_txt(source) or (_txt(node) or "").removeprefix("import").strip(" ;"))
        if kind in _FUNCTION_TYPES[family]:
            method = parent is not None or kind == "method_declaration"
            owner = parent
            if family == "go" and kind == "method_declaration":
                receiver = node.child_by_field_name("receiver")
                owner = (_txt(receiver) or "").strip("()").split()[-1].lstrip("*")
            self.elements.append(
                self.element(node, "method" if method else "function", _name(node), owner)
            )
            return
        if kind == "variable_declarator" and family == "javascript":
            value = node.child_by_field_name("value")
            if value is not None and value.type in ("arrow_function", "function_expression"):
                value_el = self.element(value, "function", _name(node), parent)
                value_el.start_line = node.start_point[0] + 1
                value_el.docstring = _doc_comment(node.parent) if node.parent else ""
                self.elements.append(value_el)
                return
        if kind in _CLASS_TYPES[family]:
            if family == "go":
                body = node.child_by_field_name("type")
                if body is None or body.type not in ("struct_type", "interface_type"):
                    return
                label = "interface" if body.type == "interface_type" else "class"
            else:
                label = "interface" if kind == "interface_declaration" else "class"
            element = self.element(node, label, _name(node), parent)
            self.elements.append(element)
            for child in node.named_children:
                self.visit(child, element.qualname)
            return
        for child in node.named_children:
            self.visit(child, parent)


def _error_rows(root: Any) -> list[int]:
    rows: set[int] = set()
    for node in _descendants(root):
        if node.is_error or node.is_missing:
            rows.update(range(node.start_point[0] + 1, node.end_point[0] + 2))
    return sorted(rows)


def analyze_treesitter(source: str, path: str, module: str, result: FileResult) -> FileResult:
    """Fill ``result``. tree-sitter recovers from local errors: a file with a few bad lines keeps
    its other elements and lists the lines in ``warnings``; one where errors cover more than a
    fifth of the lines raises ValueError (the caller lists it as skipped)."""
    tree = get_parser(result.language).parse(source.encode("utf-8"))
    if tree.root_node.has_error:
        rows = _error_rows(tree.root_node)
        if tree.root_node.is_error or len(rows) > 0.2 * max(result.lines, 1):
            raise ValueError(f"syntax errors on {len(rows)} lines, first near line {rows[0]}")
        result.warnings.append(
            f"syntax errors near lines {rows[0]}-{rows[-1]}; elements there skipped"
        )
    collector = _Collector(path, module, result.language)
    collector.visit(tree.root_node, None)
    result.elements = collector.elements
    result.imports = list(collector.imports)
    return result

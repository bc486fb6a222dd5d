"""Typed dataclass configs: YAML files, ``key.sub=value`` overrides, one-line validation errors.

Written here rather than taken from OmegaConf/pydantic because the errors must name the file
(or the override) and the dotted key in one line, and configs must stay plain dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml

from towerkit.core.errors import ConfigError
from towerkit.core.io import write_text_atomic

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    """``tp`` as a type-error message says it: a union lists its choices ("int or None"), a
    Literal its values ("one of 'lstm', 'transformer'"), not typing's "Union"/"Literal"."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        names: list[str] = []
        for option in (o for o in options if o is not type(None)):
            if get_origin(option) is typing.Literal:  # flattened: "'auto' or int"
                names += [repr(v) for v in get_args(option)]
            else:
                names.append(_type_name(option))
        if type(None) in options:
            names.append("None")
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp``; convert only where lossless (int -> float)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                continue
        raise _type_error(value, tp, key, source)
    if origin is typing.Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(
            f"{source}: key '{key}': expected one of {list(get_args(tp))}, got {value!r}"
        )
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, key, source)
        return _build(tp, value, source, key + ".")
    if origin in (list, Sequence, tuple):
        if not isinstance(value, list | tuple):
            raise _type_error(value, tp, key, source)
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, key, source)
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", source) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, str | Path):
        return Path(value)
    if tp is bool and not isinstance(value, bool):
        raise _type_error(value, tp, key, source)
    if tp is int and isinstance(value, bool):
        raise _type_error(value, tp, key, source)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _type_error(value, tp, key, source)


def check_value(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check one value against annotation ``tp`` (a ConfigError naming ``key`` and ``source``
    if it does not fit); for a section validated apart from its dataclass."""
    return _coerce(value, tp, key, source)


def _type_error(value: Any, tp: Any, key: str, source: str) -> ConfigError:
    got = f"{value!r} ({type(value).__name__})"
    return ConfigError(f"{source}: key '{key}': expected {_type_name(tp)}, got {got}")


def _build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for name in data:
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{prefix}{name}' (known keys: {known})")
    kwargs = {name: _coerce(v, hints[name], prefix + name, source) for name, v in data.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{source}: missing required key '{prefix}{missing[0]}'")
    return cls(**kwargs)


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from a nested mapping, validating every key and type."""
    return _build(cls, data, source)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON/YAML-safe nested dict of a dataclass config."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML, so 3 is int and [1,2] a list)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _set_nested(
    data: dict[str, Any], keys: list[str], value: Any, resolved: Any, where: str
) -> None:
    """Set ``keys`` in ``data``; a numeric key indexes a list (``trainer.stages.0.epochs=1``).
    A list the file leaves to its default is copied from ``resolved`` (the config so far) first,
    so an index reaches the default stages too."""
    node: Any = data
    for depth, key in enumerate(keys[:-1]):
        resolved = _child(resolved, key)
        if isinstance(node, list):
            node = node[_list_index(node, key, keys[: depth + 1], where)]
            continue
        child = node.get(key)
        if child is None and isinstance(resolved, list):
            child = copy.deepcopy(resolved)
            node[key] = child
        elif not isinstance(child, (dict, list)):
            child = {}
            node[key] = child
        node = child
    if isinstance(node, list):
        node[_list_index(node, keys[-1], keys, where)] = value
    else:
        node[keys[-1]] = value


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return None


def _list_index(node: list[Any], key: str, path: list[str], where: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(
            f"{where}: key {'.'.join(path)!r}: expected a list index 0..{len(node) - 1}, "
            f"got {key!r}"
        )
    return int(key)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}:{where} is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """YAML file (optional) + overrides -> validated dataclass. Errors name the file or override."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    source = f"config file {path}" if path is not None else "config"
    resolved = from_dict(cls, data, source)  # report file errors against the file itself
    for text in overrides:
        keys, value = parse_override(text)
        where = f"override {text!r}"
        _set_nested(data, keys, value, to_dict(resolved), where)
        resolved = from_dict(cls, data, where)
    return from_dict(cls, data, source)


def save_config(config: Any, path: str | Path) -> None:
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def config_hash(config: Any) -> str:
    """A stable short hash of the resolved config (for the registry's lineage)."""
    blob = json.dumps(to_dict(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_ranges(
    section: str,
    config: Any,
    *,
    fractions: Sequence[str] = (),
    probabilities: Sequence[str] = (),
    positive: Sequence[str] = (),
    non_negative: Sequence[str] = (),
) -> None:
    """A recipe section's bounded numbers, checked when the config loads (a val_fraction of 2
    was a scikit-learn traceback once the data was read): ``fractions`` in (0, 1),
    ``probabilities`` (dropout) in [0, 1), ``positive`` > 0 (>= 1 for an int), ``non_negative``
    >= 0. A None (a model section's "the architecture's default") is not checked; a list (vision
    widths) must be non-empty and each of its numbers is checked."""

    def values(key: str) -> list[Any]:
        value = getattr(config, key)
        if value is None:
            return []
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{section}: {key}: expected a non-empty list, got []")
            return value
        return [value]

    def shown(key: str, value: Any) -> str:
        whole = getattr(config, key)
        return f"{value} (in {whole})" if isinstance(whole, list) else f"{value}"

    for key in fractions:
        for value in values(key):
            if not 0 < value < 1:
                raise ConfigError(
                    f"{section}: {key}: expected 0 < value < 1, got {shown(key, value)}"
                )
    for key in probabilities:
        for value in values(key):
            if not 0 <= value < 1:
                raise ConfigError(
                    f"{section}: {key}: expected 0 <= value < 1, got {shown(key, value)}"
                )
    for key in positive:
        for value in values(key):
            if value <= 0:
                bound = ">= 1" if isinstance(value, int) else "> 0"
                raise ConfigError(f"{section}: {key}: expected {bound}, got {shown(key, value)}")
    for key in non_negative:
        for value in values(key):
            if value < 0:
                raise ConfigError(f"{section}: {key}: expected >= 0, got {shown(key, value)}")

"""BaseModel: an nn.Module that carries its typed config and saves as safetensors + config.json.

Also a timm-style registry of builder functions: ``create_model("vision-cnn-small")``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import towerkit
from towerkit.core.config import from_dict, to_dict
from towerkit.core.errors import ConfigError, ModelLoadError
from towerkit.core.io import atomic_dir

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
M = TypeVar("M", bound="BaseModel")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (batchnorm statistics, no dropout) inside, the caller's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class BaseModel(nn.Module):
    """Subclasses set ``config_class`` (a dataclass) and build their layers from ``self.config``."""

    config_class: ClassVar[type]
    _known_classes: ClassVar[dict[str, type[BaseModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BaseModel._known_classes[cls.class_path()] = cls

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__}: expected a {self.config_class.__name__} config, "
                f"got {type(config).__name__}"
            )
        self.config = config

    @classmethod
    def class_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` atomically (the folder is replaced whole)."""
        directory = Path(directory)
        # clone: safetensors refuses tensors that share memory (tied weights)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        meta: dict[str, Any] = {
            "class": self.class_path(),
            "config": to_dict(self.config),
            "towerkit_version": towerkit.__version__,
        }
        with atomic_dir(directory) as tmp:
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"class": self.class_path()})
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str = "cpu") -> M:
        """Rebuild the saved class from config.json and load its weights (never pickle)."""
        directory = Path(directory)
        meta = read_model_meta(directory)
        model_cls = resolve_model_class(meta["class"], directory)
        if not issubclass(model_cls, cls):
            raise ModelLoadError(
                f"{directory / CONFIG_NAME}: saved class {meta['class']} is not a {cls.__name__}"
            )
        config: Any = from_dict(
            model_cls.config_class, meta["config"], str(directory / CONFIG_NAME)
        )
        model = model_cls(config)
        assert isinstance(model, cls)
        state = load_file(str(directory / WEIGHTS_NAME), device=map_location)
        _load_state_strict(model, state, directory / WEIGHTS_NAME)
        model.eval()
        return model


def read_model_meta(directory: Path) -> dict[str, Any]:
    config_path = directory / CONFIG_NAME
    if not config_path.is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise ModelLoadError(f"{directory}: expected {CONFIG_NAME} and {WEIGHTS_NAME} there")
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(
            f"{config_path}: not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(meta, dict) or "class" not in meta or "config" not in meta:
        raise ModelLoadError(f"{config_path}: expected keys 'class' and 'config'")
    return meta


def resolve_model_class(path: str, directory: Path) -> type[BaseModel]:
    """A class already defined in this process, or one from towerkit's own modules: a config.json
    must not choose arbitrary code to import."""
    if path in BaseModel._known_classes:
        return BaseModel._known_classes[path]
    module_name, _, qualname = path.rpartition(".")
    if not module_name.startswith("towerkit."):
        raise ModelLoadError(f"{directory / CONFIG_NAME}: class {path!r} is not a towerkit model")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ModelLoadError(f"{directory / CONFIG_NAME}: unknown model class {path!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        raise ModelLoadError(f"{directory / CONFIG_NAME}: {path!r} is not a BaseModel subclass")
    return obj


def _load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelLoadError(
            f"{source}: weights do not match the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelLoadError(
                f"{source}: weight '{name}' has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=True)


# --- builder registry (timm style) -------------------------------------------------------------

ModelBuilder = Callable[..., BaseModel]
_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: ``@register_model("vision-cnn-small")`` on a function returning a BaseModel."""

    def wrap(fn: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"model name {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return wrap


def create_model(name: str, **overrides: Any) -> BaseModel:
    """Build a registered model; keyword overrides replace fields of its default config."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r} (known: {', '.join(list_models()) or 'none'})")
    return _BUILDERS[name](**overrides)


def list_models(prefix: str = "") -> list[str]:
    return sorted(n for n in _BUILDERS if n.startswith(prefix))


def replace_config(config: Any, **overrides: Any) -> Any:
    """dataclasses.replace with a one-line error for unknown fields."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{type(config).__name__}: unknown key '{unknown[0]}'")
    return dataclasses.replace(config, **overrides)

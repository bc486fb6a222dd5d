"""Prompts for the offline text generator, read from a YAML file (``configs/rec/prompts/*.yaml``).

A prompt file has one section per kind of text, ``user`` (a preference summary written from the
user's history) and ``item`` (a description written from the item's metadata)::

    user:
      system: You summarise what a person likes ...
      prompt: "Items this person chose, oldest first:\\n{history}\\n..."
      template: "Likes {top_facets}. Recently chose {recent}."
      max_new_tokens: 64

``prompt`` is what a language model reads, ``template`` what the deterministic template backend
writes; both are ``str.format`` strings over the fields ``textgen.requests`` builds (named in
``USER_FIELDS`` / ``ITEM_FIELDS``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError

USER_FIELDS = ("history", "recent", "top_facets", "n_items")
ITEM_FIELDS = ("title", "facets", "metadata", "text")


@dataclass
class PromptConfig:
    system: str = ""
    prompt: str = ""
    template: str = ""
    max_new_tokens: int = 64
    max_chars: int = 400  # longer outputs are cut at a word boundary


@dataclass
class PromptSet:
    user: PromptConfig = field(default_factory=PromptConfig)
    item: PromptConfig = field(default_factory=PromptConfig)
    max_history: int = 20  # the most recent items a user prompt lists
    n_recent: int = 3
    n_facets: int = 3


def _check_fields(text: str, allowed: tuple[str, ...], where: str) -> None:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in allowed:
            raise ConfigError(
                f"{where}: unknown field {{{name}}}; expected one of {', '.join(allowed)}"
            )


def load_prompts(path: str | Path, overrides: list[str] | None = None) -> PromptSet:
    """Read a prompt file; an unknown ``{field}`` in a prompt or template is a ConfigError."""
    prompts = load_config(PromptSet, path, overrides or [])
    for kind, allowed in (("user", USER_FIELDS), ("item", ITEM_FIELDS)):
        section: PromptConfig = getattr(prompts, kind)
        for key in ("prompt", "template"):
            text = getattr(section, key)
            if not text.strip():
                raise ConfigError(f"{path}: key '{kind}.{key}': expected a non-empty string")
            _check_fields(text, allowed, f"{path}: key '{kind}.{key}'")
        if section.max_new_tokens < 1 or section.max_chars < 20:
            raise ConfigError(f"{path}: key '{kind}': max_new_tokens >= 1, max_chars >= 20")
    if prompts.max_history < 1:
        raise ConfigError(f"{path}: key 'max_history': expected >= 1")
    return prompts

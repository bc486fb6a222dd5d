"""What the generator is asked to write: one ``TextRequest`` per user and per item.

A user's request is built from the items of their *training* prefix only, so a preference
summary never mentions the validation or test item.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from towerkit.rec.sequential.textgen.prompts import PromptConfig, PromptSet

Kind = Literal["user", "item"]
_FACET_SPLIT = re.compile(r"\s*[|,;]\s*")
FACET_KEYS = ("genres", "categories", "category", "brand")


@dataclass(frozen=True)
class TextRequest:
    kind: Kind
    key: str  # the raw user or item id
    system: str
    prompt: str  # what a language model reads
    template: str  # what the template backend fills
    fields: Mapping[str, str]
    max_new_tokens: int
    max_chars: int

    def cache_key(self, backend: str) -> str:
        """sha256 of everything that decides the output: backend/model, prompt, input, length."""
        blob = json.dumps(
            [
                backend,
                self.kind,
                self.system,
                self.prompt,
                self.template,
                dict(self.fields),
                self.max_new_tokens,
            ],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def facets(meta: Mapping[str, Any]) -> list[str]:
    """Genre/category/brand values of one item, split on | , ;"""
    out: list[str] = []
    for key in FACET_KEYS:
        value = _clean(meta.get(key))
        out.extend(v for v in _FACET_SPLIT.split(value) if v and v.lower() != "unknown")
    return out


def item_title(meta: Mapping[str, Any], fallback: str) -> str:
    title = _clean(meta.get("title"))
    if title:
        year = _clean(meta.get("year"))
        return f"{title} ({year})" if year and year not in title else title
    text = _clean(meta.get("text")) or fallback
    return text if len(text) <= 60 else text[:57].rsplit(" ", 1)[0] + "..."


def _request(kind: Kind, key: str, section: PromptConfig, fields: dict[str, str]) -> TextRequest:
    return TextRequest(
        kind=kind,
        key=key,
        system=section.system.strip(),
        prompt=section.prompt.format(**fields).strip(),
        template=section.template,
        fields=fields,
        max_new_tokens=section.max_new_tokens,
        max_chars=section.max_chars,
    )


def item_request(key: str, meta: Mapping[str, Any], prompts: PromptSet) -> TextRequest:
    """``meta``: the item's metadata columns plus ``text`` (the assembled item text)."""
    shown = {k: _clean(v) for k, v in meta.items() if _clean(v)}
    metadata = "\n".join(f"{k}: {v[:300]}" for k, v in shown.items() if k != "text")
    fields = {
        "title": item_title(meta, key),
        "facets": ", ".join(dict.fromkeys(facets(meta))) or "unknown",
        "metadata": metadata or _clean(meta.get("text"))[:600],
        "text": _clean(meta.get("text"))[:600],
    }
    return _request("item", key, prompts.item, fields)


def user_request(key: str, history: Sequence[Mapping[str, Any]], prompts: PromptSet) -> TextRequest:
    """``history``: the metadata of the user's training items, oldest first."""
    shown = list(history)[-prompts.max_history :]
    titles = [item_title(meta, "an item") for meta in shown]
    lines = []
    for meta, title in zip(shown, titles, strict=True):
        labels = ", ".join(dict.fromkeys(facets(meta)))
        lines.append(f"- {title}" + (f" [{labels}]" if labels else ""))
    counts = Counter(f for meta in history for f in dict.fromkeys(facets(meta)))
    top = [name for name, _ in counts.most_common(prompts.n_facets)]
    fields = {
        "history": "\n".join(lines),
        "recent": "; ".join(reversed(titles[-prompts.n_recent :])),
        "top_facets": ", ".join(top) or "a mix of items",
        "n_items": str(len(history)),
    }
    return _request("user", key, prompts.user, fields)


def dataset_requests(dataset: Any, prompts: PromptSet, kinds: Sequence[Kind]) -> list[TextRequest]:
    """Requests for every item and/or user of a ``SeqDataset`` (users: training prefix only)."""
    rows = dataset.item_meta.to_dicts() if dataset.item_meta.width else []
    metas: list[dict[str, Any]] = [{}]  # id 0 is padding
    for i in range(1, dataset.vocab_size):
        meta = dict(rows[i - 1]) if rows else {}
        meta["text"] = dataset.item_texts[i]
        metas.append(meta)
    requests: list[TextRequest] = []
    if "item" in kinds:
        requests += [
            item_request(dataset.item_ids[i], metas[i], prompts) for i in range(1, len(metas))
        ]
    if "user" in kinds:
        for user in range(dataset.n_users):
            history = [metas[int(i)] for i in dataset.train_sequence(user)]
            requests.append(user_request(dataset.user_ids[user], history, prompts))
    return requests

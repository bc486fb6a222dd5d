"""Exact measures on generated answers: file path, line-range IoU, symbol and parameter match.

Answers are parsed, never keyword-counted: the first source path, the first "lines A-B", the
first backticked symbol and the parameter names of the first backticked signature.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_PATH = re.compile(r"[\w./-]+\.(?:py|js|mjs|cjs|jsx|ts|tsx|java|go)\b")
_LINES = re.compile(r"lines?\s+(\d+)\s*(?:-|–|to)\s*(\d+)", re.IGNORECASE)
_SYMBOL = re.compile(r"`([A-Za-z_$#][\w$#.]*)`")
_SIGNATURE = re.compile(r"`([A-Za-z_$#][\w$#]*)\((.*?)\)(?:\s*->[^`]*)?`", re.DOTALL)


def extract_path(text: str) -> str | None:
    match = _PATH.search(text)
    return match.group(0).lstrip("./") if match else None


def extract_lines(text: str) -> tuple[int, int] | None:
    match = _LINES.search(text)
    if not match:
        return None
    a, b = int(match.group(1)), int(match.group(2))
    return (min(a, b), max(a, b))


def line_iou(predicted: tuple[int, int] | None, gold: tuple[int, int]) -> float:
    """Intersection over union of two inclusive line ranges (0 when nothing was predicted)."""
    if predicted is None:
        return 0.0
    inter = min(predicted[1], gold[1]) - max(predicted[0], gold[0]) + 1
    union = max(predicted[1], gold[1]) - min(predicted[0], gold[0]) + 1
    return max(inter, 0) / union


def extract_symbol(text: str) -> str | None:
    for match in _SYMBOL.finditer(text):
        if _PATH.fullmatch(match.group(1)) is None:
            return match.group(1)
    return None


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def extract_params(text: str) -> list[str] | None:
    """Parameter names of the first backticked signature ``name(a: T, b=1) -> R``."""
    match = _SIGNATURE.search(text)
    if not match:
        return None
    return [re.split(r"[:=\s]", p, maxsplit=1)[0] for p in _split_top_level(match.group(2))]


def score_answer(answer: str, meta: dict[str, Any]) -> dict[str, float]:
    """Per-sample exact scores against the sample's metadata (its gold facts)."""
    scores = {
        "file_exact": float(extract_path(answer) == meta["file"]),
        "line_iou": line_iou(extract_lines(answer), (meta["start_line"], meta["end_line"])),
        "symbol_exact": float(extract_symbol(answer) == meta["symbol"]),
    }
    if meta["task_type"] == "api_usage":
        scores["param_exact"] = float(extract_params(answer) == meta["params"])
    return scores


def paired_bootstrap(
    base: np.ndarray, tuned: np.ndarray, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Means of both and a 95% percentile CI of the paired difference (tuned - base)."""
    from scipy.stats import bootstrap

    base, tuned = np.asarray(base, float), np.asarray(tuned, float)
    out = {"base": float(base.mean()), "tuned": float(tuned.mean()), "n": float(len(base))}
    out["diff"] = out["tuned"] - out["base"]
    if len(base) < 2 or np.all(tuned - base == (tuned - base)[0]):
        out["diff_low"] = out["diff_high"] = out["diff"]
        return out
    result = bootstrap(
        (base, tuned),
        lambda b, t, axis=-1: np.mean(t - b, axis=axis),
        paired=True,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    out["diff_low"] = float(result.confidence_interval.low)
    out["diff_high"] = float(result.confidence_interval.high)
    return out

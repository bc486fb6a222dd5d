"""Deterministic variant assignment: sha256(salt, user id) -> a uniform number -> weighted variant.

sha256 rather than Python's ``hash`` (salted per process) so that every process and machine, and
the serving path, puts a user in the same variant. No library does this small mapping the way an
experiment log needs it (salted, weighted, stable), hence the few lines by hand.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from towerkit.core.errors import TowerkitError

_SCALE = float(1 << 64)


def unit_interval(salt: str, user_id: str | int) -> float:
    """A number in [0, 1) that depends only on (salt, user id): the first 64 bits of sha256."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def parse_weights(text: str, n_variants: int | None = None, what: str = "--weights") -> list[float]:
    """``"0.5,0.5"`` -> [0.5, 0.5]; positive numbers, normalised to sum to one."""
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise TowerkitError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    return normalise_weights(weights, n_variants, what)


def normalise_weights(
    weights: Sequence[float], n_variants: int | None = None, what: str = "weights"
) -> list[float]:
    if n_variants is not None and len(weights) != n_variants:
        raise TowerkitError(f"{what}: expected {n_variants} weights, got {len(weights)}")
    if len(weights) < 2:
        raise TowerkitError(f"{what}: expected at least 2 variants, got {len(weights)}")
    if any(not math.isfinite(w) or w <= 0 for w in weights):
        raise TowerkitError(f"{what}: expected positive weights, got {list(weights)}")
    total = float(sum(weights))
    return [w / total for w in weights]


@dataclass(frozen=True)
class Assigner:
    """Variants with weights under one salt; ``assign(user)`` is the same everywhere, always."""

    salt: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.salt:
            raise TowerkitError("salt: expected a non-empty string")
        if len(set(self.variants)) != len(self.variants):
            raise TowerkitError(f"variants: expected distinct names, got {list(self.variants)}")
        normalised = normalise_weights(self.weights, len(self.variants))
        object.__setattr__(self, "weights", tuple(normalised))

    @property
    def _edges(self) -> list[float]:
        return list(accumulate(self.weights))[:-1]

    def assign(self, user_id: str | int) -> str:
        index = bisect_right(self._edges, unit_interval(self.salt, user_id))
        return self.variants[index]

    def assign_many(self, user_ids: Sequence[str | int]) -> list[str]:
        edges = self._edges
        return [self.variants[bisect_right(edges, unit_interval(self.salt, u))] for u in user_ids]

"""Deterministic assignment: stable across processes, weights respected, salt reshuffles."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from towerkit.core.errors import TowerkitError
from towerkit.rec.abtest.assign import Assigner, parse_weights, unit_interval

IDS = [str(n) for n in range(100_000)]


def test_unit_interval_is_the_first_64_bits_of_sha256() -> None:
    digest = hashlib.sha256(b"exp-1\x1fuser-42").digest()
    assert unit_interval("exp-1", "user-42") == int.from_bytes(digest[:8], "big") / 2**64
    assert unit_interval("exp-1", 42) == unit_interval("exp-1", "42")


def test_same_input_same_variant_in_another_process() -> None:
    assigner = Assigner("salt-x", ("a", "b", "c"), (0.2, 0.3, 0.5))
    here = assigner.assign_many(IDS[:500])
    code = (
        "from towerkit.rec.abtest.assign import Assigner;"
        "a = Assigner('salt-x', ('a', 'b', 'c'), (0.2, 0.3, 0.5));"
        "print(''.join(a.assign(str(n)) for n in range(500)))"
    )
    # a new interpreter has a different PYTHONHASHSEED: only sha256 keeps the answer
    env = {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "".join(here)
    assert [assigner.assign(u) for u in IDS[:500]] == here


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.1, 0.9), (0.2, 0.3, 0.5)])
def test_weights_respected_within_binomial_tolerance(weights: tuple[float, ...]) -> None:
    names = tuple("abc"[: len(weights)])
    variants = Assigner("weights-test", names, weights).assign_many(IDS)
    counts = np.array([variants.count(v) for v in names])
    for count, weight in zip(counts, weights, strict=True):
        sd = np.sqrt(len(IDS) * weight * (1 - weight))
        assert abs(count - len(IDS) * weight) < 4 * sd
    # and the whole split passes a goodness-of-fit test against the weights
    assert stats.chisquare(counts, np.array(weights) * len(IDS)).pvalue > 1e-3


def test_salt_change_reshuffles_users() -> None:
    first = Assigner("salt-1", ("a", "b"), (0.5, 0.5)).assign_many(IDS[:20_000])
    second = Assigner("salt-2", ("a", "b"), (0.5, 0.5)).assign_many(IDS[:20_000])
    same = np.mean([x == y for x, y in zip(first, second, strict=True)])
    assert 0.48 < same < 0.52  # independent: half agree by chance, not all


def test_weights_are_normalised_and_parsed() -> None:
    assert Assigner("s", ("a", "b"), (1, 3)).weights == (0.25, 0.75)
    assert parse_weights("0.5,0.5") == [0.5, 0.5]
    assert parse_weights("2, 2, 4") == [0.25, 0.25, 0.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.5,x", "comma-separated numbers"),
        ("1", "at least 2 variants"),
        ("0.5,-0.5", "positive weights"),
        ("0.5,nan", "positive weights"),
    ],
)
def test_bad_weights_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(TowerkitError, match=message) as info:
        parse_weights(text)
    assert "--weights" in str(info.value)


def test_bad_assigner_is_refused() -> None:
    with pytest.raises(TowerkitError, match="distinct"):
        Assigner("s", ("a", "a"), (0.5, 0.5))
    with pytest.raises(TowerkitError, match="expected 2 weights"):
        Assigner("s", ("a", "b"), (0.2, 0.3, 0.5))
    with pytest.raises(TowerkitError, match="salt"):
        Assigner("", ("a", "b"), (0.5, 0.5))

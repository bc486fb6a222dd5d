"""benchmarks/forecast_references.py: validation rows at the recipe's origin and further back."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from towerkit.core.asset_sources import resolve_local_path
from towerkit.forecast.baselines import THETA_VARIANTS
from towerkit.forecast.data import prepare_table
from towerkit.forecast.recipe import load_recipe

CORPUS = resolve_local_path("../shared/data/opendigger")


@pytest.fixture(scope="module")
def references(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("forecast_references.py")


def _run(
    module: ModuleType,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    monkeypatch.setattr(sys, "argv", ["forecast_references.py", *argv])
    module.main()
    return capsys.readouterr().out


def test_a_negative_back_is_refused(
    references: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["forecast_references.py", "--back", "-3"])
    with pytest.raises(SystemExit) as exit_info:
        references.main()
    assert exit_info.value.code == 2
    assert "--back: expected months >= 0, got -3" in capsys.readouterr().err


@pytest.mark.slow
def test_back_moves_the_scored_cutoffs_and_every_theta_is_scored(
    references: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no OpenDigger corpus at {CORPUS}")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  corpus: {CORPUS}\n  repos_limit: 12\n")
    prepare_table(load_recipe(recipe).data, progress=False)
    here = _run(references, ["--config", str(recipe)], monkeypatch, capsys)
    back = _run(references, ["--config", str(recipe), "--back", "12"], monkeypatch, capsys)

    def cutoffs(out: str) -> tuple[int, int]:
        found = re.search(r"cutoffs (\d{4})-(\d\d)\.\.(\d{4})-(\d\d)", out)
        assert found, out
        y0, m0, y1, m1 = (int(g) for g in found.groups())
        return 12 * y0 + m0, 12 * y1 + m1

    assert [b + 12 for b in cutoffs(back)] == list(cutoffs(here))
    for out in (here, back):
        for method in ("Naive", "Theta", *THETA_VARIANTS):
            scored = re.findall(rf"^{method}: (\d+\.\d+)", out, re.MULTILINE)
            assert len(scored) == 1 and float(scored[0]) > 0, (method, out)

"""benchmarks/forecast_variants.py: its variant table and its arguments."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from types import ModuleType

import pytest

from towerkit.forecast.recipe import default_config_path, load_recipe


@pytest.fixture(scope="module")
def variants(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("forecast_variants.py")


def test_every_variant_loads_and_lookback_variants_set_what_they_name(
    variants: ModuleType,
) -> None:
    for name, overrides in variants.VARIANTS.items():
        config = load_recipe(default_config_path("full"), overrides)
        match = re.search(r"lookback (\d+)", name)
        if match:
            assert config.data.lookback == int(match.group(1)), name
        if name.startswith("recipe,"):  # single models of the recipe, for --combine
            assert config.ensemble == 1, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--back", "12"], "--back needs --inner"), (["--inner", "--back", "-1"], "months >= 0")],
)
def test_bad_back_is_refused_before_any_training(
    variants: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "argv", ["forecast_variants.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        variants.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

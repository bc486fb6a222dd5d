"""``towerkit rec serve``: option checks that come before the model loads (no model is trained)."""

from __future__ import annotations

import pytest

from towerkit.cli import main


@pytest.mark.parametrize("index", ["exact", "ivf", "hnsw"])
@pytest.mark.parametrize("target", ["2", "0", "-0.5"])
def test_bad_target_recall_fails_before_the_model_loads(
    index: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # no such model: a check after loading it would name the model instead
    args = ["rec", "serve", "--model", "no-such-model", "--index", index]
    assert main([*args, "--target-recall", target]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --target-recall {float(target)}: expected a value in (0, 1]"

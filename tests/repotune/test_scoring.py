"""The evaluator's exact measures and bootstrap on hand-made answers."""

from __future__ import annotations

import numpy as np
import pytest

from towerkit.repotune.scoring import (
    extract_lines,
    extract_params,
    extract_path,
    extract_symbol,
    line_iou,
    paired_bootstrap,
    score_answer,
)

META = {
    "task_type": "api_usage",
    "file": "core.py",
    "start_line": 100,
    "end_line": 120,
    "symbol": "Command.invoke",
    "params": ["ctx", "args"],
}


def test_extractors() -> None:
    answer = "`Command.invoke` is a method in `core.py`, lines 100-120 (module `click.core`)."
    assert extract_path(answer) == "core.py"
    assert extract_lines(answer) == (100, 120)
    assert extract_symbol(answer) == "Command.invoke"
    assert extract_path("see ./src/app/main.go line 3") == "src/app/main.go"
    assert extract_lines("Lines 20 to 10") == (10, 20)
    assert extract_lines("no range here") is None and extract_path("nothing") is None
    assert extract_symbol("in `utils.py` the `echo` function") == "echo"
    sig = "Signature: `echo(message: t.Any | None = None, file: dict[str, int] = {}, *args, nl: bool = True) -> None`"
    assert extract_params(sig) == ["message", "file", "*args", "nl"]
    assert extract_params("`run()`") == [] and extract_params("no signature") is None


@pytest.mark.parametrize(
    ("predicted", "gold", "iou"),
    [
        ((100, 120), (100, 120), 1.0),
        ((110, 130), (100, 120), 11 / 31),
        ((1, 5), (10, 20), 0.0),
        (None, (1, 2), 0.0),
        ((5, 5), (5, 5), 1.0),
    ],
)
def test_line_iou(predicted: tuple[int, int] | None, gold: tuple[int, int], iou: float) -> None:
    assert line_iou(predicted, gold) == pytest.approx(iou)


def test_score_answer_right_and_wrong() -> None:
    right = (
        "`Command.invoke` is a method in `core.py`, lines 100-120.\n"
        "Signature: `invoke(ctx: Context, args: list[str]) -> t.Any`"
    )
    assert score_answer(right, META) == {
        "file_exact": 1.0,
        "line_iou": 1.0,
        "symbol_exact": 1.0,
        "param_exact": 1.0,
    }
    wrong = "`Command` lives in `click/core.py`, lines 90-110. Signature: `invoke(ctx)`"
    scores = score_answer(wrong, META)
    assert (
        scores["file_exact"] == 0.0
        and scores["symbol_exact"] == 0.0
        and scores["param_exact"] == 0.0
    )
    assert scores["line_iou"] == pytest.approx(11 / 31)
    location = score_answer(right, {**META, "task_type": "code_location"})
    assert "param_exact" not in location


def test_paired_bootstrap() -> None:
    certain = paired_bootstrap(np.zeros(20), np.ones(20))
    assert (certain["base"], certain["tuned"], certain["diff"]) == (0.0, 1.0, 1.0)
    assert certain["diff_low"] == certain["diff_high"] == 1.0
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 200).astype(float)
    tuned = np.clip(base + rng.integers(0, 2, 200), 0, 1)
    result = paired_bootstrap(base, tuned, resamples=500)
    assert result["diff_low"] < result["diff"] < result["diff_high"]
    assert result["diff"] == pytest.approx(tuned.mean() - base.mean())
    assert result["diff_low"] > 0  # tuned never below base here, and often above

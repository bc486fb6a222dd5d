"""The zoo's part of ``towerkit demo``: each available family's quick recipe, for the HTML report.

``run_demo(out_dir) -> list[DemoSection]`` (``towerkit.core.report.DemoSection``), one section per
family in ``FAMILY_MODULES`` order:

- ``domain`` is ``"zoo"``; ``title`` is ``"zoo <family>: <data description>"``;
- ``metrics`` are the test metrics (``test_accuracy``, ``test_macro_f1``, ... or the family's
  own, e.g. retrieval for ``concept``) plus ``train_seconds`` and ``train_examples_per_second``;
- ``plots`` are PNG paths inside the run directory (loss curve, confusion matrix, family extras);
- ``notes`` say which registry version the run became, whether it is now ``production``, the ONNX
  file with its parity result, and one example prediction on a held-out input;
- ``run_dir`` and ``seconds`` (wall time of the whole recipe) are set.

A family that cannot run here (missing data or optional dependency) still gets a section, with no
metrics and a note saying why; a family that fails while training raises, as any bug should.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from towerkit.core.errors import TowerkitError
from towerkit.core.report import DemoSection
from towerkit.zoo.families import FAMILY_MODULES, get_family
from towerkit.zoo.recipe import RecipeResult, predict, train


def run_demo(
    out_dir: Path,
    families: Sequence[str] | None = None,
    overrides: Sequence[str] = ("trainer.progress=true",),
) -> list[DemoSection]:
    """Run the quick recipe of each family (default: all in ``FAMILY_MODULES``).

    Run directories go under ``out_dir / "runs"``; models are registered in the usual registry
    (``TOWERKIT_HOME``) as ``zoo-<family>``.
    """
    sections = []
    for name in families or list(FAMILY_MODULES):
        started = time.perf_counter()
        try:
            get_family(name)
        except TowerkitError as exc:
            sections.append(DemoSection("zoo", f"zoo {name}", notes=[f"skipped: {exc}"]))
            continue
        try:
            result = train(name, None, overrides, promote="auto", runs_root=out_dir / "runs")
        except TowerkitError as exc:  # data absent here: say so in the report
            note = f"skipped: {exc}"
            sections.append(DemoSection("zoo", f"zoo {name}", notes=[note]))
            continue
        sections.append(_section(result, time.perf_counter() - started))
    return sections


def _section(result: RecipeResult, seconds: float) -> DemoSection:
    metrics = {
        k: v
        for k, v in result.metrics.items()
        if k.startswith("test_") or k in ("train_seconds", "train_examples_per_second")
    }
    notes = []
    if result.version is not None:
        state = "now production" if result.promoted else "production unchanged"
        notes.append(f"registered as {result.version.uri} ({state})")
    if result.example is not None and result.version is not None:
        user_input, truth = result.example
        _, prediction = predict(result.version.uri, user_input, top_k=3)
        guesses = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top)
        notes.append(f"predict {Path(user_input).name} (true: {truth}): {guesses}")
    for outcome in result.exports:
        notes.append(
            f"ONNX {outcome.path.name}: parity ok on {outcome.cases} input cases "
            f"(max |diff| {outcome.max_abs_diff:.1e})"
        )
    return DemoSection(
        domain="zoo",
        title=f"zoo {result.family}: {result.data_description}",
        metrics=metrics,
        plots=[p for p in result.plots if p.is_file()],
        notes=notes,
        run_dir=result.run_dir,
        seconds=seconds,
    )

"""repotune's part of ``towerkit demo``: the quick recipe on the installed ``click`` package."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from towerkit.core.report import DemoSection
from towerkit.repotune.pipeline import load_repotune_config, run_all

_SHOWN = (
    "elements",
    "train_samples",
    "train_seconds",
    "tokens_per_second",
    "heldout_phrasings_file_exact_base",
    "heldout_phrasings_file_exact_tuned",
    "test_file_exact_base",
    "test_file_exact_tuned",
    "general_correct_base",
    "general_correct_tuned",
    "merge_parity_max_abs_diff",
)


def run_demo(out_dir: Path) -> list[DemoSection]:
    spec = importlib.util.find_spec("click")
    if spec is None or spec.origin is None:
        return [
            DemoSection("repotune", "repotune quick", notes=["skipped: click is not installed"])
        ]
    started = time.perf_counter()
    result = run_all(
        str(Path(spec.origin).parent), load_repotune_config(None), runs_root=out_dir / "runs"
    )
    plots = [result.run_dir / "plots" / name for name in ("loss.png", "evaluation.png")]
    notes = [
        "SmolLM2-135M-Instruct + LoRA on QA generated from click's source; base vs fine-tuned, "
        "greedy decoding, identical prompts (the quick recipe is far too short to reach the "
        "benchmark's goal; see BENCHMARKS.md for the full recipe)",
        f"merged model: {result.run_dir / 'merged'}",
    ]
    return [
        DemoSection(
            domain="repotune",
            title="repotune quick: click -> QA -> LoRA -> merge -> evaluation",
            metrics={k: result.metrics[k] for k in _SHOWN if k in result.metrics},
            plots=[p for p in plots if p.is_file()],
            notes=notes,
            run_dir=result.run_dir,
            seconds=time.perf_counter() - started,
        )
    ]

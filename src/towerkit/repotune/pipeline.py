"""The five steps chained in one run directory (``towerkit repotune run``), and their layout.

runs/repotune/<recipe>/<stamp>/ holds config.yaml, analysis/repository_analysis.json, data/*.jsonl
+ metadata.json, checkpoints/, adapter/, merged/, evaluation.{json,md}, predictions.jsonl,
plots/{loss,evaluation}.png and metrics.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from towerkit.core.config import load_config, save_config
from towerkit.core.io import write_json_atomic
from towerkit.core.paths import new_run_dir, repo_root
from towerkit.repotune.config import RepotuneConfig

console = Console(soft_wrap=True)


def default_config_path(recipe: str = "quick") -> Path:
    return repo_root() / "configs" / "repotune" / f"{recipe}.yaml"


def load_repotune_config(
    path: Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> RepotuneConfig:
    return load_config(RepotuneConfig, path or default_config_path(), list(overrides))


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)


def run_all(target: str, config: RepotuneConfig, runs_root: Path | None = None) -> RunResult:
    """analyze -> generate -> finetune -> merge -> evaluate, each writing into one run directory."""
    from towerkit.repotune.analyze import analyze_repository, resolve_repository
    from towerkit.repotune.evaluate import evaluate_models
    from towerkit.repotune.finetune import adapter_base, finetune
    from towerkit.repotune.generate import generate_dataset
    from towerkit.repotune.merge import merge_adapter

    root = resolve_repository(target)  # a bad PATH fails before there is a run directory
    run_dir = new_run_dir("repotune", config.recipe, runs_root)
    save_config(config, run_dir / "config.yaml")
    result = RunResult(run_dir)

    def step(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        console.rule(f"repotune {name}")
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        result.seconds[name] = time.perf_counter() - started
        console.print(f"{name}: {result.seconds[name]:.1f} s")
        return value

    analysis = step(
        "analyze",
        analyze_repository,
        root,
        run_dir / "analysis",
        workers=config.analyze.workers or None,
        incremental=config.analyze.incremental,
    )
    meta = step(
        "generate", generate_dataset, run_dir / "analysis", run_dir / "data", config.generate
    )
    train = step("finetune", finetune, run_dir / "data", run_dir, config.finetune)
    merge = step(
        "merge", merge_adapter, run_dir, run_dir / "merged", config.merge, data_dir=run_dir / "data"
    )
    evaluation = step(
        "evaluate",
        evaluate_models,
        adapter_base(run_dir),
        run_dir / "merged",
        run_dir / "data",
        run_dir,
        config.evaluate,
    )
    result.evaluation = evaluation
    metrics: dict[str, float] = {
        "elements": float(analysis["stats"]["elements"]),
        "train_samples": float(meta["counts"]["train"]),
        "merge_parity_max_abs_diff": float(merge["parity_max_abs_diff"]),
        **{k: float(v) for k, v in train.items()},
    }
    for set_name, summary in evaluation["sets"].items():
        for metric in ("file_exact", "line_iou", "symbol_exact", "param_exact"):
            if metric in summary:
                metrics[f"{set_name}_{metric}_base"] = summary[metric]["base"]
                metrics[f"{set_name}_{metric}_tuned"] = summary[metric]["tuned"]
    if "forgetting" in evaluation:
        metrics["general_correct_base"] = evaluation["forgetting"]["base"]
        metrics["general_correct_tuned"] = evaluation["forgetting"]["tuned"]
    metrics.update({f"{k}_seconds": v for k, v in result.seconds.items()})
    result.metrics = metrics
    write_json_atomic(run_dir / "metrics.json", metrics)
    return result

"""A run directory's life: create it with the resolved config, finish it with model + metrics + registry.

runs/<domain>/<recipe>/<timestamp>/ holds config.yaml, checkpoints/, metrics.json, plots/, model/, logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from towerkit.core.config import config_hash, save_config
from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.core.model import BaseModel
from towerkit.core.paths import new_run_dir
from towerkit.core.registry import ModelRegistry, ModelVersion, data_fingerprint


def resume_config(run_dir: Path) -> Path:
    """The config.yaml a ``--resume`` reads; refused for a folder that is not a run and for a
    finished run (its metrics.json is written last: resuming it would train nothing and
    register the same model again)."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise TowerkitError(f"{run_dir}: not a run directory (no config.yaml)")
    if (run_dir / "metrics.json").is_file():
        raise TowerkitError(
            f"{run_dir}: the run finished (metrics.json is written); nothing to resume"
        )
    return config


def start_run(domain: str, recipe: str, config: Any, root: Path | None = None) -> Path:
    """Make a fresh run directory and write the resolved config into it."""
    run_dir = new_run_dir(domain, recipe, root)
    save_config(config, run_dir / "config.yaml")
    return run_dir


def finish_run(
    run_dir: Path,
    model: BaseModel,
    metrics: Mapping[str, float],
    config: Any,
    *,
    register_as: str | None = None,
    data_files: Iterable[Path] = (),
    tags: Mapping[str, str] | None = None,
    alias: str | None = None,
    registry: ModelRegistry | None = None,
) -> ModelVersion | None:
    """Save model/, register a new version (and point ``alias`` at it), then write
    metrics.json: last, because it marks the run finished (``resume_config``), so a run whose
    registration failed can still be resumed and registered."""
    model_dir = model.save_pretrained(run_dir / "model")
    values = {k: float(v) for k, v in metrics.items()}
    version = None
    if register_as is not None:
        registry = registry or ModelRegistry()
        files = list(data_files)
        version = registry.register(
            register_as,
            model_dir,
            run_dir=run_dir,
            metrics=values,
            config_hash=config_hash(config),
            data_fingerprint=data_fingerprint(files) if files else None,
            tags=tags,
        )
        if alias is not None:
            registry.set_alias(register_as, alias, version.version)
            version = registry.get(register_as, version.version)
    write_json_atomic(run_dir / "metrics.json", values)
    return version


Promote = Literal["auto", "always", "never"]
PRODUCTION = "production"


def maybe_promote(
    registry: ModelRegistry, version: ModelVersion, metric: str, promote: Promote
) -> bool:
    """Point ``production`` at ``version``: ``always``; ``never``; or ``auto``, unless the current
    production version is better on ``metric`` (higher is better). True when it moved."""
    if promote == "never":
        return False
    if promote == "auto":
        current = registry.get_model(version.name).aliases.get(PRODUCTION)
        if current is not None:
            champion = registry.get(version.name, current).metrics.get(metric)
            challenger = version.metrics.get(metric)
            if champion is not None and (challenger is None or challenger < champion):
                return False
    registry.set_alias(version.name, PRODUCTION, version.version)
    return True

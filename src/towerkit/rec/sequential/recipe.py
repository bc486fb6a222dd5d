"""SASRec alone, end to end: data -> SASRec -> Trainer (early stopping on validation NDCG@10) ->
test metrics (full ranking and 100 sampled negatives) -> run directory -> registry.

The run directory also keeps ``data/`` (the prepared SeqDataset it trained on), so ``evaluate``
and ``recommend`` need only a model reference: a registry reference (``rec-seq-sasrec``,
``rec-seq-sasrec@production``, ``rec-seq-sasrec/3``) or a run / model directory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from towerkit.core.callbacks import Callback
from towerkit.core.config import load_config
from towerkit.core.errors import TowerkitError
from towerkit.core.model import BaseModel
from towerkit.core.paths import repo_root, runs_root
from towerkit.core.registry import ModelRegistry, ModelVersion
from towerkit.core.run import finish_run, resume_config, start_run
from towerkit.core.schedules import StageConfig, TrainerConfig
from towerkit.rec.sequential.data import SeqDataset, build_dataset
from towerkit.rec.sequential.formats import read_source
from towerkit.rec.sequential.sasrec import SASRec, SASRecConfig
from towerkit.rec.sequential.training import (
    NextItemDataset,
    evaluate_model,
    sasrec_loss,
    sasrec_scorer,
)

REGISTRY_NAME = "rec-seq-sasrec"
HEADLINE = "ndcg@10"


@dataclass
class DataConfig:
    format: str = "ml-100k"  # ml-100k | ml-1m | recbole | amazon | seqfile
    path: str | None = None  # None with ml-100k: the movielens-100k asset
    meta: str | None = None  # amazon product metadata (JSON lines), optional
    name: str = "ml-100k"
    user_core: int = 5
    item_core: int = 5
    prepared: str | None = None  # a folder from `towerkit rec seq prepare`: used as is


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    num_negatives: int = 100  # the sampled protocol reported beside the full one
    seed: int = 0


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        stages=[StageConfig(name="sasrec", epochs=200, lr=1e-3, scheduler="constant")],
        batch_size=128,
        early_stopping_metric=HEADLINE,
        early_stopping_patience=5,
        eval_every_steps=None,
    )


@dataclass
class SeqRecipeConfig:
    recipe: str = "seq-sasrec"
    data: DataConfig = field(default_factory=DataConfig)
    model: SASRecConfig = field(default_factory=SASRecConfig)
    trainer: TrainerConfig = field(default_factory=_default_trainer)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class SeqRunResult:
    run_dir: Path
    metrics: dict[str, float]
    version: ModelVersion | None
    data: SeqDataset
    model: SASRec
    seconds: float
    stopped: bool = False


def default_config_path(kind: str = "quick") -> Path:
    return repo_root() / "configs" / "rec" / f"seq-sasrec-{kind}.yaml"


def load_recipe_config(
    config_path: str | Path | None = None, overrides: Sequence[str] = ()
) -> SeqRecipeConfig:
    path = Path(config_path) if config_path is not None else default_config_path("quick")
    return load_config(SeqRecipeConfig, path, overrides)


def prepared_dir(name: str) -> Path:
    """Where ``prepare`` writes a dataset by default: runs/rec/seq-data/<name>."""
    return runs_root() / "rec" / "seq-data" / name


def load_data(config: DataConfig) -> SeqDataset:
    """A prepared folder when ``prepared`` is set, else the source read and built afresh."""
    if config.prepared:
        return SeqDataset.load(config.prepared)
    return build_dataset(
        read_source(config.format, source_path(config), Path(config.meta) if config.meta else None),
        config.name,
        config.user_core,
        config.item_core,
    )


def source_path(config: DataConfig) -> Path:
    if config.path:
        return Path(config.path).expanduser()
    if config.format != "ml-100k":
        raise TowerkitError(f"data.path: the {config.format} format needs a file or folder")
    from towerkit.rec.assets import fetch

    return fetch("movielens-100k")


def train(
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    resume: Path | None = None,
    registry: ModelRegistry | None = None,
    runs: Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> SeqRunResult:
    """Train the recipe; ``resume``: an interrupted run directory, continued exactly. A run that
    stops early (a callback's ``request_stop``) returns ``stopped=True``, unregistered."""
    from towerkit.core.trainer import Trainer

    started = time.perf_counter()
    if resume is not None:
        if config_path is not None or overrides:
            raise TowerkitError(
                "--resume: the run's own config.yaml is used; drop --config/overrides"
            )
        config = load_config(SeqRecipeConfig, resume_config(resume))
        data = SeqDataset.load(resume / "data")
        run_dir = resume
    else:
        config = load_recipe_config(config_path, overrides)
        data = load_data(config.data)
        config.model = dataclasses.replace(config.model, n_items=data.n_items)
        run_dir = start_run("rec", config.recipe, config, root=runs)
        data.save(run_dir / "data")
    torch.manual_seed(config.trainer.seed)  # the same initial weights for the same config
    model = SASRec(config.model)
    scorer = sasrec_scorer(model)
    max_len = config.model.max_len

    def eval_on_valid(_: Any) -> dict[str, float]:
        return evaluate_model(scorer, data, "valid", max_len).metrics

    samples = NextItemDataset(data, max_len, config.model.num_negatives)
    trainer = Trainer(
        model, config.trainer, samples, sasrec_loss, run_dir, eval_fn=eval_on_valid,
        callbacks=callbacks,
    )  # fmt: skip
    fit = trainer.fit(resume=resume is not None)
    if trainer.state.stage_index < len(config.trainer.stages):
        seconds = time.perf_counter() - started
        return SeqRunResult(run_dir, {}, None, data, model, seconds, stopped=True)
    model.eval()
    metrics = test_metrics(model, data, config)
    metrics.update({f"val_{k}": v for k, v in fit.final_metrics.items()})
    metrics["train_seconds"] = float(fit.train_seconds)
    metrics["epochs"] = float(fit.epochs_completed)
    metrics["seconds_per_epoch"] = float(fit.train_seconds / max(fit.epochs_completed, 1))
    version = finish_run(
        run_dir,
        model,
        metrics,
        config,
        register_as=REGISTRY_NAME,
        data_files=[run_dir / "data" / "sequences.parquet"],
        tags={"recipe": config.recipe, "data": data.name},
        registry=registry,
    )
    return SeqRunResult(run_dir, metrics, version, data, model, time.perf_counter() - started)


def test_metrics(model: SASRec, data: SeqDataset, config: SeqRecipeConfig) -> dict[str, float]:
    """test_* (full ranking) and test_sampled_* (the target against 100 sampled negatives)."""
    scorer, max_len = sasrec_scorer(model), model.config.max_len
    full = evaluate_model(scorer, data, "test", max_len).metrics
    sampled = evaluate_model(
        scorer, data, "test", max_len, config.eval.num_negatives, config.eval.seed
    ).metrics
    out = {f"test_{k}": v for k, v in full.items()}
    out.update({f"test_sampled_{k}": v for k, v in sampled.items() if k != "n_users"})
    return out


@dataclass
class LoadedSeqModel:
    model: BaseModel
    data: SeqDataset
    run_dir: Path
    version: ModelVersion | None


def load_model(ref: str, registry: ModelRegistry | None = None) -> LoadedSeqModel:
    """A run directory, its ``model/`` folder, or a registry reference (default name
    ``rec-seq-sasrec``: a bare alias such as ``@production`` or a version ``/2`` use it)."""
    path = Path(ref).expanduser()
    version = None
    if path.is_dir():
        run_dir = path.parent if (path / "config.json").is_file() else path
    elif path.exists():
        raise TowerkitError(f"{ref}: expected a run directory or a registry reference")
    else:
        full_ref = REGISTRY_NAME + ref if ref.startswith(("@", "/")) else ref
        version = (registry or ModelRegistry()).resolve(full_ref)
        if not version.run_dir:
            raise TowerkitError(f"{version.uri}: registered without a run directory")
        run_dir = Path(version.run_dir)
    if not (run_dir / "model" / "config.json").is_file() or not (run_dir / "data").is_dir():
        raise TowerkitError(f"{run_dir}: expected model/ and data/ there (a rec seq run directory)")
    model = BaseModel.from_pretrained(run_dir / "model")
    return LoadedSeqModel(model, SeqDataset.load(run_dir / "data"), run_dir, version)

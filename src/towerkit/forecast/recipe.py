"""The forecast pipeline (the recipes' code; the library parts live beside it).

train:    config -> data (prepared table, windows, cached text embeddings) -> dual tower ->
          Trainer.fit (early stopping on the validation pinball loss) -> registered as
          ``forecast-dualtower`` (or ``forecast-dualtower-notext`` for the ablation)
evaluate: a model reference -> rolling-origin backtest on the test cutoffs, beside the
          statsforecast baselines and the text ablations -> Markdown + JSON table + plots
predict:  a model reference + owner/name -> the next months with p10..p90 and a PNG
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.model import BaseModel, create_model
from towerkit.core.paths import repo_root
from towerkit.core.registry import ModelRegistry, ModelVersion
from towerkit.core.run import finish_run, start_run
from towerkit.core.trainer import TrainerConfig
from towerkit.forecast import model as _model  # noqa: F401  (registers the dual tower)
from towerkit.forecast.baselines import check_names
from towerkit.forecast.data import (
    ForecastData,
    ForecastDataConfig,
    SplitWindows,
    load_data,
    predict_scaled,
    to_raw,
    training_datasets,
)
from towerkit.forecast.model import BaseKind, DualTowerForecaster, check_model_ranges, pinball

REGISTRY_NAME = "forecast-dualtower"


@dataclass
class ForecastModelSection:
    encoder: Literal["lstm", "transformer"] = "lstm"
    hidden: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.1
    use_text: bool = True
    text_hidden: int = 64
    fusion_hidden: int = 256
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    base: BaseKind = "last"  # the median's anchor: the last value, or the window's Theta forecast
    base_weight: float = 1.0  # with theta: anchor on w * Theta + (1 - w) * last value
    per_target: bool = False  # one network per target instead of one for all

    def __post_init__(self) -> None:
        # when the recipe loads, so a bad size is refused before a run directory is made
        check_model_ranges(self)


@dataclass
class ForecastEvalConfig:
    baselines: list[str] = field(default_factory=lambda: ["Naive", "SeasonalNaive", "Theta"])
    # too slow for every row on 2 cores: run on a fixed random sample of rows, where every
    # method is scored again so the comparison stays like for like
    sample_baselines: list[str] = field(default_factory=lambda: ["AutoETS", "AutoARIMA"])
    sample_size: int = 200
    ablations: bool = True  # blank and shuffled text for a model with a text tower
    seed: int = 0

    def __post_init__(self) -> None:
        # when the recipe loads: a misspelt baseline should not wait for a trained model
        check_names(self.baselines, "eval.baselines")
        check_names(self.sample_baselines, "eval.sample_baselines")


@dataclass
class ForecastRecipeConfig:
    recipe: str = "forecast-quick"
    encoder: str = "all-minilm-l6-v2"  # frozen sentence encoder of the text tower
    data: ForecastDataConfig = field(default_factory=ForecastDataConfig)
    model: ForecastModelSection = field(default_factory=ForecastModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: ForecastEvalConfig = field(default_factory=ForecastEvalConfig)
    # after early stopping on the validation cutoffs, train a fresh model on the training and
    # validation windows (whose targets all end by the first test cutoff) for the epoch count
    # chosen there, and keep that one; val_* metrics stay those of the selection model
    refit: bool = False
    # >1: a seed ensemble of this many models (seeds trainer.seed, +1, ...), each selected (and
    # refitted) on its own; the registered model averages their quantiles
    ensemble: int = 1
    # move the p10..p90 band's ends so that it covers 80 % of the validation windows of the
    # selected model(s), per horizon month and target (split conformal; see
    # towerkit.forecast.calibration); the kept model forecasts with those shifts
    calibrate: bool = False
    # calibrate each end on its own side's misses (at most 10 % of the windows below p10, 10 %
    # above p90) instead of one shift for both ends
    calibrate_each_side: bool = False
    # evaluate / predict: correct each cutoff's median and band by the model's errors at the
    # latest this many cutoffs whose target months are known by then and after its training data
    # (towerkit.forecast.recalibration); 0: off
    recalibrate: int = 0

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise ConfigError(f"ensemble: expected >= 1, got {self.ensemble}")
        if self.recalibrate < 0:
            raise ConfigError(f"recalibrate: expected >= 0 cutoffs, got {self.recalibrate}")
        if self.calibrate_each_side and not self.calibrate:
            raise ConfigError("calibrate_each_side: needs calibrate: true")


@dataclass
class MemberFit:
    """One member of a (seed) ensemble: the model selected on validation, the one kept (the
    refitted one with ``refit``), its fit and what it cost."""

    selected: DualTowerForecaster
    kept: DualTowerForecaster
    fit: Any  # towerkit.core.trainer.TrainResult
    cpu_seconds: float
    refit_seconds: float = 0.0
    refit_epochs: int = 0

    @property
    def best_step(self) -> int:
        return int(self.fit.best_step if self.fit.best_step is not None else self.fit.global_step)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, float]
    version: ModelVersion | None
    data: ForecastData
    model: DualTowerForecaster
    config: ForecastRecipeConfig
    plots: list[Path]
    seconds: float
    # the members as selected on the validation windows, before any refit: the model to score
    # on those windows (``model`` itself with one member and no refit, its calibration included)
    selected: DualTowerForecaster | None = None


def default_config_path(kind: str = "quick") -> Path:
    return repo_root() / "configs" / "forecast" / f"{kind}.yaml"


def load_recipe(
    path: Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> ForecastRecipeConfig:
    config: ForecastRecipeConfig = load_config(
        ForecastRecipeConfig, path or default_config_path(), list(overrides)
    )
    return config


def build_model(
    config: ForecastRecipeConfig, data: ForecastData, members: int = 1
) -> DualTowerForecaster:
    m, arrays = config.model, data.train.arrays
    arch = f"forecast-dualtower-{m.encoder}"
    model = create_model(
        arch,
        n_inputs=arrays.x.shape[2],
        n_static=arrays.static.shape[1],
        lookback=config.data.lookback,
        horizon=config.data.horizon,
        n_targets=len(data.target_idx),
        quantiles=list(m.quantiles),
        hidden=m.hidden,
        layers=m.layers,
        heads=m.heads,
        dropout=m.dropout,
        use_text=m.use_text,
        text_dim=data.train.text.shape[1],
        text_hidden=m.text_hidden,
        fusion_hidden=m.fusion_hidden,
        target_inputs=list(data.target_idx),  # the first features of x are the table's columns
        base=m.base,
        base_weight=m.base_weight,
        per_target=m.per_target,
        members=members,
    )
    assert isinstance(model, DualTowerForecaster)
    return model


def _ensemble(
    config: ForecastRecipeConfig, data: ForecastData, models: list[DualTowerForecaster]
) -> DualTowerForecaster:
    """One model averaging these trained ones' quantiles (the model itself when alone)."""
    if len(models) == 1:
        return models[0]
    joined = build_model(config, data, members=len(models))
    for slot, model in zip(joined.members, models, strict=True):
        slot.load_state_dict(model.state_dict())
    return joined


def _loss_fn(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    pred = model(batch["x"], batch["static"], batch["text"], batch.get("base"))
    levels: list[float] = _unwrap(model).config.quantiles
    return pinball(pred, batch["y"], batch["mask"], levels)


def _unwrap(model: Any) -> DualTowerForecaster:
    inner = getattr(model, "module", model)
    assert isinstance(inner, DualTowerForecaster)
    return inner


def _val_metrics(model: DualTowerForecaster, data: ForecastData) -> dict[str, float]:
    """Pinball loss (scaled space) and MASE / p10..p90 coverage (raw values) on the
    validation windows: what model selection may look at."""
    from towerkit.forecast.backtest import build_rows, model_forecast, score

    scaled = predict_scaled(model, data.val)
    a = data.val.arrays
    loss = pinball(
        torch.from_numpy(scaled),
        torch.from_numpy(a.y),
        torch.from_numpy(a.y_mask),
        model.config.quantiles,
    )
    rows = build_rows(data.panel, a.pairs, data.target_idx, data.config.horizon)
    raw = model_forecast("val", rows, to_raw(scaled, a, data.target_idx), model.config.quantiles)
    overall = score(rows, raw, data.config.targets)["overall"]
    return {"pinball": float(loss), "mase": overall["mase"], "coverage": overall["coverage"]}


def _refit(
    config: ForecastRecipeConfig, data: ForecastData, best_step: int, run_dir: Path
) -> tuple[DualTowerForecaster, int]:
    """A fresh model trained on train + validation windows for the chosen epoch count."""
    if len(config.trainer.stages) != 1:
        raise ConfigError("refit: expected a single trainer stage")
    steps_per_epoch = math.ceil(len(data.train.arrays.pairs) / config.trainer.batch_size)
    epochs = max(1, round(best_step / steps_per_epoch))
    model = train_for_epochs(config, data, [data.train, data.val], epochs, run_dir / "refit")
    return model, epochs


def train_for_epochs(
    config: ForecastRecipeConfig,
    data: ForecastData,
    windows: list[SplitWindows],
    epochs: int,
    run_dir: Path,
) -> DualTowerForecaster:
    """A fresh model (seed ``trainer.seed``) trained on these windows for ``epochs`` epochs of
    the recipe's single stage, without early stopping: the refit, or a retrain at a later
    cutoff."""
    from towerkit.core.trainer import Trainer

    stage = replace(config.trainer.stages[0], epochs=epochs)
    trainer_config = replace(
        config.trainer, stages=[stage], early_stopping_metric=None, restore_best=False
    )
    torch.manual_seed(config.trainer.seed)
    model = build_model(config, data)
    joined: ConcatDataset[dict[str, torch.Tensor]] = ConcatDataset(
        training_datasets(windows, config.data.recency_halflife)
    )
    Trainer(model, trainer_config, joined, loss_fn=_loss_fn, run_dir=run_dir).fit()
    return model


def _train_member(
    config: ForecastRecipeConfig, data: ForecastData, k: int, run_dir: Path
) -> MemberFit:
    """Member ``k`` of the ensemble (seed trainer.seed + k): selected on the validation
    windows, then refitted with ``refit``; member 0 writes to ``run_dir`` itself."""
    from towerkit.core.trainer import Trainer

    member = replace(config, trainer=replace(config.trainer, seed=config.trainer.seed + k))
    member_dir = run_dir if k == 0 else run_dir / f"member-{k}"
    torch.manual_seed(member.trainer.seed)  # the initial weights follow the seed too
    model = build_model(member, data)
    trainer = Trainer(
        model,
        member.trainer,
        training_datasets([data.train], config.data.recency_halflife)[0],
        loss_fn=_loss_fn,
        run_dir=member_dir,
        eval_fn=lambda m: _val_metrics(_unwrap(m), data),
    )
    cpu_started = time.process_time()
    fit = trainer.fit()
    out = MemberFit(model, model, fit, time.process_time() - cpu_started)
    if config.refit:
        refit_started = time.perf_counter()
        out.kept, out.refit_epochs = _refit(member, data, out.best_step, member_dir)
        out.refit_seconds = time.perf_counter() - refit_started
    return out


def registry_name(config: ForecastRecipeConfig) -> str:
    return REGISTRY_NAME if config.model.use_text else REGISTRY_NAME + "-notext"


def train(
    config: ForecastRecipeConfig,
    *,
    registry: ModelRegistry | None = None,
    runs_root: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    started = time.perf_counter()
    data = load_data(
        config.data, config.encoder, progress, base=config.model.base, text=config.model.use_text
    )
    # the table, the base's statsforecast fits and the text embeddings, where not cached yet
    prepare_seconds = time.perf_counter() - started
    run_dir = start_run("forecast", config.recipe, config, root=runs_root)
    fits = [_train_member(config, data, k, run_dir) for k in range(config.ensemble)]
    selected = _ensemble(config, data, [f.selected for f in fits])
    val = _val_metrics(selected, data)
    model = _ensemble(config, data, [f.kept for f in fits])
    metrics = {f"val_{k}": v for k, v in val.items()}
    last_cutoff = data.splits.val[-1] if config.refit else data.splits.train[-1]
    model.config.trained_through = data.panel.label(last_cutoff + data.config.horizon)
    if config.calibrate:  # before the shifts are set: ``selected`` may be ``model`` itself
        from towerkit.forecast.calibration import calibrate_band

        shift, upper = calibrate_band(selected, data.val, config.calibrate_each_side)
        model.config.interval_shift = shift.tolist()
        metrics["interval_shift_mean"] = float(shift.mean())
        if upper is not None:
            model.config.interval_shift_upper = upper.tolist()
            metrics["interval_shift_upper_mean"] = float(upper.mean())
    refit_seconds = sum(f.refit_seconds for f in fits)
    if config.refit:
        epochs = np.mean([f.refit_epochs for f in fits])
        metrics.update(refit_epochs=float(epochs), refit_seconds=refit_seconds)
    metrics.update(
        # the refit is training too
        train_seconds=float(sum(f.fit.train_seconds for f in fits)) + refit_seconds,
        prepare_seconds=prepare_seconds,
        train_cpu_seconds=float(sum(f.cpu_seconds for f in fits)),  # wall time stretches
        train_steps=float(sum(f.fit.global_step for f in fits)),
        best_step=float(np.mean([f.best_step for f in fits])),  # members' mean
        train_windows=float(len(data.train.arrays.pairs)),
        parameters=float(model.num_parameters()),
        members=float(config.ensemble),
    )
    version = finish_run(
        run_dir,
        model,
        metrics,
        config,
        register_as=registry_name(config),
        data_files=[data.table],
        tags={"recipe": config.recipe, "text": str(config.model.use_text).lower()},
        registry=registry or ModelRegistry(),
    )
    plots = sorted((run_dir / "plots").glob("*.png")) if (run_dir / "plots").is_dir() else []
    seconds = time.perf_counter() - started
    return TrainResult(run_dir, metrics, version, data, model, config, plots, seconds, selected)


@dataclass
class LoadedForecaster:
    model: DualTowerForecaster
    config: ForecastRecipeConfig
    run_dir: Path | None
    label: str


def load_forecaster(ref: str, registry: ModelRegistry | None = None) -> LoadedForecaster:
    """A run directory, a model directory or a registry reference (``forecast-dualtower``,
    ``forecast-dualtower@production``, ``forecast-dualtower/2``)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        model_dir = path if (path / "config.json").is_file() else path / "model"
        run_dir: Path | None = (
            model_dir.parent if (model_dir.parent / "config.yaml").is_file() else None
        )
        label = str(model_dir)
    else:
        version = (registry or ModelRegistry()).resolve(ref)
        model_dir = Path(version.model_dir)
        run_dir = Path(version.run_dir) if version.run_dir else None
        label = version.uri
    model = BaseModel.from_pretrained(model_dir)
    if not isinstance(model, DualTowerForecaster):
        raise TowerkitError(f"{ref}: not a forecast model ({type(model).__name__})")
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        raise TowerkitError(
            f"{ref}: its run directory (config.yaml) is needed for the data settings"
        )
    config = load_recipe(run_dir / "config.yaml")
    return LoadedForecaster(model, config, run_dir, label)

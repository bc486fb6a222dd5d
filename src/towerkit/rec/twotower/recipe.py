"""The two-tower pipeline.

train:    config -> export frames (``--data`` folder, or ``--db`` exported into the run) -> time
          split -> features fitted on train -> Trainer.fit (early stopping on validation) ->
          the test split, once: two-tower and baselines side by side -> finish_run (registered
          as ``rec-two-tower``; ``production`` follows the headline metric) -> plots
evaluate: a model reference -> the data and split its run used -> the same table again
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from towerkit.core.config import load_config
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.core.model import create_model
from towerkit.core.paths import repo_root
from towerkit.core.registry import ModelRegistry, ModelVersion
from towerkit.core.run import Promote, finish_run, maybe_promote, resume_config, start_run
from towerkit.rec.twotower.api import TwoTowerBundle, load_bundle
from towerkit.rec.twotower.attention import item_factors
from towerkit.rec.twotower.baselines import fit_baselines
from towerkit.rec.twotower.booster import attach_booster
from towerkit.rec.twotower.config import REGISTRY_NAME, TwoTowerRecipe
from towerkit.rec.twotower.data import InteractionData
from towerkit.rec.twotower.evaluation import evaluate_scorer, model_scorer, warm_users
from towerkit.rec.twotower.features import SideFeaturizer
from towerkit.rec.twotower.model import TowerSpec, TwoTowerModel
from towerkit.rec.twotower.prepare import (
    SPLIT_FILE,
    InteractionDataset,
    PreparedData,
    collate,
    merge_validation,
    prepare,
    prepare_split,
    save_split,
)
from towerkit.rec.twotower.refit import (
    ChosenSteps,
    StopAtSteps,
    refit_dir,
    refit_trainer_config,
)
from towerkit.rec.twotower.selection import LikePathSelection, like_selection_callbacks
from towerkit.rec.twotower.sources import (
    absolute_sources,
    changed_since_training,
    load_data,
    without_password,
)
from towerkit.rec.twotower.text import CachedSentenceEncoder
from towerkit.rec.twotower.training import TwoTowerLoss

if TYPE_CHECKING:
    from towerkit.core.trainer import TrainResult

TWO_TOWER = "two_tower"


@dataclass
class TrainOutcome:
    run_dir: Path
    metrics: dict[str, float]  # flat: test_<model>_<metric>, val_..., train_*
    table: dict[str, dict[str, float]]  # model -> test metrics
    version: ModelVersion | None
    promoted: bool
    model: TwoTowerModel
    description: str
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def default_config_path(kind: str = "quick") -> Path:
    return repo_root() / "configs" / "rec" / f"two-tower-{kind}.yaml"


def load_recipe(
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    data_dir: Path | None = None,
    db_url: str | None = None,
) -> TwoTowerRecipe:
    extra = [f"data.path={data_dir}"] if data_dir is not None else []
    extra += [f"data.db={db_url}"] if db_url is not None else []
    path = config_path if config_path is not None else default_config_path("quick")
    config: TwoTowerRecipe = load_config(TwoTowerRecipe, path, [*overrides, *extra])
    check_arch(config, f"config file {path}", overrides)
    absolute_sources(config.data)
    return config


def check_arch(config: TwoTowerRecipe, source: str, overrides: Sequence[str] = ()) -> None:
    """``arch`` is a registered two-tower model and every ``model.*`` key is a field of its
    config with the right type: checked when the recipe loads, not after the data is read."""
    import dataclasses
    import typing

    from towerkit.core.config import check_value
    from towerkit.core.model import list_models
    from towerkit.rec.twotower.model import TwoTowerConfig

    known_archs = list_models("two-tower")
    if config.arch not in known_archs:
        setter = [o for o in overrides if o.partition("=")[0].strip() == "arch"]
        raise ConfigError(
            f"{f'override {setter[-1]!r}' if setter else source}: key 'arch': unknown model {config.arch!r} (known: {', '.join(known_archs)})"
        )
    hints = typing.get_type_hints(TwoTowerConfig)
    fields = sorted(f.name for f in dataclasses.fields(TwoTowerConfig))
    for name, value in config.model.items():
        setter = [o for o in overrides if o.partition("=")[0].strip() == f"model.{name}"]
        where = f"override {setter[-1]!r}" if setter else source
        if name not in hints:
            raise ConfigError(
                f"{where}: unknown key 'model.{name}' (known keys: {', '.join(fields)})"
            )
        check_value(value, hints[name], f"model.{name}", where)


def tower_spec(side: SideFeaturizer) -> TowerSpec:
    return TowerSpec(
        n_ids=side.ids.size,
        categorical=[v.size for v in side.categorical.values()],
        multi_categorical=[v.size for v in side.multi_categorical.values()],
        n_numeric=len(side.numeric),
        n_text=len(side.text),
        text_dim=side.text_dim,
    )


def build_prepared(
    config: TwoTowerRecipe, data: InteractionData, merged: bool = False
) -> PreparedData:
    """``merged``: train + validation as the training split (a refit's data, refit.py)."""
    encoder = CachedSentenceEncoder(config.features.text_encoder)
    prepared = prepare(data, config.split, config.features, encoder)
    if not merged:
        return prepared
    split = merge_validation(prepared.split)
    return prepare_split(prepared.data, split, config.features, encoder)


def refit(
    config: TwoTowerRecipe, data: InteractionData, chosen: ChosenSteps, run_dir: Path
) -> tuple[TwoTowerModel, PreparedData, TrainResult]:
    """A fresh model trained on train + validation up to the steps validation chose."""
    from towerkit.core.trainer import Trainer

    prepared = build_prepared(config, data, merged=True)
    model = build_model(config, prepared)
    trainer = Trainer(
        model,
        refit_trainer_config(config.trainer),
        InteractionDataset(prepared.train),
        build_loss(config, prepared),
        refit_dir(run_dir),
        collate_fn=collate,
        callbacks=[StopAtSteps(model, chosen)],
    )
    return model, prepared, trainer.fit()


def build_loss(config: TwoTowerRecipe, prepared: PreparedData) -> TwoTowerLoss:
    """The training loss over ``prepared``'s feature tables and training histories."""
    art = prepared.artifacts
    return TwoTowerLoss(
        art.query_tables,
        art.candidate_tables,
        config.loss,
        prepared.train_history,
        prepared.retrieval_history,
    )


def build_model(config: TwoTowerRecipe, prepared: PreparedData) -> TwoTowerModel:
    artifacts = prepared.artifacts
    torch.manual_seed(config.trainer.seed)  # the initial weights follow the config's seed
    model = create_model(
        config.arch,
        query=tower_spec(artifacts.query),
        candidate=tower_spec(artifacts.candidate),
        **{
            "history_len": config.features.history_len,
            "recent_swipes": config.features.recent_swipes,
            "history_prior": prepared.like_prior,
            **config.model,
        },
    )
    if not isinstance(model, TwoTowerModel):
        raise TowerkitError(f"arch: {config.arch!r} is not a two-tower model")
    for key in ("history_len", "recent_swipes"):
        if getattr(model.config, key) != getattr(config.features, key):
            raise TowerkitError(
                f"model.{key} {getattr(model.config, key)} differs from features.{key} "
                f"{getattr(config.features, key)}: set features.{key} only"
            )
    if config.features.retrieval_lag_days and not model.retrieval_history:
        raise TowerkitError(
            "features.retrieval_lag_days lags the history retrieval reads, but this model's "
            "retrieval reads none: set model.history_into=both"
        )
    if model.attention is not None and model.config.attention_init == "svd":
        train = prepared.train
        ids = artifacts.candidate_tables.ids.numpy()[train.item_rows]
        n_ids, dim = model.config.candidate.n_ids, model.config.attention_dim
        model.attention.init_items(item_factors(ids, train.user_rows, train.labels, n_ids, dim))
    model.artifacts = artifacts
    return model


def evaluate_all(
    config: TwoTowerRecipe, model: TwoTowerModel, prepared: PreparedData, split: str
) -> dict[str, dict[str, float]]:
    """model name -> metrics on ``split`` (val or test) for the two-tower and every baseline."""
    held_out = getattr(prepared, split)
    before = prepared.before(split)
    warm = warm_users(prepared.train)
    n_users, n_items, ks = prepared.n_users, prepared.n_items, config.eval.ks
    table = {
        TWO_TOWER: evaluate_scorer(
            model_scorer(model, prepared.artifacts, prepared.histories(split)),
            held_out,
            before,
            n_users,
            n_items,
            ks,
            warm,
        )
    }
    scorers, seconds = fit_baselines(config.baselines, prepared.train, n_users, n_items)
    for name, scorer in scorers.items():
        table[name] = evaluate_scorer(scorer, held_out, before, n_users, n_items, ks, warm)
        table[name]["fit_seconds"] = seconds[name]
    return table


def flatten(table: dict[str, dict[str, float]], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{m}_{k}": v for m, row in table.items() for k, v in row.items()}


def train(
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    data_dir: Path | None = None,
    db_url: str | None = None,
    data: InteractionData | None = None,
    resume: Path | None = None,
    promote: Promote = "auto",
    registry: ModelRegistry | None = None,
    runs_root: Path | None = None,
) -> TrainOutcome:
    """Train, evaluate (test once) and register one two-tower run."""
    from towerkit.core.trainer import Trainer

    started = time.perf_counter()
    if resume is not None:
        if config_path is not None or overrides or data_dir is not None or db_url is not None:
            raise TowerkitError(
                "--resume: the run's own config.yaml is used; drop the other options"
            )
        config = load_config(TwoTowerRecipe, resume_config(resume))
    else:
        config = load_recipe(config_path, overrides, data_dir, db_url)
    saved = without_password(config)  # what config.yaml and the registry's config hash see
    run_dir = resume or start_run("rec", config.recipe, saved, root=runs_root)
    try:
        data = data if data is not None else load_data(config.data, run_dir)
        prepared = build_prepared(config, data)
        save_split(run_dir, prepared, config.refit)
        model = build_model(config, prepared)
    except BaseException:
        if resume is None:  # bad data or model settings: leave no run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    artifacts = prepared.artifacts

    val_histories = prepared.histories("val")

    def eval_on_val(unwrapped: Any) -> dict[str, float]:
        scorer = model_scorer(unwrapped, artifacts, val_histories)
        warm = warm_users(prepared.train)
        return evaluate_scorer(
            scorer, prepared.val, prepared.train, prepared.n_users, prepared.n_items,
            config.eval.ks, warm,
        )  # fmt: skip

    like = like_selection_callbacks(config, model, run_dir)  # the like path chosen apart
    trainer = Trainer(
        model,
        config.trainer,
        InteractionDataset(prepared.train),
        build_loss(config, prepared),
        run_dir,
        eval_fn=eval_on_val,
        collate_fn=collate,
        callbacks=like,
    )
    fit = trainer.fit(resume=resume is not None)
    booster_metrics = attach_booster(config.booster, model, prepared, config.trainer.seed)
    val_table = evaluate_all(config, model, prepared, "val")
    metrics = {
        "train_seconds": float(fit.train_seconds),
        "train_examples_per_second": float(fit.examples_per_second),
        "train_steps": float(fit.global_step),
        "train_best_step": float(fit.best_step or 0),
    }
    metrics.update(booster_metrics)
    like_step = next((c.best_step for c in like if isinstance(c, LikePathSelection)), None)
    if like_step is not None:
        metrics["train_like_best_step"] = float(like_step)
    if config.refit:
        chosen = ChosenSteps(fit.best_step or fit.global_step, like_step, trainer.steps_per_epoch)
        model, prepared, refit_fit = refit(config, data, chosen, run_dir)
        metrics["refit_seconds"] = float(refit_fit.train_seconds)
        metrics["refit_steps"] = float(refit_fit.global_step)
        booster = attach_booster(config.booster, model, prepared, config.trainer.seed)
        metrics.update({f"refit_{k}": v for k, v in booster.items()})
    test_table = evaluate_all(config, model, prepared, "test")  # the one look at the test split
    metrics.update({**flatten(test_table, "test"), **flatten(val_table, "val")})
    metrics.update(_ratios(test_table, config.eval.headline))
    registry = registry or ModelRegistry()
    version = finish_run(
        run_dir, model, metrics, saved,
        register_as=REGISTRY_NAME, data_files=data.files,
        tags={"recipe": config.recipe, "arch": config.arch}, registry=registry,
    )  # fmt: skip
    assert version is not None
    promoted = maybe_promote(registry, version, f"test_{TWO_TOWER}_{config.eval.headline}", promote)
    write_json_atomic(
        run_dir / "evaluation.json",
        {"test": test_table, "val": val_table, "data": prepared.describe()},
    )
    from towerkit.rec.twotower.plots import recall_curve_png

    plots = sorted((run_dir / "plots").glob("*.png")) if (run_dir / "plots").is_dir() else []
    plots.append(
        recall_curve_png(test_table, run_dir / "plots" / "recall_at_k.png", config.eval.ks)
    )
    return TrainOutcome(
        run_dir=run_dir,
        metrics=metrics,
        table=test_table,
        version=registry.get(REGISTRY_NAME, version.version),
        promoted=promoted,
        model=model,
        description=prepared.describe(),
        plots=plots,
        seconds=time.perf_counter() - started,
    )


def _ratios(table: dict[str, dict[str, float]], headline: str) -> dict[str, float]:
    """two-tower / baseline for the headline metric and AUC (test split)."""
    out: dict[str, float] = {}
    ours = table[TWO_TOWER]
    for name, row in table.items():
        if name == TWO_TOWER:
            continue
        for metric in (headline, "auc"):
            if metric in ours and row.get(metric):
                out[f"test_ratio_{metric}_vs_{name}"] = ours[metric] / row[metric]
    return out


def evaluate(
    ref: str, overrides: Sequence[str] = (), registry: ModelRegistry | None = None
) -> tuple[TwoTowerBundle, dict[str, dict[str, float]], str]:
    """The test table (two-tower + baselines) of a saved model on its run's data and cutoffs."""
    bundle = load_bundle(ref, registry)
    run_dir = bundle.run_dir
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        raise TowerkitError(f"{ref}: no run directory with config.yaml; cannot find its data")
    cutoffs = []
    if (run_dir / SPLIT_FILE).is_file():
        saved = json.loads((run_dir / SPLIT_FILE).read_text())
        cutoffs = [f"split.{key}='{saved[key]}'" for key in ("val_start", "test_start")]
    config = load_config(TwoTowerRecipe, run_dir / "config.yaml", [*cutoffs, *overrides])
    data = load_data(config.data, run_dir)
    prepared = build_prepared(config, data, merged=config.refit)
    # featurise with the model's own fitted vocabularies and statistics, not a refit
    art, encoder = bundle.features, CachedSentenceEncoder(config.features.text_encoder)
    prepared.artifacts = replace(
        prepared.artifacts,
        query=art.query,
        candidate=art.candidate,
        query_tables=art.query.transform(prepared.data.users, encoder if art.query.text else None),
        candidate_tables=art.candidate.transform(
            prepared.data.items, encoder if art.candidate.text else None
        ),
    )
    table = evaluate_all(config, bundle.model, prepared, "test")
    trained_on = bundle.version.data_fingerprint if bundle.version is not None else None
    return bundle, table, prepared.describe() + changed_since_training(trained_on, data)

"""The zoo's one pipeline, the same for every family.

train:    config -> data -> model -> start_run -> Trainer.fit (eval on val) -> evaluate on test
          -> finish_run (registered as ``zoo-<family>``) -> ONNX export + parity -> plots
evaluate: a model reference -> the test split of the data it was trained on -> metrics
export:   a model reference -> ONNX (+ parity on real test batches), Core ML optionally
predict:  a model reference -> the family's top-k classes for a file or a text

A model reference is a registry reference (``zoo-vision``, ``zoo-vision@production``,
``zoo-vision/2``; a bare family name such as ``vision`` means ``zoo-vision``) or a directory
(a run directory or its ``model/``). A bare name follows the ``production`` alias, else the
latest version, so ``towerkit registry rollback zoo-vision`` changes what ``predict`` uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towerkit.core.config import load_config
from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.core.model import BaseModel
from towerkit.core.registry import ModelRegistry, ModelVersion, parse_ref
from towerkit.core.run import Promote, finish_run, maybe_promote, resume_config, start_run
from towerkit.zoo.families import (
    FAMILY_MODULES,
    Evaluation,
    Family,
    FamilyData,
    Prediction,
    family_for_model,
    get_family,
    registry_name,
)
from towerkit.zoo.plots import confusion_matrix_png


@dataclass
class ExportOutcome:
    name: str
    path: Path
    parity_ok: bool
    max_abs_diff: float
    cases: int
    coreml_path: Path | None = None


@dataclass
class RecipeResult:
    """What one ``train`` run produced. ``metrics`` are the test metrics prefixed ``test_``
    plus ``val_*`` (best validation), ``train_seconds`` and ``train_examples_per_second``."""

    family: str
    run_dir: Path
    metrics: dict[str, float]
    version: ModelVersion | None
    promoted: bool
    exports: list[ExportOutcome] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    data_description: str = ""
    seconds: float = 0.0
    example: tuple[str, str] | None = None  # (input for predict, its true class) from test


@dataclass
class LoadedModel:
    model: BaseModel
    family: Family
    model_dir: Path
    run_dir: Path | None
    version: ModelVersion | None

    @property
    def label(self) -> str:
        return self.version.uri if self.version is not None else str(self.model_dir)


def load_recipe_config(
    family: Family, config_path: str | Path | None = None, overrides: Sequence[str] = ()
) -> Any:
    """The family's config: ``config_path`` (default its quick recipe) plus ``key=value`` overrides."""
    path = Path(config_path) if config_path is not None else family.default_config_path("quick")
    return load_config(family.config_class, path, overrides)


def train(
    family_name: str,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    promote: Promote = "auto",
    export: bool = True,
    registry: ModelRegistry | None = None,
    runs_root: Path | None = None,
    resume: Path | None = None,
) -> RecipeResult:
    """Train one family's recipe end to end; every run is registered as ``zoo-<family>``.

    ``resume``: an interrupted run directory; its config.yaml is used (``config_path`` and
    ``overrides`` must be empty) and training continues exactly from its latest checkpoint.
    """
    from towerkit.core.trainer import Trainer

    started = time.perf_counter()
    family = get_family(family_name)
    if resume is not None:
        if config_path is not None or overrides:
            raise TowerkitError(
                "--resume: the run's own config.yaml is used; drop --config/overrides"
            )
        config: Any = load_config(family.config_class, resume_config(resume))
    else:
        config = load_recipe_config(family, config_path, overrides)
    data = family.build_data(config)
    model = family.build_model(config, data)
    run_dir = resume or start_run("zoo", config.recipe, config, root=runs_root)

    def eval_on_val(unwrapped: Any) -> dict[str, float]:
        return family.evaluate(unwrapped, data.val, config, data.collate_fn).metrics

    trainer = Trainer(
        model,
        config.trainer,
        data.train,
        loss_fn=family.loss_fn,
        run_dir=run_dir,
        eval_fn=eval_on_val,
        collate_fn=data.collate_fn,
    )
    fit = trainer.fit(resume=resume is not None)
    test = family.evaluate(model, data.test, config, data.collate_fn)
    val = family.evaluate(model, data.val, config, data.collate_fn)
    metrics = {f"test_{k}": v for k, v in test.metrics.items()}
    metrics.update({f"val_{k}": v for k, v in val.metrics.items()})
    metrics["train_seconds"] = float(fit.train_seconds)
    metrics["train_examples_per_second"] = float(fit.examples_per_second)
    metrics["train_steps"] = float(fit.global_step)

    registry = registry or ModelRegistry()
    name = registry_name(family.name)
    version = finish_run(
        run_dir,
        model,
        metrics,
        config,
        register_as=name,
        data_files=data.data_files,
        tags={"family": family.name, "recipe": config.recipe},
        registry=registry,
    )
    if version is None:  # finish_run returns None only without register_as
        raise TowerkitError(f"{run_dir}: the run was not registered")
    promoted = maybe_promote(registry, version, f"test_{family.headline_metric()}", promote)
    plots = _plots(family, model, data, test, run_dir)
    exports = export_model(model, family, data, run_dir / "export") if export else []
    return RecipeResult(
        family=family.name,
        run_dir=run_dir,
        metrics=metrics,
        version=registry.get(name, version.version),
        promoted=promoted,
        exports=exports,
        plots=plots,
        data_description=data.description,
        seconds=time.perf_counter() - started,
        example=family.example_input(data, run_dir / "examples"),
    )


def _plots(
    family: Family, model: BaseModel, data: FamilyData, test: Evaluation, run_dir: Path
) -> list[Path]:
    plots_dir = run_dir / "plots"
    plots = sorted(plots_dir.glob("*.png")) if plots_dir.is_dir() else []  # the Trainer's
    if test.y_true is not None and test.y_pred is not None:
        title = f"{family.name}: test accuracy {test.metrics.get('accuracy', float('nan')):.4f}"
        plots.append(
            confusion_matrix_png(
                test.y_true,
                test.y_pred,
                test.class_names,
                plots_dir / "confusion_matrix.png",
                title,
            )
        )
    plots.extend(family.extra_plots(model, data, plots_dir))
    return plots


def export_model(
    model: BaseModel,
    family: Family,
    data: FamilyData,
    out_dir: Path,
    *,
    coreml: bool = False,
) -> list[ExportOutcome]:
    """Export every graph the family names to ONNX and assert parity on its cases."""
    from towerkit.core.export import check_onnx_parity, export_coreml, export_onnx

    outcomes, reports = [], {}
    model.eval()
    for spec in family.export_specs(model, data):
        path = export_onnx(
            spec.module,
            spec.cases[0],
            out_dir / f"{spec.name}.onnx",
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_dims=spec.dynamic_dims,
        )
        report = check_onnx_parity(spec.module, path, spec.cases)
        reports[spec.name] = report.as_dict()
        write_json_atomic(out_dir / "parity.json", reports)
        report.assert_ok()
        coreml_path = None
        if coreml:
            coreml_path = export_coreml(
                spec.module,
                spec.cases[0],
                out_dir / f"{spec.name}.mlpackage",
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_dims=spec.dynamic_dims,
            )
        outcomes.append(
            ExportOutcome(
                spec.name, path, report.ok, report.max_abs_diff, len(spec.cases), coreml_path
            )
        )
    return outcomes


def load_model(ref: str, registry: ModelRegistry | None = None) -> LoadedModel:
    """Load a model from a directory or a registry reference (see the module docstring)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        model_dir = path if (path / "config.json").is_file() else path / "model"
        if not (model_dir / "config.json").is_file():
            raise TowerkitError(
                f"{path}: not a model directory (no config.json there or in model/)"
            )
        run_dir = model_dir.parent if (model_dir.parent / "config.yaml").is_file() else None
        version = None
    elif path.exists():
        raise TowerkitError(f"{ref}: expected a model directory or a registry reference")
    else:
        version = (registry or ModelRegistry()).resolve(_registry_ref(ref))
        model_dir = Path(version.model_dir)
        run_dir = Path(version.run_dir) if version.run_dir else None
    model = BaseModel.from_pretrained(model_dir)
    return LoadedModel(model, family_for_model(model), model_dir, run_dir, version)


def _registry_ref(ref: str) -> str:
    """``vision`` / ``vision@production`` / ``vision/2`` -> the same on ``zoo-vision``."""
    name, _, _ = parse_ref(ref)
    return "zoo-" + ref.strip() if name in FAMILY_MODULES else ref


def config_for(loaded: LoadedModel, overrides: Sequence[str] = ()) -> Any:
    """The config the model was trained with (its run's config.yaml), else the quick recipe."""
    run_config = loaded.run_dir / "config.yaml" if loaded.run_dir is not None else None
    if run_config is not None and run_config.is_file():
        return load_config(loaded.family.config_class, run_config, overrides)
    return load_recipe_config(loaded.family, None, overrides)


def _data_for(loaded: LoadedModel, overrides: Sequence[str]) -> FamilyData:
    config = config_for(loaded, overrides)
    data = loaded.family.build_data(config)
    expected = int(getattr(loaded.model.config, "num_classes", len(data.class_names)))
    if expected != len(data.class_names):
        raise TowerkitError(
            f"{loaded.label}: the model has {expected} classes but its data has "
            f"{len(data.class_names)}; pass the data settings it was trained with"
        )
    return data


def evaluate(
    ref: str, overrides: Sequence[str] = (), registry: ModelRegistry | None = None
) -> tuple[LoadedModel, Evaluation]:
    """Metrics of a saved model on the test split of the data it was trained on."""
    loaded = load_model(ref, registry)
    config = config_for(loaded, overrides)
    data = _data_for(loaded, overrides)
    return loaded, loaded.family.evaluate(loaded.model, data.test, config, data.collate_fn)


def export(
    ref: str,
    out_dir: Path | None = None,
    *,
    coreml: bool = False,
    registry: ModelRegistry | None = None,
) -> tuple[LoadedModel, list[ExportOutcome]]:
    """ONNX (+ parity) for a saved model; default folder: ``<run_dir>/export``."""
    loaded = load_model(ref, registry)
    data = _data_for(loaded, ())
    target = out_dir or (loaded.run_dir or loaded.model_dir.parent) / "export"
    return loaded, export_model(loaded.model, loaded.family, data, target, coreml=coreml)


def predict(
    ref: str, user_input: str, top_k: int = 3, registry: ModelRegistry | None = None
) -> tuple[LoadedModel, Prediction]:
    """Top-k classes of one input with the model ``ref`` points to now."""
    if top_k < 1:
        raise TowerkitError(f"--top-k: expected a positive integer, got {top_k}")
    loaded = load_model(ref, registry)
    return loaded, loaded.family.predict(loaded.model, user_input, top_k)

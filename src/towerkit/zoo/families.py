"""The zoo's family interface: one ``Family`` per kind of model (vision, audio, text, concept).

How a family plugs in
---------------------
1. Write ``towerkit/zoo/<name>_family.py`` and add ``"<name>": "towerkit.zoo.<name>_family"`` to
   ``FAMILY_MODULES`` below. Modules are imported lazily, one at a time, so a family whose
   optional dependencies are missing never breaks the others (``list_families()`` skips it,
   ``get_family()`` says why it failed).
2. In that module define a recipe config dataclass (``config_class``) shaped like
   ``ZooRecipeConfig``: ``recipe: str`` (the run folder name, e.g. "vision-quick"), ``data``
   (the family's data section), ``model`` (the family's model section) and
   ``trainer: TrainerConfig``. It is loaded with ``towerkit.core.config.load_config`` from
   ``configs/zoo/<name>-quick.yaml`` / ``<name>-full.yaml`` plus ``key.sub=value`` overrides.
3. Subclass ``Family``, implement the abstract methods and call ``register_family(MyFamily())``
   at import time.

The generic pipeline (``towerkit.zoo.recipe``) then does, for every family:
``load config -> build_data -> build_model -> start_run -> Trainer.fit(loss_fn, eval_fn on val)
-> evaluate(test) -> finish_run(register_as="zoo-<name>") -> export_specs -> ONNX + parity
-> plots``; the CLI's ``predict`` loads a registered model and calls ``predict``.

Rules a family keeps
--------------------
- The saved model directory is self-contained: everything ``predict`` needs (class names,
  image size and normalisation, sample rate and mel settings, a tokenizer as a JSON string)
  lives in the model's config dataclass, so ``BaseModel.from_pretrained(dir)`` is enough.
- ``evaluate`` never sees the test split during training: the recipe passes the validation
  split to the Trainer's ``eval_fn`` and the test split only once, after training.
- ``model_inputs(batch)`` maps a collated batch to the positional arguments of
  ``model.forward``. ``loss_fn`` gets the Trainer's prepared model (DDP-wrapped under several
  processes): call it, do not reach into its attributes.
- Every tensor of an ``ExportSpec`` case has the batch on axis 0: the benchmark repeats or cuts
  the largest case's rows to time batch 1 and batch 64.

Optional hooks (defaults do nothing): ``headline_metric`` (what demo/benchmark/promotion
compare, default "accuracy"), ``baselines`` (benchmark), ``extra_plots`` (more PNGs),
``example_input`` (a held-out input the demo predicts on).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from towerkit.core.errors import TowerkitError
from towerkit.core.model import eval_mode
from towerkit.core.paths import repo_root

if TYPE_CHECKING:
    from towerkit.core.model import BaseModel
    from towerkit.core.trainer import TrainerConfig

# Family name -> module that registers it on import. Order is the demo/benchmark order.
FAMILY_MODULES: dict[str, str] = {
    "vision": "towerkit.zoo.vision_family",
    "audio": "towerkit.zoo.audio_family",
    "text": "towerkit.zoo.text_family",
    "concept": "towerkit.zoo.concept_family",
}

Batch = Any  # whatever the family's collate_fn returns (a dict of tensors by convention)
CollateFn = Callable[[list[Any]], Batch]


class ZooRecipeConfig(Protocol):
    """The shape every family's recipe config dataclass has (checked structurally)."""

    recipe: str
    data: Any
    model: Any
    trainer: TrainerConfig


@dataclass
class FamilyData:
    """Splits of one dataset. ``val`` is carved from the training data; ``test`` is held out."""

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    class_names: list[str]
    collate_fn: CollateFn | None = None
    data_files: list[Path] = field(default_factory=list)  # for the registry's data fingerprint
    description: str = ""  # one line for reports, e.g. "Fashion-MNIST: 54000/6000/10000"
    # facts build_model needs (image size, normalisation statistics measured on train, ...)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Metrics of one split; y_true / y_pred (class indices) let the recipe draw a confusion matrix."""

    metrics: dict[str, float]
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)


@dataclass
class ExportSpec:
    """One ONNX graph to export: ``module(*case)`` for every case must match ONNX Runtime."""

    name: str  # file stem: <run_dir>/export/<name>.onnx
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    dynamic_dims: dict[str, dict[int, str]]
    cases: list[tuple[torch.Tensor, ...]]  # first case is the tracing example; vary batch/length


@dataclass
class Prediction:
    """Top classes for one user input, best first; probabilities sum to <= 1."""

    input: str
    top: list[tuple[str, float]]


@dataclass
class BaselineResult:
    """A non-neural reference trained and tested on the same split (for the benchmark)."""

    name: str
    metrics: dict[str, float]
    train_seconds: float


class Family(abc.ABC):
    """One model family. Subclasses set ``name`` and ``config_class`` and implement the methods."""

    name: str
    config_class: type
    model_types: tuple[type[BaseModel], ...] = ()  # classes this family can load and predict with
    input_kinds: str = ""  # what ``predict`` accepts, for help text, e.g. "a .png image"

    # --- data and model ---------------------------------------------------------------------
    @abc.abstractmethod
    def build_data(self, config: Any) -> FamilyData:
        """Load (or fetch and cache) the data named by ``config.data``; raise TowerkitError."""

    @abc.abstractmethod
    def build_model(self, config: Any, data: FamilyData) -> BaseModel:
        """A fresh model for ``config.model`` with the class names of ``data``."""

    @abc.abstractmethod
    def model_inputs(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """Positional inputs of ``model.forward`` taken from a collated batch."""

    @abc.abstractmethod
    def loss_fn(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Training loss of one batch (the Trainer's ``loss_fn``)."""

    @abc.abstractmethod
    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], config: Any, collate_fn: CollateFn | None
    ) -> Evaluation:
        """Metrics on one split; must include ``accuracy`` (or the family's headline metric)."""

    # --- deployment -------------------------------------------------------------------------
    @abc.abstractmethod
    def export_specs(self, model: nn.Module, data: FamilyData) -> list[ExportSpec]:
        """Graphs to export to ONNX, each with several parity cases taken from ``data.test``."""

    @abc.abstractmethod
    def predict(self, model: nn.Module, user_input: str, top_k: int = 3) -> Prediction:
        """Top-k classes for a file path (.png / .wav) or a text; TowerkitError on bad input."""

    # --- optional ---------------------------------------------------------------------------
    def headline_metric(self) -> str:
        """The metric early stopping, the demo and the benchmark look at first."""
        return "accuracy"

    def baselines(self, config: Any, data: FamilyData) -> list[BaselineResult]:
        """Non-neural references on the same split (benchmark only); none by default."""
        return []

    def extra_plots(self, model: nn.Module, data: FamilyData, plots_dir: Path) -> list[Path]:
        """Family-specific PNGs beside the confusion matrix (e.g. retrieval examples)."""
        return []

    def example_input(self, data: FamilyData, out_dir: Path) -> tuple[str, str] | None:
        """(an input ``predict`` accepts, its true class) from the test split, for demos;
        may write a file under ``out_dir``. None: the family has no example to show."""
        return None

    def default_config_path(self, recipe: str = "quick") -> Path:
        return repo_root() / "configs" / "zoo" / f"{self.name}-{recipe}.yaml"


# --- registry -------------------------------------------------------------------------------

_FAMILIES: dict[str, Family] = {}
_IMPORT_ERRORS: dict[str, str] = {}


def register_family(family: Family) -> Family:
    """Called by a family module at import time; registering the same name twice is an error."""
    existing = _FAMILIES.get(family.name)
    if existing is not None and type(existing) is not type(family):
        raise ValueError(f"zoo family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def _import_family(name: str) -> None:
    if name in _FAMILIES or name in _IMPORT_ERRORS:
        return
    module = FAMILY_MODULES.get(name)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        _IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"


def get_family(name: str) -> Family:
    """The family registered under ``name`` (importing its module on first use)."""
    _import_family(name)
    if name in _FAMILIES:
        return _FAMILIES[name]
    if name in _IMPORT_ERRORS:
        raise TowerkitError(f"zoo family {name!r} is not available ({_IMPORT_ERRORS[name]})")
    known = ", ".join(list_families()) or "none"
    raise TowerkitError(f"unknown zoo family {name!r} (available: {known})")


def list_families() -> list[str]:
    """Names of the families that import cleanly here, in ``FAMILY_MODULES`` order."""
    for name in FAMILY_MODULES:
        _import_family(name)
    ordered = [n for n in FAMILY_MODULES if n in _FAMILIES]
    return ordered + sorted(n for n in _FAMILIES if n not in FAMILY_MODULES)


def family_for_model(model: nn.Module) -> Family:
    """The family whose ``model_types`` include this model's class."""
    for name in list_families():
        family = _FAMILIES[name]
        if family.model_types and isinstance(model, family.model_types):
            return family
    raise TowerkitError(f"no zoo family knows model class {type(model).__name__}")


def registry_name(family: str) -> str:
    """The registry name every run of a family is registered under."""
    return f"zoo-{family}"


# --- helpers shared by the families ---------------------------------------------------------


def batches(
    dataset: Dataset[Any], batch_size: int, collate_fn: CollateFn | None
) -> DataLoader[Any]:
    """An in-order DataLoader in the main process (evaluation, export cases)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)


def parity_picks(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of parity batches for a variable-length input, chosen by each example's length:
    a mixed pair (so padding matters), the longest alone, the shortest alone, 16 of spread lengths."""
    by_length = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [
        [by_length[len(by_length) // 2], by_length[0]],
        [by_length[-1]],
        [by_length[0]],
        by_length[:: max(1, len(by_length) // 16)][:16],
    ]


def dataset_size(dataset: Dataset[Any]) -> int:
    """len() of a map-style dataset (torch's Dataset type does not declare __len__)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no length")
    return len(dataset)


def first_batch(
    dataset: Dataset[Any], size: int, collate_fn: CollateFn | None, start: int = 0
) -> Batch:
    """Items ``start .. start+size`` of ``dataset`` collated into one batch."""
    items = [dataset[i] for i in range(start, start + size)]
    if collate_fn is not None:
        return collate_fn(items)
    return torch.utils.data.default_collate(items)


@torch.no_grad()
def collect_logits(
    family: Family,
    model: nn.Module,
    dataset: Dataset[Any],
    collate_fn: CollateFn | None,
    label_key: str = "label",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, C], labels [N]) of a classifier over a dataset, in eval mode."""
    logits, labels = [], []
    with eval_mode(model):
        for batch in batches(dataset, batch_size, collate_fn):
            logits.append(model(*family.model_inputs(batch)).float().cpu())
            labels.append(batch[label_key].cpu())
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def top_k_classes(
    logits: torch.Tensor, class_names: Sequence[str], k: int
) -> list[tuple[str, float]]:
    """Softmax of one row of logits -> the k most likely (class name, probability)."""
    probs = torch.softmax(logits.float().flatten(), dim=0)
    k = max(1, min(k, probs.numel()))
    values, indices = torch.topk(probs, k)
    return [
        (class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def eval_batch_size(config: Any, default: int = 256) -> int:
    """The recipe's ``trainer.eval_batch_size`` (else its batch size), or ``default``."""
    trainer = getattr(config, "trainer", None)
    resolve = getattr(trainer, "resolved_eval_batch_size", None)
    return int(resolve()) if callable(resolve) else default


def model_class_names(model: nn.Module) -> list[str]:
    """``model.config.class_names`` when it names every class, else "0", "1", ..."""
    config = getattr(model, "config", None)
    names = list(getattr(config, "class_names", []) or [])
    count = int(getattr(config, "num_classes", len(names)))
    return names if len(names) == count else [str(i) for i in range(count)]


def metrics_dict(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def classification_evaluation(
    logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> Evaluation:
    """accuracy, macro-F1 and mean cross-entropy of a classifier's logits."""
    from towerkit.core.metrics import accuracy, macro_f1

    pred = logits.argmax(axis=1)
    log_probs = torch.log_softmax(torch.from_numpy(logits).float(), dim=1)
    nll = -log_probs[torch.arange(len(labels)), torch.from_numpy(labels).long()].mean()
    metrics = {
        "accuracy": accuracy(labels, pred),
        "macro_f1": macro_f1(labels, pred),
        "loss": float(nll),
    }
    return Evaluation(metrics, y_true=labels, y_pred=pred, class_names=list(class_names))


def model_overrides(section: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The ``keys`` of a recipe's model section that the recipe sets; a None leaves the
    architecture's own default in place, so only the set ones reach ``create_model``."""
    return {key: getattr(section, key) for key in keys if getattr(section, key) is not None}


def stratified_train_val(
    labels: Sequence[int] | np.ndarray, val_fraction: float, train_limit: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions into ``labels``: a seeded, stratified ``val_fraction`` carved out,
    then, when 0 < train_limit < len(train), a stratified ``train_limit`` of the rest. One helper
    so the vision and audio recipes split alike; positions stay in scikit-learn's shuffled order,
    the order these splits have always had (a reordering would change the trained models)."""
    from sklearn.model_selection import train_test_split

    label_array = np.asarray(labels)
    train, val = train_test_split(
        np.arange(len(label_array)),
        test_size=val_fraction,
        random_state=seed,
        stratify=label_array,
    )
    if 0 < train_limit < len(train):
        train, _ = train_test_split(
            train, train_size=train_limit, random_state=seed, stratify=label_array[train]
        )
    return train, val

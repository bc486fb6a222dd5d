"""The vision family: a CNN on Fashion-MNIST (default), scikit-learn's 8x8 digits or MNIST 5k."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

import towerkit.zoo.models.vision  # noqa: F401  (registers vision-cnn-*)
from towerkit.core.config import check_ranges
from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path
from towerkit.core.model import BaseModel, create_model
from towerkit.core.trainer import TrainerConfig
from towerkit.zoo.data.vision import (
    ImageArrays,
    ImageDataset,
    load_fashion_mnist,
    load_mnist_5k,
    load_sklearn_digits,
)
from towerkit.zoo.families import (
    BaselineResult,
    CollateFn,
    Evaluation,
    ExportSpec,
    Family,
    FamilyData,
    Prediction,
    classification_evaluation,
    collect_logits,
    eval_batch_size,
    first_batch,
    model_class_names,
    model_overrides,
    register_family,
    stratified_train_val,
    top_k_classes,
)
from towerkit.zoo.models.vision import VisionCNN

ImageSource = Literal["fashion-mnist", "digits-8x8", "mnist-5k"]


@dataclass
class VisionDataConfig:
    dataset: ImageSource = "fashion-mnist"
    val_fraction: float = 0.1  # carved from train, stratified; the test split is never tuned on
    train_limit: int = 0  # >0: a stratified subset of the training split (quick recipes)
    augment: bool = True
    crop_padding: int = 2  # random shift of up to this many pixels
    flip: bool = True  # random left-right mirror (right for clothes, wrong for digits)
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(
            "data",
            self,
            fractions=["val_fraction"],
            non_negative=["train_limit", "crop_padding", "seed"],
        )


@dataclass
class VisionModelSection:
    arch: str = "vision-cnn-small"
    widths: list[int] | None = None
    convs_per_block: int | None = None
    hidden: int | None = None  # 0: no hidden layer before the classifier
    dropout: float | None = None

    def __post_init__(self) -> None:
        check_ranges(
            "model",
            self,
            probabilities=["dropout"],
            positive=["widths", "convs_per_block"],
            non_negative=["hidden"],
        )


@dataclass
class VisionRecipeConfig:
    recipe: str = "vision-quick"
    data: VisionDataConfig = field(default_factory=VisionDataConfig)
    model: VisionModelSection = field(default_factory=VisionModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def load_image_arrays(data: VisionDataConfig) -> ImageArrays:
    from towerkit.zoo.assets import fetch

    if data.dataset == "fashion-mnist":
        return load_fashion_mnist(fetch("fashion-mnist"))
    if data.dataset == "mnist-5k":
        return load_mnist_5k(fetch("mnist-5k"), seed=data.seed)
    return load_sklearn_digits(fetch("digits-8x8"), seed=data.seed)


def load_image(path: Path, size: int) -> torch.Tensor:
    """A PNG/JPEG as a [1, 1, size, size] tensor in [0, 1] (grayscale, resized)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise TowerkitError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            gray = img.convert("L")
            if gray.size != (size, size):
                gray = gray.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(gray, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise TowerkitError(f"{path}: not a readable image ({exc})") from None
    return torch.from_numpy(pixels)[None, None]


class VisionFamily(Family):
    name = "vision"
    config_class = VisionRecipeConfig
    model_types = (VisionCNN,)
    input_kinds = "a .png/.jpg image (grayscale, resized to the model's size)"

    def build_data(self, config: VisionRecipeConfig) -> FamilyData:
        data = config.data
        arrays = load_image_arrays(data)
        x, y = arrays.train_images, arrays.train_labels
        train, val = stratified_train_val(y, data.val_fraction, data.train_limit, data.seed)
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
        pixels = x_train.astype(np.float32) / 255.0
        return FamilyData(
            train=ImageDataset(
                x_train, y_train, data.augment, crop_padding=data.crop_padding, flip=data.flip
            ),
            val=ImageDataset(x_val, y_val),
            test=ImageDataset(arrays.test_images, arrays.test_labels),
            class_names=arrays.class_names,
            data_files=arrays.files,
            description=f"{data.dataset}: {len(y_train)} train / {len(y_val)} val / "
            f"{len(arrays.test_labels)} test images",
            info={
                "image_size": int(x_train.shape[1]),
                "mean": float(pixels.mean()),
                "std": float(pixels.std()),
            },
        )

    def build_model(self, config: VisionRecipeConfig, data: FamilyData) -> BaseModel:
        section = config.model
        overrides = model_overrides(section, ("widths", "convs_per_block", "hidden", "dropout"))
        return create_model(
            section.arch,
            num_classes=len(data.class_names),
            class_names=list(data.class_names),
            image_size=data.info["image_size"],
            mean=data.info["mean"],
            std=data.info["std"],
            **overrides,
        )

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (batch["image"],)

    def loss_fn(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["image"]), batch["label"])

    def evaluate(
        self,
        model: nn.Module,
        dataset: Dataset[Any],
        config: Any,
        collate_fn: CollateFn | None,
    ) -> Evaluation:
        logits, labels = collect_logits(
            self, model, dataset, collate_fn, batch_size=eval_batch_size(config)
        )
        return classification_evaluation(logits, labels, model_class_names(model))

    def export_specs(self, model: nn.Module, data: FamilyData) -> list[ExportSpec]:
        cases: list[tuple[torch.Tensor, ...]] = [
            (first_batch(data.test, size, None, start)["image"],)
            for size, start in ((2, 0), (1, 2), (64, 3))
        ]
        return [
            ExportSpec(
                name="model",
                module=model,
                input_names=["images"],
                output_names=["logits"],
                dynamic_dims={"images": {0: "batch"}, "logits": {0: "batch"}},
                cases=cases,
            )
        ]

    def predict(self, model: nn.Module, user_input: str, top_k: int = 3) -> Prediction:
        if not isinstance(model, VisionCNN):
            raise TowerkitError(f"vision predict needs a VisionCNN, got {type(model).__name__}")
        image = load_image(Path(user_input), model.config.image_size)
        if model.config.in_channels != 1:
            image = image.expand(-1, model.config.in_channels, -1, -1)
        model.eval()
        with torch.no_grad():
            logits = model(image)[0]
        return Prediction(user_input, top_k_classes(logits, model_class_names(model), top_k))

    def example_input(self, data: FamilyData, out_dir: Path) -> tuple[str, str] | None:
        """The first test image, written as a PNG."""
        from PIL import Image

        if not isinstance(data.test, ImageDataset):
            return None
        path = out_dir / "test-image-0.png"
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(data.test.images[0]).save(tmp, format="PNG")
        return str(path), data.class_names[int(data.test.labels[0])]

    def baselines(self, config: VisionRecipeConfig, data: FamilyData) -> list[BaselineResult]:
        """Logistic regression and a random forest on raw pixels, same train/test split."""
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression

        x_train, y_train = _flat_pixels(data.train)
        x_test, y_test = _flat_pixels(data.test)
        models = {
            "logistic regression (pixels)": LogisticRegression(max_iter=500),
            "random forest (pixels, 200 trees)": RandomForestClassifier(
                n_estimators=200, n_jobs=2, random_state=0
            ),
        }
        results = []
        for name, estimator in models.items():
            start = time.perf_counter()
            estimator.fit(x_train, y_train)
            seconds = time.perf_counter() - start
            accuracy = float((estimator.predict(x_test) == y_test).mean())
            results.append(BaselineResult(name, {"accuracy": accuracy}, seconds))
        return results


def _flat_pixels(dataset: Dataset[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(dataset, ImageDataset):
        raise TypeError("baselines need an ImageDataset")
    flat = dataset.images.reshape(len(dataset.images), -1).astype(np.float32) / 255.0
    return flat, dataset.labels.numpy()


register_family(VisionFamily())

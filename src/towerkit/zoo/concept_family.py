"""The concept family: digit images, spoken digits and digit words in one contrastive space.

Headline metric ``speech_to_image_top1``: for each held-out recording (FSDD index 0-4), the
held-out image (MNIST 5k test split) with the highest cosine similarity is retrieved; a hit when
it shows the same digit. ``*_top5`` counts a hit when any of the 5 nearest has the same digit.
Zero-shot classification: an item's class is the class whose text prototype (the normalised mean
of that class's written forms) is nearest; no classifier is trained for it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

import towerkit.zoo.models.concept  # noqa: F401  (registers concept-digits)
from towerkit.core.config import check_ranges
from towerkit.core.errors import TowerkitError
from towerkit.core.model import BaseModel, create_model, eval_mode
from towerkit.core.trainer import TrainerConfig
from towerkit.zoo.data.audio import (
    Clip,
    MelParams,
    SpectrogramDataset,
    cached_spectrograms,
    feature_stats,
    list_fsdd,
    pad_collate,
    split_fsdd,
    wav_features,
)
from towerkit.zoo.data.concept import (
    ConceptPairs,
    ConceptSplit,
    make_concept_collate,
    stratified_indices,
)
from towerkit.zoo.data.vision import ImageDataset, load_mnist_5k, load_sklearn_digits
from towerkit.zoo.families import (
    BaselineResult,
    CollateFn,
    Evaluation,
    ExportSpec,
    Family,
    FamilyData,
    Prediction,
    batches,
    model_overrides,
    register_family,
    top_k_classes,
)
from towerkit.zoo.models.concept import ConceptModel, info_nce
from towerkit.zoo.vision_family import load_image

HEADLINE = "speech_to_image_top1"


@dataclass
class ConceptDataConfig:
    images: Literal["mnist-5k", "digits-8x8"] = "mnist-5k"
    val_fraction: float = 0.1  # of the training recordings and images, stratified
    train_limit: int = 0  # >0: a stratified subset of the training recordings
    augment: bool = True  # image shifts and SpecAugment masks on training pairs
    seed: int = 0
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 160  # 20 ms: half the audio family's frames, twice as fast to train
    n_mels: int = 40
    max_seconds: float = 2.0

    def __post_init__(self) -> None:
        check_ranges(
            "data",
            self,
            fractions=["val_fraction"],
            positive=["sample_rate", "n_fft", "hop_length", "n_mels", "max_seconds"],
            non_negative=["train_limit", "seed"],
        )


@dataclass
class ConceptModelSection:
    arch: str = "concept-digits"
    dim: int | None = None
    init_temperature: float | None = None

    def __post_init__(self) -> None:
        check_ranges("model", self, positive=["dim", "init_temperature"])


@dataclass
class ConceptRecipeConfig:
    recipe: str = "concept-quick"
    data: ConceptDataConfig = field(default_factory=ConceptDataConfig)
    model: ConceptModelSection = field(default_factory=ConceptModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def retrieval_top_k(
    queries: torch.Tensor,
    query_labels: np.ndarray,
    gallery: torch.Tensor,
    gallery_labels: np.ndarray,
    ks: tuple[int, ...] = (1, 5),
) -> dict[int, float]:
    """Fraction of queries with an item of their own class among the k most similar gallery
    items (dot product of normalised vectors = cosine). Hand-written: the ranking metrics in
    core count relevant *items*; here relevance is a shared class label, a two-line check."""
    scores = queries @ gallery.T
    nearest = torch.topk(scores, min(max(ks), scores.shape[1]), dim=1).indices.numpy()
    hits = gallery_labels[nearest] == query_labels[:, None]
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def _images(data: ConceptDataConfig) -> Any:
    from towerkit.zoo.assets import fetch

    if data.images == "mnist-5k":
        return load_mnist_5k(fetch("mnist-5k"))
    return load_sklearn_digits(fetch("digits-8x8"))


def _words(model_words: dict[str, list[str]]) -> list[list[str]]:
    return [model_words[str(d)] for d in range(10)]


class ConceptFamily(Family):
    name = "concept"
    config_class = ConceptRecipeConfig
    model_types = (ConceptModel,)
    input_kinds = 'a .png digit image, a .wav spoken digit, or a word such as "seven"'

    def headline_metric(self) -> str:
        return HEADLINE

    def build_data(self, config: ConceptRecipeConfig) -> FamilyData:
        from towerkit.zoo.assets import fetch

        data = config.data
        words = _words(create_model(config.model.arch).config.words)  # type: ignore[attr-defined]
        arrays = _images(data)
        img_keep, img_val = stratified_indices(arrays.train_labels, data.val_fraction, data.seed)
        clips = list_fsdd(fetch("fsdd"))
        spectrograms = cached_spectrograms(clips, MelParams.of(data))
        by_clip = dict(zip(clips, spectrograms, strict=True))
        train_clips, test_clips = split_fsdd(clips, "usual")
        labels = np.asarray([c.digit for c in train_clips])
        keep, val = stratified_indices(labels, data.val_fraction, data.seed)
        if 0 < data.train_limit < len(keep):
            keep = keep[stratified_indices(labels[keep], data.train_limit, data.seed)[1]]
        fit_clips = [train_clips[i] for i in keep]
        val_clips = [train_clips[i] for i in val]

        def speech(chosen: list[Clip], augment: bool = False) -> SpectrogramDataset:
            return SpectrogramDataset(
                [by_clip[c] for c in chosen], [c.digit for c in chosen], augment=augment
            )

        def images(x: np.ndarray, y: np.ndarray, augment: bool = False) -> ImageDataset:
            return ImageDataset(x, y, augment=augment, crop_padding=2, flip=False)

        x, y = arrays.train_images, arrays.train_labels
        train = ConceptSplit(
            images(x[img_keep], y[img_keep], data.augment), speech(fit_clips, data.augment), words
        )
        val_split = ConceptSplit(images(x[img_val], y[img_val]), speech(val_clips), words)
        test = ConceptSplit(
            images(arrays.test_images, arrays.test_labels), speech(test_clips), words
        )
        mean, std = feature_stats([by_clip[c] for c in fit_clips])
        pixels = x[img_keep].astype(np.float32) / 255.0
        return FamilyData(
            train=ConceptPairs(train, random_pairs=True),
            val=ConceptPairs(val_split, random_pairs=False),
            test=ConceptPairs(test, random_pairs=False),
            class_names=[str(d) for d in range(10)],
            collate_fn=make_concept_collate(24),
            data_files=[*arrays.files, *(c.path for c in clips)],
            description=f"{data.images} images {len(img_keep)}/{len(img_val)}/"
            f"{len(arrays.test_labels)} + FSDD recordings {len(fit_clips)}/{len(val_clips)}/"
            f"{len(test_clips)} (train/val/test) + digit words",
            info={
                "image_size": int(x.shape[1]),
                "mean": float(pixels.mean()),
                "std": float(pixels.std()),
                "feature_mean": mean,
                "feature_std": std,
                "test_files": [c.path for c in test_clips],
                "test_digits": [c.digit for c in test_clips],
            },
        )

    def build_model(self, config: ConceptRecipeConfig, data: FamilyData) -> BaseModel:
        probe = create_model(config.model.arch)
        if not isinstance(probe, ConceptModel):
            raise TowerkitError(f"model.arch {config.model.arch!r}: not a concept model")
        info, mel = data.info, config.data
        vision = _replace(
            probe.config.vision,
            image_size=info["image_size"],
            mean=info["mean"],
            std=info["std"],
            # 8x8 digits leave no room for three 2x2 poolings of a 28x28 design
            widths=probe.config.vision.widths[: 3 if info["image_size"] >= 16 else 2],
        )
        audio = _replace(
            probe.config.audio,
            **asdict(MelParams.of(mel)),
            feature_mean=info["feature_mean"],
            feature_std=info["feature_std"],
        )
        section = config.model
        extra = model_overrides(section, ("dim", "init_temperature"))
        return create_model(section.arch, vision=vision, audio=audio, **extra)

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        keys = ("images", "features", "lengths", "char_ids", "char_mask")
        return tuple(batch[k] for k in keys)

    def loss_fn(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The three cross-modal symmetric InfoNCE losses, averaged; same digit = positive."""
        image, speech, text, scale = model(*self.model_inputs(batch))
        labels = batch["label"]
        pairs = ((speech, image), (speech, text), (image, text))
        losses = [info_nce(a, b, scale, labels) for a, b in pairs]
        return torch.stack(losses).mean()

    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], config: Any, collate_fn: CollateFn | None
    ) -> Evaluation:
        if not isinstance(model, ConceptModel) or not isinstance(dataset, ConceptPairs):
            raise TypeError("concept evaluate needs a ConceptModel and ConceptPairs")
        vectors = embed_split(model, dataset.split)
        metrics = retrieval_metrics(vectors)
        nearest = torch.argmax(vectors["speech"] @ vectors["image"].T, dim=1).numpy()
        y_pred = vectors["image_labels"][nearest]
        # the generic pipeline titles its confusion matrix with "accuracy": speech -> image top-1
        metrics["accuracy"] = metrics[HEADLINE]
        return Evaluation(
            metrics,
            y_true=vectors["speech_labels"],
            y_pred=y_pred,
            class_names=list(model.config.class_names),
        )

    def export_specs(self, model: nn.Module, data: FamilyData) -> list[ExportSpec]:
        from towerkit.zoo.concept_export import concept_export_specs

        if not isinstance(model, ConceptModel) or not isinstance(data.test, ConceptPairs):
            raise TypeError("concept export needs a ConceptModel and ConceptPairs")
        return concept_export_specs(model, data.test)

    def predict(self, model: nn.Module, user_input: str, top_k: int = 3) -> Prediction:
        if not isinstance(model, ConceptModel):
            raise TowerkitError(f"concept predict needs a ConceptModel, got {type(model).__name__}")
        model.eval()
        with torch.no_grad():
            vector = _embed_input(model, user_input)
            similarity = vector @ text_prototypes(model).T
            logits = model.scale() * similarity[0]
        return Prediction(user_input, top_k_classes(logits, list(model.config.class_names), top_k))

    def example_input(self, data: FamilyData, out_dir: Path) -> tuple[str, str] | None:
        """The first held-out recording (a wav in place): predict names its digit through the
        words' text prototypes."""
        files, digits = data.info.get("test_files", []), data.info.get("test_digits", [])
        return (str(files[0]), data.class_names[digits[0]]) if files else None

    def baselines(self, config: Any, data: FamilyData) -> list[BaselineResult]:
        """Canonical correlation analysis (scikit-learn) between MFCC statistics of each training
        recording and the pixels of a random training image of its digit; held-out recordings
        and images are projected and retrieved by cosine, exactly like the concept model."""
        if not isinstance(data.train, ConceptPairs) or not isinstance(data.test, ConceptPairs):
            raise TypeError("concept baselines need ConceptPairs splits")
        from towerkit.zoo.concept_export import cca_speech_image_baseline

        start = time.perf_counter()
        found = cca_speech_image_baseline(data.train.split, data.test.split, config.data.seed)
        metrics = {
            "speech_to_image_top1": found[1],
            "speech_to_image_top5": found[5],
            "accuracy": found[1],
        }
        name = "CCA (MFCC mean/std <-> image pixels), cosine retrieval"
        return [BaselineResult(name, metrics, time.perf_counter() - start)]

    def extra_plots(self, model: nn.Module, data: FamilyData, plots_dir: Path) -> list[Path]:
        from towerkit.zoo.concept_export import concept_space_png

        if not isinstance(model, ConceptModel) or not isinstance(data.test, ConceptPairs):
            return []
        return [concept_space_png(embed_split(model, data.test.split), plots_dir)]


def _replace(config: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(config, **changes)


def _embed_input(model: ConceptModel, user_input: str) -> torch.Tensor:
    suffix = Path(user_input).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
        image = load_image(Path(user_input), model.config.vision.image_size)
        return model.embed_images(image)
    if suffix in (".wav", ".flac", ".ogg"):
        features = wav_features(Path(user_input), model.config.audio)
        return model.embed_speech(features[None], torch.tensor([features.shape[0]]))
    if not user_input.strip():
        raise TowerkitError("concept predict: the input is empty (a .png, a .wav or a word)")
    return model.embed_words([user_input.strip()])


def text_prototypes(model: ConceptModel) -> torch.Tensor:
    """[classes, dim]: the normalised mean concept vector of each class's written forms."""
    rows = []
    for name in model.config.class_names:
        rows.append(model.embed_words(model.config.words[name]).mean(dim=0))
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


@torch.no_grad()
def embed_split(model: ConceptModel, split: ConceptSplit, batch_size: int = 128) -> dict[str, Any]:
    """Concept vectors of a split's images, recordings and words, with their labels."""
    with eval_mode(model):
        images = [model.embed_images(b["image"]) for b in batches(split.images, batch_size, None)]
        speech = [
            model.embed_speech(b["features"], b["lengths"])
            for b in batches(split.speech, batch_size, pad_collate)
        ]
        flat_words = [(w, d) for d, forms in enumerate(split.words) for w in forms]
        text = model.embed_words([w for w, _ in flat_words])
        prototypes = text_prototypes(model)
    return {
        "image": torch.cat(images),
        "image_labels": split.image_labels(),
        "speech": torch.cat(speech),
        "speech_labels": split.speech_labels(),
        "text": text,
        "text_labels": np.asarray([d for _, d in flat_words]),
        "words": [w for w, _ in flat_words],
        "prototypes": prototypes,
    }


def retrieval_metrics(vectors: dict[str, Any]) -> dict[str, float]:
    """Cross-modal retrieval top-1/top-5 in both directions and zero-shot accuracy via text."""
    metrics: dict[str, float] = {}
    for query, gallery in (
        ("speech", "image"),
        ("image", "speech"),
        ("text", "image"),
        ("text", "speech"),
        ("image", "text"),
        ("speech", "text"),
    ):
        found = retrieval_top_k(
            vectors[query],
            vectors[f"{query}_labels"],
            vectors[gallery],
            vectors[f"{gallery}_labels"],
        )
        metrics[f"{query}_to_{gallery}_top1"] = found[1]
        metrics[f"{query}_to_{gallery}_top5"] = found[5]
    classes = np.arange(len(vectors["prototypes"]))
    for modality in ("speech", "image"):
        scores = vectors[modality] @ vectors["prototypes"].T
        predicted = classes[torch.argmax(scores, dim=1).numpy()]
        correct = predicted == vectors[f"{modality}_labels"]
        metrics[f"{modality}_zero_shot_accuracy"] = float(correct.mean())
    return metrics


register_family(ConceptFamily())

"""The concept model's ONNX graphs (one per modality tower) and its concept-space picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from towerkit.zoo.data.audio import pad_collate
from towerkit.zoo.data.concept import ConceptPairs, ConceptSplit
from towerkit.zoo.families import ExportSpec
from towerkit.zoo.models.concept import ConceptModel, encode_words

MARKERS = {"image": "o", "speech": "^", "text": "*"}


def concept_export_specs(model: ConceptModel, test: ConceptPairs) -> list[ExportSpec]:
    """image (dynamic batch), speech (dynamic batch and frames) and text (dynamic batch and
    characters) towers, each checked on several real held-out inputs of different sizes."""
    images, speech = test.split.images, test.split.speech
    image_cases: list[tuple[torch.Tensor, ...]] = [
        (torch.stack([images[i]["image"] for i in range(start, start + size)]),)
        for size, start in ((2, 0), (1, 2), (64, 3))
    ]
    by_length = sorted(range(len(speech)), key=lambda i: int(speech[i]["length"]))
    picks = [
        [by_length[len(by_length) // 2], by_length[0]],
        [by_length[-1]],
        [by_length[0]],
        by_length[:: max(1, len(by_length) // 16)][:16],
    ]
    speech_cases: list[tuple[torch.Tensor, ...]] = []
    for pick in picks:
        batch = pad_collate([speech[i] for i in pick])
        speech_cases.append((batch["features"], batch["lengths"]))
    word_sets = [["seven", "7"], ["the number three"], ["1"], model.canonical_words()]
    text_cases: list[tuple[torch.Tensor, ...]] = [
        encode_words(words, model.config.max_chars) for words in word_sets
    ]
    return [
        ExportSpec(
            name="image_tower",
            module=model.image_tower,
            input_names=["images"],
            output_names=["concept"],
            dynamic_dims={"images": {0: "batch"}, "concept": {0: "batch"}},
            cases=image_cases,
        ),
        ExportSpec(
            name="speech_tower",
            module=model.speech_tower,
            input_names=["features", "lengths"],
            output_names=["concept"],
            dynamic_dims={
                "features": {0: "batch", 1: "frames"},
                "lengths": {0: "batch"},
                "concept": {0: "batch"},
            },
            cases=speech_cases,
        ),
        ExportSpec(
            name="text_tower",
            module=model.text_tower,
            input_names=["char_ids", "char_mask"],
            output_names=["concept"],
            dynamic_dims={
                "char_ids": {0: "batch", 1: "chars"},
                "char_mask": {0: "batch", 1: "chars"},
                "concept": {0: "batch"},
            },
            cases=text_cases,
        ),
    ]


def _mfcc_stats(split: ConceptSplit) -> np.ndarray:
    """20 MFCCs of each log-mel (librosa), summarised by their mean and std over time."""
    import librosa

    rows = []
    for spectrogram in split.speech.spectrograms:
        mfcc = librosa.feature.mfcc(S=spectrogram.numpy().T, n_mfcc=20)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.stack(rows)


def _pixels(split: ConceptSplit) -> np.ndarray:
    images = split.images.images
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def cca_speech_image_baseline(
    train: ConceptSplit, test: ConceptSplit, seed: int = 0, components: int = 9
) -> dict[int, float]:
    """Speech -> image retrieval top-1/top-5 through CCA fitted on same-digit training pairs."""
    from sklearn.cross_decomposition import CCA
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from towerkit.zoo.concept_family import retrieval_top_k

    rng = np.random.default_rng(seed)
    speech_labels, image_labels = train.speech_labels(), train.image_labels()
    partner = np.array([rng.choice(np.flatnonzero(image_labels == d)) for d in speech_labels])
    speech_scaler = StandardScaler().fit(_mfcc_stats(train))
    image_reducer = make_pipeline(StandardScaler(), PCA(50, random_state=seed))
    image_reducer.fit(_pixels(train))
    cca = CCA(n_components=components, max_iter=1000)
    cca.fit(
        speech_scaler.transform(_mfcc_stats(train)),
        image_reducer.transform(_pixels(train)[partner]),
    )
    speech, images = cca.transform(
        speech_scaler.transform(_mfcc_stats(test)), image_reducer.transform(_pixels(test))
    )
    normalise = torch.nn.functional.normalize
    return retrieval_top_k(
        normalise(torch.from_numpy(speech).float(), dim=-1),
        test.speech_labels(),
        normalise(torch.from_numpy(images).float(), dim=-1),
        test.image_labels(),
    )


def concept_space_png(vectors: dict[str, Any], plots_dir: Path, per_class: int = 30) -> Path:
    """PCA (fitted on all shown points) of held-out concept vectors: colour = digit, marker =
    modality. At most ``per_class`` images and recordings of each digit, every written form."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from towerkit.core.io import atomic_path

    points, digits, kinds = [], [], []
    for modality in ("image", "speech", "text"):
        labels = vectors[f"{modality}_labels"]
        for digit in range(10):
            rows = np.flatnonzero(labels == digit)
            rows = rows if modality == "text" else rows[:per_class]
            points.append(vectors[modality][rows].numpy())
            digits += [digit] * len(rows)
            kinds += [modality] * len(rows)
    coords = PCA(n_components=2, random_state=0).fit_transform(np.concatenate(points))
    digit_array, kind_array = np.asarray(digits), np.asarray(kinds)
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = plt.get_cmap("tab10")
    for modality, marker in MARKERS.items():
        for digit in range(10):
            chosen = (kind_array == modality) & (digit_array == digit)
            ax.scatter(
                coords[chosen, 0],
                coords[chosen, 1],
                c=[colours(digit)],
                marker=marker,
                s=90 if modality == "text" else 18,
                alpha=0.9 if modality == "text" else 0.55,
                edgecolors="black" if modality == "text" else "none",
                label=f"{digit}" if modality == "image" else None,
            )
    for modality, marker in MARKERS.items():
        ax.scatter([], [], c="grey", marker=marker, label=modality)
    ax.legend(ncol=2, fontsize=8, loc="best", title="digit / modality")
    ax.set_title("concept space (PCA of held-out images, recordings and words)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    target = plots_dir / "concept_space.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return target

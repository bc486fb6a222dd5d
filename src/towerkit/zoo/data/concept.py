"""Data of the concept model: digit images, spoken digits (FSDD) and digit words, paired by class.

Splits (fixed, seeded):
- speech: FSDD's usual split, recording index 0-4 held out for test (250 clips); 10% of the
  rest (stratified by digit, ``seed``) is the validation split.
- images: MNIST 5k (or scikit-learn's 8x8 digits) with the vision family's fixed stratified
  20% test split; 10% of the rest is the validation split.
- words: every class's written forms (``ConceptConfig.words``) in every split: the vocabulary
  is closed, the held-out parts are the recordings and the images.

Training pairs: each training recording is one item; it is paired with a random training image
and a random written form of the same digit, drawn with torch's RNG (which the Trainer seeds and
restores on resume). Validation and test items pair deterministically (the k-th item of a class
with the k-th image of that class, cyclically) so that batches for export and latency are fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from towerkit.zoo.data.audio import SpectrogramDataset, pad_collate
from towerkit.zoo.data.vision import ImageDataset
from towerkit.zoo.models.concept import encode_words


@dataclass
class ConceptSplit:
    """One split's images and recordings (each with digit labels) and the words per class."""

    images: ImageDataset
    speech: SpectrogramDataset
    words: list[list[str]]  # words[digit] = that class's written forms

    def image_labels(self) -> np.ndarray:
        return self.images.labels.numpy()

    def speech_labels(self) -> np.ndarray:
        return self.speech.labels.numpy()


class ConceptPairs(Dataset[dict[str, Any]]):
    """Items ``{"image", "features", "length", "word", "label"}`` of one digit, one per recording."""

    def __init__(self, split: ConceptSplit, random_pairs: bool) -> None:
        self.split = split
        self.random_pairs = random_pairs
        labels = split.image_labels()
        self.images_of_class = [np.flatnonzero(labels == c) for c in range(len(split.words))]
        missing = [c for c, members in enumerate(self.images_of_class) if len(members) == 0]
        if missing:
            raise ValueError(f"no images of class {missing[0]} in this split")
        speech_labels = split.speech_labels()
        # rank of each recording among the recordings of its class (deterministic pairing)
        self.rank_in_class = np.zeros(len(speech_labels), dtype=np.int64)
        for c in range(len(split.words)):
            members = np.flatnonzero(speech_labels == c)
            self.rank_in_class[members] = np.arange(len(members))

    def __len__(self) -> int:
        return len(self.split.speech)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.split.speech[index]
        digit = int(clip["label"])
        images = self.images_of_class[digit]
        words = self.split.words[digit]
        if self.random_pairs:
            image_index = int(images[int(torch.randint(0, len(images), ()))])
            word = words[int(torch.randint(0, len(words), ()))]
        else:
            rank = int(self.rank_in_class[index])
            image_index = int(images[rank % len(images)])
            word = words[rank % len(words)]
        return {
            "image": self.split.images[image_index]["image"],
            "features": clip["features"],
            "length": clip["length"],
            "word": word,
            "label": digit,
        }


def make_concept_collate(max_chars: int) -> Any:
    """Collate paired items: images [B,1,H,W], padded log-mels + lengths, char ids + mask."""

    def collate(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        audio = pad_collate(list(items))
        char_ids, char_mask = encode_words([item["word"] for item in items], max_chars)
        return {
            "images": torch.stack([item["image"] for item in items]),
            "features": audio["features"],
            "lengths": audio["lengths"],
            "char_ids": char_ids,
            "char_mask": char_mask,
            "label": torch.as_tensor([int(item["label"]) for item in items], dtype=torch.long),
        }

    return collate


def stratified_indices(labels: np.ndarray, carve: float | int, seed: int) -> tuple[Any, Any]:
    """(kept, carved) sorted index arrays; ``carved`` is a stratified part of ``labels``: a
    fraction (float) or a count (int) of them."""
    from sklearn.model_selection import train_test_split

    kept, carved = train_test_split(
        np.arange(len(labels)), test_size=carve, random_state=seed, stratify=labels
    )
    return np.sort(kept), np.sort(carved)

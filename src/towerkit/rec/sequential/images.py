"""Image features for the multimodal retriever from a folder of item images, with open_clip.

``<folder>/<raw item id>.<jpg|jpeg|png|webp>``, one image per item (items without one get no
image). The encoder is an open_clip vision tower; with ``patches=True`` its patch tokens (ViT
``output_tokens``) are kept, otherwise the pooled image embedding. open_clip and its weights are
not part of towerkit's extras (none are available offline here): ``pip install open_clip_torch``
and a ``pretrained`` tag or checkpoint path it can load. The result is the ``.npz`` that
``features.load_image_features`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def find_images(folder: Path, item_ids: Sequence[str]) -> dict[str, Path]:
    found = {}
    for raw in item_ids:
        for suffix in IMAGE_SUFFIXES:
            path = folder / f"{raw}{suffix}"
            if path.is_file():
                found[str(raw)] = path
                break
    return found


def encode_image_folder(
    folder: str | Path,
    item_ids: Sequence[str],
    out: str | Path,
    model_name: str = "ViT-B-32",
    pretrained: str = "laion2b_s34b_b79k",
    patches: bool = False,
    batch_size: int = 32,
) -> Path:
    """Encode every item image found in ``folder``; write ``out`` (.npz) atomically."""
    try:
        import open_clip
        from PIL import Image
    except ImportError:
        raise TowerkitError(
            "image features: needs open_clip (pip install open_clip_torch) and pillow"
        ) from None
    images = find_images(Path(folder), item_ids)
    if not images:
        raise TowerkitError(f"{folder}: no <item id>.jpg/.png/.webp image of any dataset item")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained
        )
    except Exception as exc:  # open_clip raises several types for missing weights
        raise TowerkitError(f"open_clip {model_name}/{pretrained}: {exc}") from None
    model.eval()
    visual: Any = model.visual
    if patches:
        visual.output_tokens = True
    ids = sorted(images)
    rows = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            pixels = torch.stack([preprocess(Image.open(images[i]).convert("RGB")) for i in chunk])
            output = visual(pixels)
            rows.append((output[1] if patches else output).float().numpy())
    target = Path(out)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, item_ids=np.array(ids), features=np.concatenate(rows))
    return target

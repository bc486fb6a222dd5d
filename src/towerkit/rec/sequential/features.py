"""Frozen inputs of the retrievers: sentence embeddings of the generated texts (MiniLM, computed
once and cached by ``rec.twotower.text.CachedSentenceEncoder``), text token embeddings, and
per-item image features from a precomputed file.

Image feature file (``.npz``, read with ``allow_pickle=False``): ``item_ids`` (str [N], the raw
item ids) and ``features`` (float32 [N, D] or [N, P, D]: P patches per item). Items of the dataset
missing from the file get no image (the multimodal retriever then uses their text alone). One way
to make it from a folder of images is ``images.encode_image_folder`` (open_clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from towerkit.core.errors import TowerkitError
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.textgen import BackendConfig, dataset_requests, load_prompts
from towerkit.rec.sequential.textgen.generate import read_texts
from towerkit.rec.twotower.text import MINILM_ASSET, CachedSentenceEncoder


def texts_for(
    data: SeqDataset, texts_path: str | Path | None, prompts_path: str | Path
) -> tuple[list[str], list[str]]:
    """User preference texts [n_users] and item descriptions [vocab] ("" for padding): from a
    ``generate-text`` folder, or the template backend when ``texts_path`` is None. A user or item
    the file lacks is an error: the file was made for another dataset."""
    if texts_path is None:
        from towerkit.rec.sequential.textgen import make_backend

        requests = dataset_requests(data, load_prompts(prompts_path), ["item", "user"])
        written = make_backend(BackendConfig()).generate(requests)
        users = {r.key: t for r, t in zip(requests, written, strict=True) if r.kind == "user"}
        items = {r.key: t for r, t in zip(requests, written, strict=True) if r.kind == "item"}
    else:
        stored: dict[str, Any] = read_texts(texts_path)
        users, items = stored["users"], stored["items"]
    missing_users = [u for u in data.user_ids if u not in users]
    missing_items = [i for i in data.item_ids[1:] if i not in items]
    if missing_users or missing_items:
        raise TowerkitError(
            f"{texts_path}: no text for {len(missing_users)} users (e.g. "
            f"{missing_users[:1]}) and {len(missing_items)} items (e.g. {missing_items[:1]}) "
            f"of {data.name}: generate the texts for this dataset"
        )
    return [users[u] for u in data.user_ids], ["", *[items[i] for i in data.item_ids[1:]]]


def sentence_embeddings(
    user_texts: Sequence[str], item_texts: Sequence[str], encoder: str = MINILM_ASSET
) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_users, 384] and [vocab, 384]; the padding row stays zero."""
    model = CachedSentenceEncoder(encoder)
    users = torch.from_numpy(model.encode(list(user_texts)).copy())
    items = torch.from_numpy(model.encode(list(item_texts[1:])).copy())
    return users, torch.cat([torch.zeros(1, items.shape[1]), items])


def token_embeddings(
    item_texts: Sequence[str], n_tokens: int, encoder: str = MINILM_ASSET
) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM's contextual token embeddings of each item text, the first ``n_tokens`` kept:
    [vocab, n_tokens, 384] and the mask [vocab, n_tokens] (padding item: all False)."""
    from sentence_transformers import SentenceTransformer

    from towerkit.core.assets import fetch

    model = SentenceTransformer(str(fetch(encoder)), device="cpu")
    outputs = model.encode(
        list(item_texts[1:]), output_value="token_embeddings", convert_to_numpy=False
    )
    dim = model.get_sentence_embedding_dimension() or 384
    tokens = torch.zeros(len(item_texts), n_tokens, dim)
    mask = torch.zeros(len(item_texts), n_tokens, dtype=torch.bool)
    for row, output in enumerate(outputs, start=1):
        kept = torch.as_tensor(output)[:n_tokens]
        tokens[row, : len(kept)] = kept
        mask[row, : len(kept)] = True
    return tokens, mask


def load_image_features(
    path: str | Path, item_ids: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """[vocab, P, D] features and the [vocab] has-image mask, rows in the dataset's item order
    (``item_ids[0]`` is padding)."""
    path = Path(path)
    if not path.is_file():
        raise TowerkitError(f"{path}: image feature file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, features = data["item_ids"], data["features"]
    except (KeyError, ValueError, OSError) as exc:
        raise TowerkitError(
            f"{path}: expected an .npz with 'item_ids' (str) and 'features' ([N, D] or "
            f"[N, P, D] float): {exc}"
        ) from None
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3 or len(ids) != len(features):
        raise TowerkitError(
            f"{path}: 'features' has shape {features.shape} for {len(ids)} item_ids; "
            "expected [N, D] or [N, P, D]"
        )
    row_of = {str(raw): row for row, raw in enumerate(ids)}
    out = torch.zeros(len(item_ids), features.shape[1], features.shape[2])
    mask = torch.zeros(len(item_ids), dtype=torch.bool)
    for index, raw in enumerate(item_ids):
        row = row_of.get(str(raw)) if index > 0 else None
        if row is not None:
            out[index] = torch.from_numpy(np.asarray(features[row], dtype=np.float32))
            mask[index] = True
    if not mask.any():
        raise TowerkitError(f"{path}: none of its item_ids is an item of this dataset")
    return out, mask

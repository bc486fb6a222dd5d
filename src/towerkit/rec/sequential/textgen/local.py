"""The local backend: a Hugging Face causal LM (default SmolLM2-135M-Instruct) writing in padded
batches with its chat template, greedy unless a temperature is set.

A GGUF checkpoint is de-quantised once by ``towerkit.core.hf_gguf`` and kept as float32
safetensors under ``TOWERKIT_HOME/gguf/`` (shared with repotune's copy of the same file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from towerkit.core.hf_gguf import hf_folder
from towerkit.rec.assets import TEXTGEN_LLM as DEFAULT_LLM
from towerkit.rec.sequential.textgen.backends import BackendConfig
from towerkit.rec.sequential.textgen.requests import TextRequest


def resolve_model_folder(name: str) -> Path:
    """A folder with HF files or a .gguf, or an asset name; GGUF is converted (once)."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        from towerkit.rec.assets import fetch

        folder = Path(fetch(name))
    return hf_folder(folder, what="textgen hf:")


class HFBackend:
    def __init__(self, config: BackendConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.config = config
        folder = resolve_model_folder(config.model or DEFAULT_LLM)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()
        name = config.model or DEFAULT_LLM
        self.identity = f"hf:{name}:t={config.temperature}"

    def _chat(self, request: TextRequest) -> str:
        messages = [{"role": "user", "content": request.prompt}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        if self.tokenizer.chat_template:
            text: str = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    @torch.no_grad()
    def generate(self, requests: Sequence[TextRequest]) -> list[str]:
        if not requests:
            return []
        prompts = [self._chat(r) for r in requests]
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        sampling = self.config.temperature > 0
        output = self.model.generate(
            **encoded,
            max_new_tokens=max(r.max_new_tokens for r in requests),
            do_sample=sampling,
            temperature=self.config.temperature if sampling else None,
            top_p=None,
            top_k=None,
            repetition_penalty=1.15,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = output[:, encoded["input_ids"].shape[1] :]
        texts: list[str] = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts

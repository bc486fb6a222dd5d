"""The local backend: a Hugging Face causal LM (default SmolLM2-135M-Instruct) writing in padded
batches with its chat template, greedy unless a temperature is set.

A GGUF checkpoint is de-quantised once and kept as float32 safetensors under
``TOWERKIT_HOME/rec/llm/``: converting its tokenizer and tensors takes minutes on a busy CPU,
loading the converted copy seconds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir
from towerkit.core.paths import towerkit_home
from towerkit.rec.assets import TEXTGEN_LLM as DEFAULT_LLM
from towerkit.rec.sequential.textgen.backends import BackendConfig
from towerkit.rec.sequential.textgen.requests import TextRequest


def resolve_model_folder(name: str) -> Path:
    """A folder with HF files or a .gguf, or an asset name; GGUF is converted (once)."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        from towerkit.rec.assets import fetch

        folder = Path(fetch(name))
    if (folder / "config.json").is_file():
        return folder
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise TowerkitError(f"textgen hf: {folder}: no config.json and no .gguf file")
    return _dequantised(ggufs[0])


def _dequantised(source: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = source.stat()
    key = f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = towerkit_home() / "rec" / "llm" / f"{source.stem}-{digest}"
    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # transformers marks GGUF-loaded models as quantised and will not save them, although the
    # tensors are float32 by now: copy them into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


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

"""Loading a base model and tokenizer: asset names, HF folders and GGUF files, pad != EOS.

A GGUF base is de-quantised once by ``towerkit.core.hf_gguf`` and cached as float32 safetensors
under TOWERKIT_HOME/gguf/ (shared with rec's copy of the same file).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from towerkit.core.errors import TowerkitError
from towerkit.core.hf_gguf import hf_folder
from towerkit.core.quiet import ignored_warnings

# candidates for a pad token that is not EOS, in order (SmolLM2/Llama, Qwen, Llama 3)
_PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<unk>")


def resolve_base(name: str) -> Path:
    """A folder, a hub id (``Qwen/Qwen3-8B``) or an asset name -> the folder that holds it."""
    folder = Path(name).expanduser()
    if not folder.is_dir() and name.count("/") == 1 and not name.startswith((".", "/")):
        folder = _hub_snapshot(name)  # a hub id such as Qwen/Qwen3-8B
    if not folder.is_dir():
        from towerkit.core.assets import get_asset
        from towerkit.repotune.assets import fetch

        try:
            get_asset(name)
        except TowerkitError:
            raise TowerkitError(
                f"finetune.base_model {name!r}: not a folder and not an asset name"
            ) from None
        folder = fetch(name)
    return folder


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja"]
            )
        )
    except Exception as exc:  # offline, unknown id, no access: one line either way
        raise TowerkitError(
            f"finetune.base_model {repo_id!r}: {type(exc).__name__}: {exc}"
        ) from None


def base_folder(name: str, gguf_file: str | None = None) -> Path:
    """The HF folder to load the base from (GGUF bases de-quantised and cached)."""
    return hf_folder(resolve_base(name), gguf_file, what="base model")


def load_tokenizer(folder: Path) -> Any:
    """The model's tokenizer with a pad token distinct from EOS (padding right for training)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        raise TowerkitError(f"base model {folder}: its tokenizer has no chat template")
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        pad = next(
            (t for t in _PAD_CANDIDATES if t in vocab and vocab[t] != tokenizer.eos_token_id), None
        )
        if pad is None:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        else:
            tokenizer.pad_token = pad
    return tokenizer


def load_model(folder: Path, dtype: str = "float32") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))


def is_quantised(model: Any) -> str | None:
    """Why a model counts as quantised (bitsandbytes 4/8-bit, GGUF still packed), or None."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return "loaded in 4/8-bit (bitsandbytes)"
    config = getattr(model, "config", None)
    quant = getattr(config, "quantization_config", None)
    if quant is not None:
        method = (
            quant.get("quant_method")
            if isinstance(quant, dict)
            else getattr(quant, "quant_method", "?")
        )
        return f"quantization_config ({method})"
    for param in model.parameters():
        if not param.dtype.is_floating_point:
            return f"a {param.dtype} weight tensor"
    return None


def quiet_peft_deprecations() -> contextlib.AbstractContextManager[None]:
    """peft calls transformers 5's deprecated ``is_gradient_checkpointing`` when it wraps a model:
    a FutureWarning about peft's code, not the user's, on every fine-tune and merge."""
    return ignored_warnings((FutureWarning, r"`is_gradient_checkpointing` is deprecated"))

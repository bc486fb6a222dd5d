"""``towerkit repotune merge``: fold the LoRA adapter into the 16/32-bit base and check parity.

The merged model is saved as sharded safetensors with its tokenizer and generation config. A base
loaded in 4/8-bit or still GGUF-quantised is refused: merging into rounded weights silently
changes the model. The merged logits must match the adapter model's on sample prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir, write_json_atomic
from towerkit.repotune.config import MergeConfig
from towerkit.repotune.finetune import adapter_base
from towerkit.repotune.generate import read_jsonl
from towerkit.repotune.model_io import (
    is_quantised,
    load_model,
    load_tokenizer,
    quiet_peft_deprecations,
)

_FALLBACK_PROMPTS = ["Where is the main entry point defined?", "Explain what this repository does."]


def sample_prompts(tokenizer: Any, data_dir: Path | None, n: int) -> list[str]:
    questions: list[list[dict[str, str]]] = []
    if data_dir is not None and (data_dir / "val.jsonl").is_file():
        questions = [r["messages"][:-1] for r in read_jsonl(data_dir / "val.jsonl")[:n]]
    if not questions:
        questions = [[{"role": "user", "content": q}] for q in _FALLBACK_PROMPTS][:n]
    return [
        tokenizer.apply_chat_template(
            q, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        for q in questions
    ]


def logits_on(model: Any, tokenizer: Any, prompts: list[str]) -> list[Any]:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for text in prompts:
            ids = tokenizer(text, return_tensors="pt").to(model.device)
            out.append(model(**ids).logits.float().cpu())
    return out


def merge_adapter(
    run_dir: Path,
    out_dir: Path,
    config: MergeConfig,
    *,
    base_model: Any = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Merge ``run_dir/adapter`` into its base; write ``out_dir``; return the parity report."""
    from peft import PeftModel

    adapter_dir = run_dir / "adapter"
    if not (adapter_dir / "adapter_config.json").is_file():
        raise TowerkitError(
            f"{adapter_dir}: no adapter_config.json; run `towerkit repotune finetune` first"
        )
    if config.dtype not in ("float32", "bfloat16", "float16"):
        raise TowerkitError(f"merge.dtype {config.dtype!r}: expected float32, bfloat16 or float16")
    base = base_model if base_model is not None else load_model(adapter_base(run_dir), config.dtype)
    reason = is_quantised(base)
    if reason is not None:
        raise TowerkitError(
            f"refusing to merge into a quantised base ({reason}); load it in 16/32-bit"
        )
    tokenizer = load_tokenizer(adapter_dir)
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))
    with quiet_peft_deprecations():
        model = PeftModel.from_pretrained(base, adapter_dir)
    prompts = sample_prompts(tokenizer, data_dir, config.parity_samples)
    before = logits_on(model, tokenizer, prompts)
    merged = model.merge_and_unload()
    after = logits_on(merged, tokenizer, prompts)
    diff = max(float((a - b).abs().max()) for a, b in zip(before, after, strict=True))
    if diff > config.parity_atol:
        raise TowerkitError(
            f"merged logits differ from the adapter model's by {diff:.2e} > {config.parity_atol}"
        )
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    merged.generation_config.eos_token_id = tokenizer.eos_token_id
    merged.config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp, max_shard_size=config.max_shard_size, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    report = {"parity_max_abs_diff": diff, "parity_prompts": len(prompts), "dtype": config.dtype}
    report["shards"] = sorted(p.name for p in out_dir.glob("*.safetensors"))
    write_json_atomic(out_dir / "merge.json", report)
    return report

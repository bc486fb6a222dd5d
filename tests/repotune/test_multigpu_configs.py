"""The Qwen3-8B ZeRO-3 recipe and its launcher files fit together. They cannot run here (no GPU,
no deepspeed), so this checks what can be checked on a CPU: the typed recipe loads, the DeepSpeed
JSON is ZeRO-3 with optimizer and parameter offload and a 16-bit gathered save, and the
accelerate file names that same JSON."""

from __future__ import annotations

import json

import yaml

from towerkit.core.paths import repo_root
from towerkit.repotune.pipeline import load_repotune_config as load_recipe

CONFIGS = repo_root() / "configs" / "repotune"


def test_qwen3_recipe_names_a_zero3_offload_deepspeed_file() -> None:
    config = load_recipe(CONFIGS / "qwen3-8b-zero3.yaml")
    tune = config.finetune
    assert tune.base_model == "Qwen/Qwen3-8B" and tune.bf16 and tune.gradient_checkpointing
    assert tune.chat_template_kwargs == {"enable_thinking": False}
    assert set(tune.lora.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert tune.deepspeed is not None
    ds = json.loads((repo_root() / tune.deepspeed).read_text())
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    # "auto" lets the HF Trainer fill batch sizes and accumulation from the recipe
    assert ds["train_micro_batch_size_per_gpu"] == ds["gradient_accumulation_steps"] == "auto"


def test_accelerate_launch_file_uses_the_same_deepspeed_json() -> None:
    launch = yaml.safe_load((CONFIGS / "accelerate-zero3.yaml").read_text())
    config = load_recipe(CONFIGS / "qwen3-8b-zero3.yaml")
    assert launch["distributed_type"] == "DEEPSPEED" and not launch["use_cpu"]
    assert launch["deepspeed_config"]["deepspeed_config_file"] == config.finetune.deepspeed
    assert launch["deepspeed_config"]["zero3_init_flag"] is True

"""Typed configuration for every repotune step; one YAML (configs/repotune/*.yaml) holds all five."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AnalyzeConfig:
    workers: int = 0  # 0: one process per CPU
    incremental: bool = True


@dataclass
class GenerateConfig:
    tasks: list[str] = field(
        default_factory=lambda: [
            "code_location",
            "code_explanation",
            "api_usage",
            "architecture",
            "implementation_path",
            "design_proposal",
            "project_overview",
        ]
    )
    train_phrasings: int = (
        2  # phrasings per task and element drawn for training (of all but the last)
    )
    include_private: bool = False  # elements whose name starts with "_" (dunder methods always out)
    max_elements: int = 0  # 0: all; else a seeded sample, for quick recipes
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    dedup_threshold: float = 0.95  # MinHash Jaccard above which two samples are near duplicates
    min_answer_chars: int = 40
    max_answer_chars: int = 1500
    system_prompt: str = "You are an assistant that knows the {project} code base."
    seed: int = 0


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


@dataclass
class FinetuneConfig:
    base_model: str = "smollm2-135m-instruct"  # an asset name or a Hugging Face model folder
    gguf_file: str | None = None  # inside base_model's folder, when it is a GGUF checkpoint
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_steps: int = 40
    epochs: float = 1.0  # used when max_steps is 0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_ratio: float = 0.05
    max_length: int = 256
    save_steps: int = 20
    save_total_limit: int = 2
    logging_steps: int = 5
    bf16: bool = False
    gradient_checkpointing: bool = False
    chat_template_kwargs: dict[str, bool] = field(
        default_factory=lambda: {"enable_thinking": False}
    )
    deepspeed: str | None = None  # a DeepSpeed JSON (ZeRO-3) for `accelerate launch` runs
    train_limit: int = 0  # 0: every training sample
    seed: int = 0


@dataclass
class MergeConfig:
    dtype: str = "float32"  # float32 | bfloat16 | float16
    max_shard_size: str = "200MB"
    parity_samples: int = 4
    parity_atol: float = 1e-3


@dataclass
class EvaluateConfig:
    sets: list[str] = field(default_factory=lambda: ["heldout_phrasings", "test"])
    tasks: list[str] = field(
        default_factory=lambda: ["code_location", "api_usage", "code_explanation"]
    )
    max_samples: int = 60  # per set; 0: all
    max_new_tokens: int = 96
    bootstrap_resamples: int = 2000
    general_questions: bool = True
    seed: int = 0


@dataclass
class RepotuneConfig:
    recipe: str = "quick"
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

"""``towerkit repotune finetune``: TRL SFTTrainer + PEFT LoRA on the generated training JSONL.

Samples become prompt/completion pairs in the base model's own chat template, so the loss covers
the assistant's answer only (``completion_only_loss``). Checkpoints go to ``<run>/checkpoints``
every ``save_steps``; ``resume=True`` continues from the newest one. The adapter and tokenizer
land in ``<run>/adapter``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic
from towerkit.repotune.config import FinetuneConfig
from towerkit.repotune.generate import read_jsonl
from towerkit.repotune.model_io import (
    base_folder,
    load_model,
    load_tokenizer,
    quiet_peft_deprecations,
)


def to_prompt_completion(
    rows: list[dict[str, Any]], template_kwargs: dict[str, bool]
) -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(rows, 1):
        messages = row.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or messages[-1].get("role") != "assistant"
        ):
            raise TowerkitError(
                f"training sample {n}: expected 'messages' ending with an assistant turn"
            )
        item: dict[str, Any] = {"prompt": messages[:-1], "completion": messages[-1:]}
        if template_kwargs:
            item["chat_template_kwargs"] = dict(template_kwargs)
        out.append(item)
    return out


def peak_memory_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _progress_callback() -> Any:
    from rich.progress import Progress
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        """A Rich bar with the running loss instead of tqdm's."""

        def __init__(self) -> None:
            self.bar: Progress | None = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                self.bar = Progress(transient=False)
                self.bar.start()
                self.task = self.bar.add_task(
                    "LoRA fine-tune", total=state.max_steps, completed=state.global_step
                )

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if self.bar is not None and logs and "loss" in logs:
                self.bar.update(self.task, description=f"LoRA fine-tune loss {logs['loss']:.3f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.stop()

    return RichProgress()


def _mean_logged_loss(history: list[dict[str, Any]], fallback: float) -> float:
    """The whole run's mean loss from its logged losses (each the mean of its logging interval,
    weighted by the interval's steps). transformers' own ``training_loss`` counts only the steps
    of the last session, so after a resume it described the resumed steps alone."""
    total, steps, previous = 0.0, 0, 0
    for entry in history:
        if "loss" in entry:
            interval = int(entry["step"]) - previous
            total, steps, previous = (
                total + float(entry["loss"]) * interval,
                steps + interval,
                int(entry["step"]),
            )
    return total / steps if steps else fallback


def _loss_plot(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if not points:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(*zip(*points, strict=True), marker="o", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (answer tokens)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _checkpoint_epoch(checkpoint: Path) -> float:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return float(state.get("epoch") or 0.0)


def newest_checkpoint(folder: Path) -> Path | None:
    """The ``checkpoint-<step>`` folder of the highest step (by number: checkpoint-8 is older
    than checkpoint-16, which a sort by name gets wrong), or None."""
    steps = {
        int(path.name.removeprefix("checkpoint-")): path
        for path in folder.glob("checkpoint-*")
        if path.is_dir() and path.name.removeprefix("checkpoint-").isdigit()
    }
    return steps[max(steps)] if steps else None


def _sft_args(config: FinetuneConfig, run_dir: Path) -> Any:
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of the steps
        lr_scheduler_type="cosine",
        # a run shorter than the logging interval still logs (and plots) its loss
        logging_steps=min(config.logging_steps, config.max_steps)
        if config.max_steps > 0
        else config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        max_length=config.max_length,
        completion_only_loss=True,
        bf16=config.bf16,
        activation_checkpointing=config.gradient_checkpointing,  # transformers 5 renamed it
        deepspeed=config.deepspeed,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def finetune(
    data_dir: Path, run_dir: Path, config: FinetuneConfig, *, resume: bool = False
) -> dict[str, Any]:
    """Train a LoRA adapter on ``data_dir/train.jsonl``; returns the metrics (also metrics.json)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTTrainer

    rows = read_jsonl(data_dir / "train.jsonl")
    if config.train_limit:
        rows = rows[: config.train_limit]
    folder = base_folder(config.base_model, config.gguf_file)
    tokenizer = load_tokenizer(folder)
    model = load_model(folder, "bfloat16" if config.bf16 else "float32")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    dataset = Dataset.from_list(to_prompt_completion(rows, config.chat_template_kwargs))
    with quiet_peft_deprecations():
        trainer: Any = SFTTrainer(
            model=model,
            args=_sft_args(config, run_dir),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[_progress_callback()],
        )
    from transformers import PrinterCallback

    # with tqdm off, transformers prints every log dict raw; the Rich bar shows the loss
    trainer.remove_callback(PrinterCallback)
    newest = newest_checkpoint(run_dir / "checkpoints")
    if resume and newest is None:
        raise TowerkitError(f"--resume {run_dir}: no checkpoint-* folder under checkpoints/")
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    start_epoch = _checkpoint_epoch(newest) if resume and newest is not None else 0.0
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(newest) if resume else None)
    seconds = time.perf_counter() - started
    adapter_dir = run_dir / "adapter"
    trainer.model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    state = trainer.state
    epochs_done = float(state.epoch or 0.0)
    history = state.log_history
    metrics = {
        "train_loss": _mean_logged_loss(history, float(output.training_loss)),
        "final_loss": float(
            next((h["loss"] for h in reversed(history) if "loss" in h), float("nan"))
        ),
        "first_loss": float(next((h["loss"] for h in history if "loss" in h), float("nan"))),
        "steps": float(state.global_step),
        "epochs": epochs_done,
        "train_samples": float(len(rows)),
        "train_seconds": seconds,
        # this session's epochs over this session's seconds (a resume starts part-way)
        "tokens_per_second": tokens * (epochs_done - start_epoch) / max(seconds, 1e-9),
        "peak_memory_mb": peak_memory_mb(),
        "trainable_parameters": float(
            sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        ),
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_json_atomic(
        run_dir / "finetune.json",
        {
            "base_folder": str(folder),
            "config": asdict(config),
            "data": str(data_dir),
            "log_history": history,
        },
    )
    _loss_plot(history, run_dir / "plots" / "loss.png")
    return metrics


def adapter_base(run_dir: Path) -> Path:
    """The base-model folder a fine-tune run used (recorded in finetune.json)."""
    info = run_dir / "finetune.json"
    if not info.is_file():
        raise TowerkitError(
            f"{run_dir}: no finetune.json; expected a `towerkit repotune finetune` run"
        )
    return Path(json.loads(info.read_text())["base_folder"])

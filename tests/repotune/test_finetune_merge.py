"""A tiny LoRA fine-tune, resume, merge with logit parity, refusal of quantised bases, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from towerkit.core.errors import TowerkitError
from towerkit.repotune.config import EvaluateConfig, FinetuneConfig, LoraSettings, MergeConfig
from towerkit.repotune.evaluate import evaluate_models
from towerkit.repotune.finetune import adapter_base, finetune, to_prompt_completion
from towerkit.repotune.generate import write_jsonl
from towerkit.repotune.merge import merge_adapter
from towerkit.repotune.model_io import is_quantised, load_model, load_tokenizer


def _rows(n: int, split: str = "train") -> list[dict]:
    rows = []
    for i in range(n):
        meta = {
            "task_type": "code_location",
            "file": f"mod{i % 3}.py",
            "start_line": 10 + i,
            "end_line": 20 + i,
            "symbol": f"fn{i}",
            "params": [],
            "element": f"mod{i % 3}.py::fn{i}",
            "split": split,
        }
        answer = f"`fn{i}` is a function in `mod{i % 3}.py`, lines {10 + i}-{20 + i}."
        messages = [
            {"role": "system", "content": "You are an assistant that knows the click code base."},
            {"role": "user", "content": f"Where is `fn{i}` defined?"},
            {"role": "assistant", "content": answer},
        ]
        rows.append({"messages": messages, "metadata": meta})
    return rows


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", _rows(24))
    write_jsonl(data / "val.jsonl", _rows(4, "val"))
    write_jsonl(data / "test.jsonl", _rows(4, "test"))
    write_jsonl(data / "heldout_phrasings.jsonl", _rows(4))
    return data


def _config(base: Path, **kw: object) -> FinetuneConfig:
    values = {
        "base_model": str(base),
        "max_steps": 4,
        "batch_size": 4,
        "lr": 5e-3,
        "max_length": 96,
        "save_steps": 2,
        "logging_steps": 1,
        "lora": LoraSettings(r=4, alpha=8, dropout=0.0),
    }
    values.update(kw)
    return FinetuneConfig(**values)  # type: ignore[arg-type]


def test_pad_token_is_not_eos(tiny_base: Path) -> None:
    tokenizer = load_tokenizer(tiny_base)
    assert (
        tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    )


def test_prompt_completion_masks_the_prompt(tiny_base: Path) -> None:
    pairs = to_prompt_completion(_rows(1), {"enable_thinking": False})
    assert [m["role"] for m in pairs[0]["prompt"]] == ["system", "user"]
    assert pairs[0]["completion"][0]["role"] == "assistant"
    with pytest.raises(TowerkitError, match="training sample 1"):
        to_prompt_completion([{"messages": [{"role": "user", "content": "x"}]}], {})


def test_lora_train_resume_merge_parity_and_evaluate(
    tiny_base: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    metrics = finetune(data_dir, run, _config(tiny_base))
    assert "{'loss'" not in capsys.readouterr().out  # no raw log dicts beside the Rich bar
    assert metrics["steps"] == 4 and metrics["final_loss"] < metrics["first_loss"]
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    assert adapter_base(run) == tiny_base and (run / "plots" / "loss.png").is_file()

    # resume from checkpoint-4 and go on to step 6
    more = finetune(data_dir, run, _config(tiny_base, max_steps=6), resume=True)
    assert more["steps"] == 6
    # the whole run's mean loss (logged every step here), not only the resumed steps' mean
    logged = json.loads((run / "finetune.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert len(losses) == 6 and losses[:4] == pytest.approx(
        [
            e["loss"]
            for e in json.loads(
                (run / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text()
            )["log_history"]
            if "loss" in e
        ]
    )
    assert more["train_loss"] == pytest.approx(sum(losses) / 6)
    # throughput of the resumed session alone: its epochs (4 -> 6 steps) over its seconds
    tokens = metrics["tokens_per_second"] * metrics["train_seconds"] / metrics["epochs"]
    resumed_epochs = more["epochs"] - metrics["epochs"]
    assert 0 < resumed_epochs < more["epochs"]
    assert more["tokens_per_second"] == pytest.approx(
        tokens * resumed_epochs / more["train_seconds"]
    )

    merged = tmp_path / "merged"
    report = merge_adapter(run, merged, MergeConfig(max_shard_size="50KB"), data_dir=data_dir)
    assert report["parity_max_abs_diff"] < 1e-4 and len(report["shards"]) > 1
    assert (merged / "model.safetensors.index.json").is_file() and (
        merged / "tokenizer.json"
    ).is_file()
    assert (merged / "generation_config.json").is_file()
    # the merged model is a plain model: reloading it gives the adapter model's logits
    from peft import PeftModel

    tokenizer = load_tokenizer(merged)
    ids = tokenizer("Where is `fn1` defined?", return_tensors="pt")
    with torch.no_grad():
        reloaded = load_model(merged).eval()(**ids).logits
        adapted = (
            PeftModel.from_pretrained(load_model(tiny_base), run / "adapter").eval()(**ids).logits
        )
    assert torch.allclose(reloaded, adapted, atol=1e-4)
    assert not any("lora" in name for name, _ in load_model(merged).named_parameters())

    result = evaluate_models(
        tiny_base,
        merged,
        data_dir,
        run,
        EvaluateConfig(max_samples=3, max_new_tokens=8, bootstrap_resamples=200),
    )
    assert result["sets"]["test"]["n"] == 3 and set(result["sets"]) == {"heldout_phrasings", "test"}
    assert 0.0 <= result["sets"]["test"]["file_exact"]["tuned"] <= 1.0
    assert result["sets"]["test"]["perplexity_tuned"] > 1.0
    assert result["forgetting"]["n"] == 10
    assert (run / "evaluation.md").read_text().startswith("# repotune evaluation")
    assert (run / "plots" / "evaluation.png").stat().st_size > 1000
    lines = (run / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3 + 3 + 10


def test_refuses_quantised_base(tiny_base: Path, data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    finetune(data_dir, run, _config(tiny_base, max_steps=1, save_steps=1))
    base = load_model(tiny_base)
    base.config.quantization_config = {"quant_method": "gguf"}
    assert is_quantised(base) == "quantization_config (gguf)"
    with pytest.raises(TowerkitError, match="refusing to merge into a quantised base"):
        merge_adapter(run, tmp_path / "merged", MergeConfig(), base_model=base)
    assert not (tmp_path / "merged").exists()
    plain = load_model(tiny_base)
    weight = plain.model.embed_tokens.weight.detach().to(torch.int8)
    plain.model.embed_tokens.weight = torch.nn.Parameter(weight, requires_grad=False)
    assert is_quantised(plain) == "a torch.int8 weight tensor"


def test_resume_takes_the_checkpoint_of_the_highest_step(tmp_path: Path) -> None:
    from towerkit.repotune.finetune import newest_checkpoint

    assert newest_checkpoint(tmp_path) is None
    for name in ("checkpoint-8", "checkpoint-16", "checkpoint-best"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-20").write_text("a file, not a checkpoint folder")
    assert newest_checkpoint(tmp_path) == tmp_path / "checkpoint-16"  # by name: checkpoint-8

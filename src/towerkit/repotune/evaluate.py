"""``towerkit repotune evaluate``: base vs fine-tuned under identical prompts and greedy decoding.

Per held-out set: file-path exact match, line-range IoU, symbol and parameter exact match, and the
perplexity of the gold answers; a fixed set of general questions checks for forgetting. Every
difference comes with a paired bootstrap 95% CI. Writes evaluation.json, evaluation.md,
predictions.jsonl and plots/evaluation.png.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from towerkit.core.io import write_json_atomic, write_text_atomic
from towerkit.repotune.config import EvaluateConfig
from towerkit.repotune.generate import read_jsonl, write_jsonl
from towerkit.repotune.scoring import paired_bootstrap, score_answer

# general knowledge with one exact expected token: a drop here means the fine-tune forgot
GENERAL_QUESTIONS: list[tuple[str, str]] = [
    ("What is the capital of France? Answer in one word.", "Paris"),
    ("What is 7 plus 5? Answer with the number.", "12"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the chemical symbol for water?", "H2O"),
    ("How many days are there in a week?", "seven|7"),
    ("What is the opposite of 'hot'?", "cold"),
    ("In Python, which keyword defines a function?", "def"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("Who wrote 'Romeo and Juliet'?", "Shakespeare"),
]


class _Model:
    def __init__(self, folder: Path, tokenizer: Any) -> None:
        from towerkit.repotune.model_io import load_model

        self.model = load_model(folder).eval()
        self.tokenizer = tokenizer

    def prompt(self, messages: list[dict[str, str]]) -> str:
        text: str = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        return text

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        import torch

        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = self.model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        text: str = self.tokenizer.decode(
            out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return text.strip()

    def answer_nll(self, prompt: str, answer: str) -> tuple[float, int]:
        """Summed negative log-likelihood of the answer tokens after the prompt, and their count."""
        import torch

        p_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = self.tokenizer(answer + self.tokenizer.eos_token, add_special_tokens=False)[
            "input_ids"
        ]
        ids = torch.tensor([p_ids + a_ids])
        with torch.no_grad():
            logits = self.model(ids).logits[0, len(p_ids) - 1 : -1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, len(p_ids) :], reduction="sum")
        return float(nll), len(a_ids)


def _pick(rows: list[dict[str, Any]], config: EvaluateConfig) -> list[dict[str, Any]]:
    rows = [r for r in rows if r["metadata"]["task_type"] in config.tasks and r["metadata"]["file"]]
    if config.max_samples and len(rows) > config.max_samples:
        rows = random.Random(config.seed).sample(rows, config.max_samples)
    return rows


def _run_set(
    models: dict[str, _Model], rows: list[dict[str, Any]], config: EvaluateConfig, bar: Progress
) -> list[dict[str, Any]]:
    task = bar.add_task("evaluating", total=len(rows) * len(models))
    records = []
    for row in rows:
        record: dict[str, Any] = {
            "metadata": row["metadata"],
            "question": row["messages"][1]["content"],
        }
        gold = row["messages"][-1]["content"]
        for name, model in models.items():
            prompt = model.prompt(row["messages"][:-1])
            answer = model.generate(prompt, config.max_new_tokens)
            nll, count = model.answer_nll(prompt, gold)
            record[name] = {
                "answer": answer,
                "scores": score_answer(answer, row["metadata"]),
                "nll": nll,
                "tokens": count,
            }
            bar.advance(task)
        records.append(record)
    return records


def _forgetting(models: dict[str, _Model], config: EvaluateConfig) -> list[dict[str, Any]]:
    import re

    records = []
    for question, expected in GENERAL_QUESTIONS:
        record: dict[str, Any] = {"question": question, "expected": expected}
        for name, model in models.items():
            prompt = model.prompt([{"role": "user", "content": question}])
            answer = model.generate(prompt, 32)
            correct = re.search(rf"\b(?:{expected})\b", answer, re.IGNORECASE) is not None
            nll, count = model.answer_nll(prompt, expected.split("|")[0])
            record[name] = {
                "answer": answer,
                "correct": float(correct),
                "nll": nll,
                "tokens": count,
            }
        records.append(record)
    return records


def summarise(records: list[dict[str, Any]], config: EvaluateConfig) -> dict[str, Any]:
    """Per metric: both means and the paired bootstrap CI of the difference; gold perplexities."""
    summary: dict[str, Any] = {"n": len(records)}
    metrics = sorted({k for r in records for k in r["base"]["scores"]})
    for metric in metrics:
        rows = [r for r in records if metric in r["base"]["scores"]]
        base = np.array([r["base"]["scores"][metric] for r in rows])
        tuned = np.array([r["tuned"]["scores"][metric] for r in rows])
        summary[metric] = paired_bootstrap(base, tuned, config.bootstrap_resamples, config.seed)
    for name in ("base", "tuned"):
        nll = sum(r[name]["nll"] for r in records)
        tokens = sum(r[name]["tokens"] for r in records)
        summary[f"perplexity_{name}"] = math.exp(nll / max(tokens, 1))
    per_sample = {
        n: np.array([r[n]["nll"] / r[n]["tokens"] for r in records]) for n in ("base", "tuned")
    }
    summary["answer_nll"] = paired_bootstrap(
        per_sample["base"], per_sample["tuned"], config.bootstrap_resamples, config.seed
    )
    return summary


def evaluate_models(
    base_folder: Path, tuned_folder: Path, data_dir: Path, out_dir: Path, config: EvaluateConfig
) -> dict[str, Any]:
    from towerkit.repotune.model_io import load_tokenizer
    from towerkit.repotune.report import write_chart, write_markdown

    tokenizer = load_tokenizer(tuned_folder)
    models = {"base": _Model(base_folder, tokenizer), "tuned": _Model(tuned_folder, tokenizer)}
    result: dict[str, Any] = {"base": str(base_folder), "tuned": str(tuned_folder), "sets": {}}
    all_records = []
    with Progress(transient=True) as bar:
        for name in config.sets:
            rows = _pick(read_jsonl(data_dir / f"{name}.jsonl"), config)
            records = _run_set(models, rows, config, bar)
            for record in records:
                record["set"] = name
            all_records += records
            result["sets"][name] = summarise(records, config) if records else {"n": 0}
        if config.general_questions:
            general = _forgetting(models, config)
            correct = {n: np.array([r[n]["correct"] for r in general]) for n in ("base", "tuned")}
            result["forgetting"] = paired_bootstrap(
                correct["base"], correct["tuned"], config.bootstrap_resamples, config.seed
            )
            for n in ("base", "tuned"):
                result["forgetting"][f"perplexity_{n}"] = math.exp(
                    sum(r[n]["nll"] for r in general) / sum(r[n]["tokens"] for r in general)
                )
            all_records += [{**r, "set": "general"} for r in general]
    write_json_atomic(out_dir / "evaluation.json", result)
    write_jsonl(out_dir / "predictions.jsonl", all_records)
    write_text_atomic(out_dir / "evaluation.md", write_markdown(result))
    write_chart(result, out_dir / "plots" / "evaluation.png")
    return result

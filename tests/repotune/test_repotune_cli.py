"""The CLI: each step on its own, one-line errors; the whole chain on the real base (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from towerkit.cli import main
from towerkit.repotune.pipeline import load_repotune_config, run_all

CLICK = Path(click.__file__).parent


def test_analyze_and_generate_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["repotune", "analyze", str(CLICK), "-o", str(out), "--workers", "1"]) == 0
    assert (
        "elements in 17 files" in capsys.readouterr().out
        or (out / "repository_analysis.json").is_file()
    )
    assert main(["repotune", "generate", str(out), "generate.max_elements=40"]) == 0
    printed = capsys.readouterr().out
    meta = json.loads((out / "data" / "metadata.json").read_text())
    samples = next(line for line in printed.splitlines() if line.startswith("samples: "))
    shown = sorted(samples.removeprefix("samples: ").split(", "))
    assert shown == sorted(f"{name} {count}" for name, count in meta["counts"].items())
    assert "{" not in printed  # words, not a Python dict
    assert printed.count("removed from ") == len(meta["removed"])
    assert meta["config"]["max_elements"] == 40 and meta["counts"]["train"] > 0
    assert meta["config"]["tasks"] == [
        "code_location",
        "code_explanation",
        "api_usage",
    ]  # quick.yaml


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repotune", "analyze", str(tmp_path / "missing"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: PATH") and "\n" not in err
    assert main(["repotune", "generate", str(tmp_path), "generate.nope=1"]) == 2
    assert "unknown key 'generate.nope'" in capsys.readouterr().err
    assert main(["repotune", "merge", str(tmp_path)]) == 2
    assert "adapter_config.json" in capsys.readouterr().err


def test_run_on_a_missing_path_leaves_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOWERKIT_RUNS", str(tmp_path / "runs"))
    assert main(["repotune", "run", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: PATH '{tmp_path / 'missing'}': not a folder and not a git URL"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_run_chains_all_steps_on_smollm2(tmp_path: Path) -> None:
    config = load_repotune_config(
        None,
        [
            "generate.max_elements=20",
            "finetune.max_steps=2",
            "finetune.batch_size=2",
            "finetune.save_steps=2",
            "evaluate.max_samples=2",
            "evaluate.max_new_tokens=8",
            "evaluate.general_questions=false",
        ],
    )
    result = run_all(str(CLICK), config, runs_root=tmp_path)
    run = result.run_dir
    for path in ("analysis/repository_analysis.json", "data/train.jsonl", "adapter/adapter_config.json",
                 "merged/config.json", "merged/tokenizer.json", "evaluation.md", "plots/loss.png"):  # fmt: skip
        assert (run / path).is_file(), path
    assert result.metrics["merge_parity_max_abs_diff"] < 1e-3 and result.metrics["steps"] == 2
    merged = json.loads((run / "merged" / "config.json").read_text())
    assert merged["model_type"] == "llama" and "quantization_config" not in merged
    tokenizer_config = json.loads((run / "merged" / "tokenizer_config.json").read_text())
    assert tokenizer_config["pad_token"] == "<|endoftext|>" != tokenizer_config["eos_token"]
    assert set(result.evaluation["sets"]) == {"heldout_phrasings", "test"}

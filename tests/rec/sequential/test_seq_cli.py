"""`towerkit rec seq prepare|train|evaluate|recommend` on a small real-shaped file; exact resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file

from towerkit.cli import main
from towerkit.core.callbacks import Callback
from towerkit.core.registry import ModelRegistry
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.recipe import train

TINY = [
    "model.hidden=16",
    "model.max_len=6",
    "model.blocks=1",
    "trainer.batch_size=8",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.stages=[{name: sasrec, epochs: 2, lr: 0.01, scheduler: constant}]",
    "eval.num_negatives=5",
]


def _seqfile(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for user in range(30):
        start = int(rng.integers(20))
        lines.append(" ".join([f"u{user}", *[f"i{(start + k) % 20}" for k in range(8)]]))
    path = tmp_path / "seq.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    out = tmp_path / "prepared"
    argv = ["rec", "seq", "prepare", "--format", "seqfile", "--path", str(_seqfile(tmp_path))]
    assert main([*argv, "--name", "cyc", "--out", str(out), "--item-core", "1"]) == 0
    return out


@pytest.mark.slow
def test_prepare_train_evaluate_recommend(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = SeqDataset.load(prepared)
    assert (data.n_users, data.n_items) == (30, 20)
    # a second prepare with the same settings is a no-op
    argv = ["rec", "seq", "prepare", "--format", "seqfile", "--path", str(tmp_path / "seq.txt")]
    assert main([*argv, "--name", "cyc", "--out", str(prepared), "--item-core", "1"]) == 0
    assert "already prepared" in capsys.readouterr().out

    assert main(["rec", "seq", "train", *TINY, f"data.prepared={prepared}"]) == 0
    version = ModelRegistry().resolve("rec-seq-sasrec")
    run_dir = Path(version.run_dir or "")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_n_users"] == 30.0 and 0.0 <= metrics["test_ndcg@10"] <= 1.0
    assert version.metrics["test_hr@10"] == metrics["test_hr@10"]
    assert (run_dir / "plots" / "loss.png").is_file()
    capsys.readouterr()

    assert main(["rec", "seq", "evaluate", "rec-seq-sasrec"]) == 0
    out = capsys.readouterr().out
    hr10 = f"{metrics['test_hr@10']:.4f}"
    assert "hr@10" in out and hr10 in out  # the same full-ranking number as at training time

    assert main(["rec", "seq", "recommend", str(run_dir), "--user", "u3", "--k", "3"]) == 0
    out = capsys.readouterr().out
    history = {data.item_ids[i] for i in data.sequences[data.user_index["u3"]]}
    listed = [line.split("│")[2].strip() for line in out.splitlines() if line.count("│") >= 4]
    assert len(listed) == 3 and not set(listed) & history


def test_bad_input_is_one_line(prepared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rec", "seq", "prepare", "--format", "csv", "--path", str(prepared)]) == 2
    assert "format: expected one of" in capsys.readouterr().err
    assert main(["rec", "seq", "evaluate", str(prepared)]) == 2
    assert "expected model/ and data/" in capsys.readouterr().err


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if trainer.state.global_step == self.step:
            trainer.request_stop()


@pytest.mark.slow
def test_resume_is_exact(prepared: Path, tmp_path: Path) -> None:
    overrides = [*TINY, f"data.prepared={prepared}"]
    whole = train(None, overrides, runs=tmp_path / "a")
    cut = train(None, overrides, runs=tmp_path / "b", callbacks=[_StopAt(3)])
    assert cut.stopped and cut.version is None
    resumed = train(resume=cut.run_dir)
    assert not resumed.stopped and resumed.version is not None
    a = load_file(str(whole.run_dir / "model" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "model" / "model.safetensors"))
    assert all(bool((a[k] == b[k]).all()) for k in a)
    assert resumed.metrics["test_ndcg@10"] == whole.metrics["test_ndcg@10"]

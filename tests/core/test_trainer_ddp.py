"""The same recipe under ``accelerate launch`` with two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RECIPE = Path(__file__).with_name("digits_recipe.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.multiproc
def test_two_process_ddp_trains_and_keeps_replicas_identical(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        # --multi_gpu is Accelerate's multi-process launcher (torchrun); with no GPU visible
        # the Trainer asks for cpu=True and the processes form a gloo group. (--cpu with more
        # than one process needs mpirun, which these machines lack.)
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={port}",
        str(RECIPE),
        str(tmp_path / "run"),
        str(tmp_path / "out"),
    ]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "MASTER_PORT": str(port),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    summaries = [json.loads((tmp_path / f"out.process{r}.json").read_text()) for r in (0, 1)]
    assert [s["num_processes"] for s in summaries] == [2, 2]
    # each process takes half the batches: 4 epochs of ceil(94 / 2 / 2) = 24 steps
    assert [s["global_step"] for s in summaries] == [96, 96]
    assert summaries[0]["param_hash"] == summaries[1]["param_hash"]
    first, last = summaries[0]["first_loss"], summaries[0]["last_loss"]
    assert last < 0.6 * first, (first, last)
    assert summaries[0]["final_metrics"]["accuracy"] > 0.6

    weights = [load_file(str(tmp_path / f"out.process{r}.safetensors")) for r in (0, 1)]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
    latest = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    assert {"process0.json", "process1.json", "model.safetensors"} <= {
        p.name for p in latest.iterdir()
    }

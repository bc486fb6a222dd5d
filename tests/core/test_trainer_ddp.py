"""The same recipe under ``accelerate launch`` with two CPU processes (DDP over gloo): it
trains, the replicas stay identical, and a resume from a mid-epoch checkpoint is exact."""

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


def launch(*args: str) -> None:
    # the port is free when picked but closed before torchrun binds it; another process may
    # take it in between, so a launch that failed on exactly that gets one more port
    done = launch_on(free_port(), *args)
    if done.returncode != 0 and "address already in use" in done.stderr.lower():
        done = launch_on(free_port(), *args)
    assert done.returncode == 0, done.stderr[-4000:]


def launch_on(port: int, *args: str) -> subprocess.CompletedProcess[str]:
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
        *args,
    ]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "MASTER_PORT": str(port),
    }
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.multiproc
def test_two_process_ddp_trains_keeps_replicas_identical_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    launch(str(run_dir), str(tmp_path / "out"), "--keep-last", "100")

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
    middle = run_dir / "checkpoints" / "step-00000040"  # stage 2, mid-epoch
    assert {"process0.json", "process1.json", "optimizer.json"} <= {
        p.name for p in middle.iterdir()
    }

    # both processes restore their own RNG and data position, retrain to the end: same weights
    launch(str(run_dir), str(tmp_path / "again"), "--resume-from", str(middle))
    again = [json.loads((tmp_path / f"again.process{r}.json").read_text()) for r in (0, 1)]
    assert [s["param_hash"] for s in again] == [summaries[0]["param_hash"]] * 2
    assert f"resumed from {middle} at step 40" in (run_dir / "train.log").read_text()

"""Connection resets of ``towerkit rec serve`` under load, by its ``--keep-alive``.

    .venv/bin/python benchmarks/two_tower_serving_keepalive.py [--model rec-two-tower@production]
        [--keep-alive 5,75] [--runs 60] [--seconds 20] [--concurrency 32]

One server per keep-alive value (exact index, one torch / FAISS thread), all started at once; then
runs of ``--seconds`` of closed-loop load from ``--concurrency`` httpx clients posting /recommend
(the load of ``benchmarks/two_tower_serving.py``, every request counted), taking the servers in
turn so that each sees the same machine. A fresh client pool per run, with httpx's default idle
expiry of 5 s. uvicorn's own keep-alive default is also 5 s: a server closing an idle connection
just as the client reuses it resets that request (``httpx.ReadError``). Prints each value's runs,
requests and transport errors, and writes them to ``runs/bench/two_tower_serving_keepalive.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from two_tower_serving import free_port, wait_for  # benchmarks/ is sys.path[0] when run

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "two_tower_serving_keepalive.json"
K = 10


async def one_run(url: str, users: list[str], seconds: float, clients: int, seed: int) -> dict:
    """Closed-loop load for ``seconds``: requests answered and each transport error's kind."""
    import httpx

    rng = np.random.default_rng(seed)
    answered, errors = 0, []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal answered
            while time.perf_counter() < stop_at:
                user = users[int(rng.integers(len(users)))]
                try:
                    response = await client.post("/recommend", json={"user_id": user, "k": K})
                except httpx.TransportError as error:
                    errors.append(type(error).__name__)
                    continue
                answered += response.status_code == 200

        await asyncio.gather(*(worker() for _ in range(clients)))
    return {"requests": answered + len(errors), "answered": answered, "errors": errors}


def start_server(model: str, keep_alive: int) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    command = [sys.executable, "-m", "towerkit.cli", "rec", "serve", "--model", model]
    command += ["--port", str(port), "--index", "exact", "--no-access-log"]
    command += ["--keep-alive", str(keep_alive)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return f"http://127.0.0.1:{port}", server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="rec-two-tower@production")
    parser.add_argument("--keep-alive", default="5,75", help="comma-separated seconds")
    parser.add_argument("--runs", type=int, default=60, help="runs of load per keep-alive value")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        args.keep_alive = [int(v) for v in args.keep_alive.split(",")]
    except ValueError:
        parser.error(f"--keep-alive: expected whole seconds like 5,75, got {args.keep_alive!r}")
    if args.runs < 1 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--runs, --seconds and --concurrency: expected positive values")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from towerkit.rec.twotower.api import load_bundle

    args = parse_args(argv)
    users = list(load_bundle(args.model).features.query_keys)
    servers = {value: start_server(args.model, value) for value in args.keep_alive}
    results: dict[int, list[dict]] = {value: [] for value in args.keep_alive}
    started = dt.datetime.now(dt.UTC)
    try:
        for url, server in servers.values():
            wait_for(url, server)
        for run in range(args.runs):
            for value, (url, _) in servers.items():
                outcome = asyncio.run(one_run(url, users, args.seconds, args.concurrency, run))
                results[value].append(outcome)
                print(
                    f"run {run} keep-alive {value} s: {outcome['requests']} requests, "
                    f"errors {outcome['errors'] or 0}",
                    flush=True,
                )
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait()
    summary = {
        str(value): {
            "runs": len(runs),
            "requests": sum(r["requests"] for r in runs),
            "errors": sum(len(r["errors"]) for r in runs),
            "runs_with_an_error": sum(bool(r["errors"]) for r in runs),
        }
        for value, runs in results.items()
    }
    for value, line in summary.items():
        print(
            f"keep-alive {value} s: {line['runs']} runs, {line['requests']} requests, "
            f"{line['errors']} transport errors, in {line['runs_with_an_error']} runs"
        )
    record = {
        "command": " ".join(["benchmarks/two_tower_serving_keepalive.py", *sys.argv[1:]]),
        "started_utc": started.isoformat(timespec="seconds"),
        "load_average_at_end": os.getloadavg()[0],
        "summary": summary,
        "runs": {str(k): v for k, v in results.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    temporary = OUT.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=1))
    temporary.replace(OUT)
    print(f"wrote {OUT}")
    return record


if __name__ == "__main__":
    main()

"""Rec two-tower serving benchmark: FAISS exact / IVF / HNSW top-10 over 100k and 1M candidates,
and HTTP throughput of ``towerkit rec serve`` under 32 concurrent loopback clients.

    .venv/bin/python benchmarks/two_tower_serving.py [--model rec-two-tower@production]
        [--no-model --dim 64] [--sizes 100000,1000000] [--parts index,http] [--http-seconds 20]

Candidates are synthetic at the size asked for, with the model's output size d. With a trained
model (``--model``, resolved in the registry of TOWERKIT_HOME) they follow its embeddings to the
second order: candidates ~ N(mean, cov) of its real candidate embeddings, queries ~ N(mean, cov)
of its real user embeddings, then L2-normalised. Without one: a 16-dimensional mixture of 1,000
Gaussians mapped linearly to d = ``--dim`` (trained embeddings have a low intrinsic dimension;
isotropic noise would be every ANN index's worst case).

For each size: IVF (nlist ~ sqrt(n)) and HNSW (M 16, efConstruction 40) pick nprobe / efSearch as
the smallest reaching recall@10 >= 0.95 against exact on 500 tuning queries; recall is reported
on 500 held-out queries and again on the 500 timing queries; latency is one query at a time on
one FAISS thread (p50/p99 over the timing queries after 20 warm-up calls); build uses
``--build-threads``. HTTP: ``towerkit rec serve`` in its own process (one uvicorn worker, one torch
/ FAISS thread per request), load from this process: 32 httpx clients posting /recommend for
random known users, k=10, seen items excluded; client and server share the machine's cores.
Results: ``runs/bench/two_tower_serving.json`` (a run of one ``--parts`` keeps the other part's
earlier results) and the "## Rec two-tower: serving" section of BENCHMARKS.md. ``benchmarks/two_tower.py --part serving`` calls ``main`` here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from two_tower_serving_index import KINDS, K, bench_size  # benchmarks/ is sys.path[0] when run

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "runs" / "bench" / "two_tower_serving.json"
SECTION = "## Rec two-tower: serving"


# --- HTTP throughput --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    url: str, users: list[str], seconds: float, concurrency: int, seed: int, server_pid: int
) -> dict[str, Any]:
    """Closed-loop load; also the server's and this process's CPU time per measured request,
    which a busy shared machine stretches far less than the wall times."""
    import httpx

    rng = np.random.default_rng(seed)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker(stop_at: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                user = users[int(rng.integers(len(users)))]
                start = time.perf_counter()
                try:
                    response = await client.post("/recommend", json={"user_id": user, "k": K})
                except httpx.TransportError:
                    # a reset connection (about one 20 s run in ten on the 2-core machine while
                    # the server closed idle connections after uvicorn's default 5 s, httpx's own
                    # expiry; `rec serve --keep-alive` is 75 s now): an error, and the run goes on
                    errors += record
                    continue
                if record:
                    latencies.append((time.perf_counter() - start) * 1000)
                    errors += response.status_code != 200 or len(response.json()["items"]) != K

        warm_until = time.perf_counter() + min(3.0, seconds / 4)
        await asyncio.gather(*(worker(warm_until, False) for _ in range(concurrency)))
        server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        wall = time.perf_counter() - start
        server_cpu = cpu_seconds(server_pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    array = np.array(latencies)
    return {
        "load_average": os.getloadavg()[0],
        "server_cpu_ms_per_request": 1000 * server_cpu / len(latencies),
        "client_cpu_ms_per_request": 1000 * client_cpu / len(latencies),
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(array, 50)),
        "p99_ms": float(np.percentile(array, 99)),
    }


def bench_http(model: str, kind: str, seconds: float, concurrency: int) -> dict[str, Any]:
    from towerkit.rec.twotower.api import load_bundle

    users = load_bundle(model).features.query_keys
    port = free_port()
    command = [sys.executable, "-m", "towerkit.cli", "rec", "serve", "--model", model]
    command += ["--port", str(port), "--index", kind, "--no-access-log"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(url, server)
        result = asyncio.run(load(url, users, seconds, concurrency, 1, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "kind": kind,
        "index": health["index"],
        "n_candidates": health["n_candidates"],
        **result,
    }


def wait_for(url: str, server: subprocess.Popen[bytes], limit_s: float = 300) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise SystemExit(f"rec serve exited with {server.returncode}: {err.strip()[-500:]}")
        try:
            return dict(httpx.get(f"{url}/health", timeout=2).json())
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit(f"rec serve did not answer on {url} within {limit_s:.0f} s")


# --- report -----------------------------------------------------------------------------------


def machine(build_threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return (
        f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; "
        f"faiss {faiss.__version__}, search on 1 thread, build on {build_threads}; "
        f"1-minute load average at start {os.getloadavg()[0]:.1f} (a shared machine)"
    )


def fmt_params(params: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items()) or "-"


def run_lines(part: dict[str, Any]) -> list[str]:
    return [
        f"- machine: {part['machine']}",
        f"- date: {part['date']}",
        f"- command: `{part['command']}`",
    ]


def markdown(result: dict[str, Any]) -> str:
    lines = [SECTION, ""]
    index = result.get("index")
    if index:
        lines += ["Index latency:", "", *run_lines(index), f"- embeddings: {index['source']}", ""]
        lines += index_table(index)
    http = result.get("http")
    if http:
        lines += ["", "HTTP throughput:", "", *run_lines(http), "", http_markdown(http)]
    lines += ["", f"- results: `{RESULTS.relative_to(ROOT)}`"]
    return "\n".join(lines) + "\n"


def index_table(index: dict[str, Any]) -> list[str]:
    lines = [
        "Top-10 by inner product on L2-normalised vectors; recall@10 against exact on 500 "
        "tuning / 500 held-out / 500 timing queries; latency is one query per call on one FAISS "
        "thread, p50 / p99 over the 500 timing queries, as wall time and as the calling thread's "
        "CPU time (on a shared machine the wall p99 mostly measures the scheduler).",
        "",
        "| candidates | index | params | build s (+ tune s) | recall@10 tune / held-out / timing "
        "| wall p50 / p99 ms | CPU p50 / p99 ms | wall p50, p99 vs exact | CPU p50 vs exact |",
        "|---:|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for size in index["sizes"]:
        for row in size["rows"]:
            recall = (
                "1 (exact)"
                if row["kind"] == "exact"
                else f"{row['recall_tune']:.3f} / {row['recall_heldout']:.3f} / "
                f"{row['recall_timing']:.3f}"
            )
            lines.append(
                f"| {size['n']:,} | {row['kind']} | {fmt_params(row['params'])} | "
                f"{row['build_s']:.1f} (+ {row['tune_s']:.1f}) | {recall} | "
                f"{row['p50_ms']:.3f} / {row['p99_ms']:.3f} | "
                f"{row['cpu_p50_ms']:.3f} / {row['cpu_p99_ms']:.3f} | "
                f"{row['p50_vs_exact']:.3f}, {row['p99_vs_exact']:.3f} | "
                f"{row['cpu_p50_vs_exact']:.3f} |"
            )
    peaks = ", ".join(f"{s['n']:,}: {s['peak_rss_mib']:,.0f} MiB" for s in index["sizes"])
    lines += ["", f"Peak RSS of the benchmark process after each size: {peaks}."]
    cpu = [
        f"{s['n']:,} {r['kind']} {r['total_build_cpu_s']:.0f} s"
        for s in index["sizes"]
        for r in s["rows"]
        if "total_build_cpu_s" in r
    ]
    if cpu:
        lines.append(f"CPU time of build + tuning (all threads): {', '.join(cpu)}.")
    return lines


def http_markdown(http: dict[str, Any]) -> str:
    rows = http["runs"]
    exact = next(r for r in rows if r["kind"] == "exact")
    out = [
        f"HTTP: `towerkit rec serve --model {http['model']}` ({http['uri']}, "
        f"{rows[0]['n_candidates']:,} real candidates), {http['concurrency']} concurrent "
        f"loopback clients for {http['seconds']:.0f} s each after a warm-up, POST /recommend "
        "{user_id, k: 10} for random known users, seen items excluded. Server and client CPU "
        "time per request are the two processes' user + system seconds over the measured "
        "window divided by its requests."
        + (f" Model: {http['model_source']}" if http.get("model_source") else ""),
        "",
        "| index | params | recall@10 held-out | requests | errors | requests/s | p50 ms | p99 ms "
        "| server CPU ms / request | client CPU ms / request | requests/s vs exact "
        "| server CPU vs exact | 1-min load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for r in rows:
        server_cpu = r.get("server_cpu_ms_per_request", nan)
        out.append(
            f"| {r['kind']} | {fmt_params(r['index']['params'])} | {r['index']['recall']:.3f} | "
            f"{r['requests']:,} | {r['errors']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {server_cpu:.2f} | {r.get('client_cpu_ms_per_request', nan):.2f} | "
            f"{r['requests_per_s'] / exact['requests_per_s']:.3f} | "
            f"{server_cpu / exact.get('server_cpu_ms_per_request', nan):.3f} | "
            f"{r.get('load_average', nan):.1f} |"
        )
    return "\n".join(out)


def write_section(text: str) -> None:
    """Replace this benchmark's section of BENCHMARKS.md (or append it), leaving the rest."""
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.is_file() else "# Benchmarks\n"
    start = current.find(SECTION + "\n")
    if start < 0:
        current = current.rstrip() + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        current = current[:start] + text + ("" if end < 0 else current[end:])
    BENCHMARKS_MD.write_text(current.rstrip() + "\n")


# --- main -------------------------------------------------------------------------------------


def model_fit(model: str | None) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None, str]:
    """The model's (candidate, user) embeddings to imitate, its label, and a description."""
    if model is None:
        return None, None, ""
    from towerkit.core.errors import TowerkitError
    from towerkit.rec.twotower.api import load_bundle

    try:
        bundle = load_bundle(model)
    except TowerkitError as exc:
        raise SystemExit(f"--model {model}: {exc}") from exc
    candidates = bundle.candidate_embeddings()
    users = bundle.query_embeddings(bundle.features.query_keys)
    text = (
        f"synthetic, d = {bundle.dim}: candidates ~ N(mean, cov) of {bundle.label}'s "
        f"{len(candidates):,} candidate embeddings, queries ~ N(mean, cov) of its "
        f"{len(users):,} user embeddings, L2-normalised"
    )
    return (candidates, users), bundle.label, text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="rec-two-tower@production")
    parser.add_argument(
        "--no-model", action="store_true", help="index part: the built-in generator, d = --dim"
    )
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=64, help="d without a model")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--parts", default="index,http", help="index, http or index,http")
    parser.add_argument("--model-source", default="", help="how --model was trained (a note)")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the parts asked for; a part not run keeps its earlier results (and their command)."""
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    if not parts <= {"index", "http"}:
        raise SystemExit(f"--parts {args.parts!r}: expected index, http or index,http")
    model = None if args.no_model else args.model
    stamp = {
        "machine": machine(args.build_threads),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(
            ["python", "benchmarks/two_tower_serving.py", *(sys.argv[1:] if argv is None else argv)]
        ),
    }
    if "http" in parts and model is None:
        raise SystemExit("--parts http needs a trained model (--model), not --no-model")
    fresh: dict[str, Any] = {}
    if "index" in parts:
        fresh["index"] = {**stamp, **index_part(model, args)}
    if "http" in parts:
        fresh["http"] = {**stamp, **http_part(model, args)}
    # read only now: another run of the other part may have finished meanwhile
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result.update(fresh)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    if not args.no_write:
        write_section(text)
    print(text)
    return result


def index_part(model: str | None, args: argparse.Namespace) -> dict[str, Any]:
    fit, _, source = model_fit(model)
    dim = fit[0].shape[1] if fit is not None else args.dim
    if fit is None:
        source = f"synthetic, d = {dim}: a 16-d mixture of 1,000 Gaussians mapped linearly to d"
    sizes = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"index benchmark, {n:,} candidates x {dim}", flush=True)
        sizes.append(bench_size(n, dim, args.seed, fit, args.build_threads))
    return {"source": source, "sizes": sizes}


def http_part(model: str, args: argparse.Namespace) -> dict[str, Any]:
    from towerkit.rec.twotower.api import load_bundle

    runs = []
    for kind in KINDS:
        print(f"HTTP, {args.concurrency} clients, index {kind}", flush=True)
        runs.append(bench_http(model, kind, args.http_seconds, args.concurrency))
        print(f"  {runs[-1]}", flush=True)
    return {
        "model": model,
        "uri": load_bundle(model).label,
        "concurrency": args.concurrency,
        "seconds": args.http_seconds,
        "runs": runs,
        "model_source": args.model_source,
    }


if __name__ == "__main__":
    main()

"""What the like path costs a served request, in one process (no HTTP).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_like_cost.py MODEL [--threads 1,8]

For a registered two-tower model (or a run / model folder) the request's model work, the
known user's query tower and ``like_probabilities`` of ``--items`` candidates, runs for
``--users`` known users, spread over each ``--threads`` count of Python threads (the server
answers on a thread pool); printed: CPU and wall milliseconds per request with the model's like
booster and with it detached, and retrieval alone (``like_probability: false``).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import torch


def per_request(work: Callable[[str], None], users: list[str], threads: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per user of ``work`` spread over ``threads`` threads."""
    chunks = [users[i::threads] for i in range(threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=lambda c=c: [work(u) for u in c]) for c in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    n = len(users)
    return (time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


def main() -> None:
    from towerkit.rec.twotower.api import load_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="registry reference or run / model folder")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.model)
    users = list(bundle.features.query_keys[: args.users])
    items = bundle.candidate_ids()[: args.items]

    def with_like(user: str) -> None:
        bundle.like_probabilities(bundle.query_outputs([user]), items)

    def retrieval_only(user: str) -> None:
        bundle.query_outputs([user], like=False)

    for user in users[:20]:  # warm-up: lazy tables, first-call allocations
        with_like(user)
    booster = getattr(bundle.model, "booster", None)
    print(
        f"model {bundle.label}, {len(users)} users, {len(items)} items, booster: {booster is not None}"
    )
    print("| threads | path | CPU ms / request | wall ms / request |")
    print("|---:|---|---:|---:|")
    for threads in [int(t) for t in args.threads.split(",")]:
        paths: list[tuple[str, Callable[[str], None]]] = [("like probability", with_like)]
        if booster is not None:
            paths.append(("like probability, booster detached", with_like))
        paths.append(("retrieval only", retrieval_only))
        for name, work in paths:
            bundle.model.booster = None if "detached" in name else booster  # type: ignore[union-attr]
            cpu, wall = per_request(work, users, threads)
            print(f"| {threads} | {name} | {cpu:.2f} | {wall:.2f} |", flush=True)
        bundle.model.booster = booster  # type: ignore[union-attr]


if __name__ == "__main__":
    main()

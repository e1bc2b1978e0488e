"""Shared budget stores under contention: reserve + settle round trips from 1 and 4 processes at once.

    .venv-test/bin/python benchmarks/bench_stores.py [--ops 2000]

Every process opens the store from its URL, as each worker of an app does, and runs `ops` reserve +
settle round trips of one call against the same global budget. Reported: the median and p99 round trip
each process saw, the throughput of all processes together, and whether the budget's spend is exact
afterwards (every settle counted once, none lost to a race). SQLite runs on a temporary file, Redis on
a real `redis-server` started on loopback (skipped when it is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from otel_llm_cost.budget.stores import Claim, store_from_url

RESERVED, SETTLED = Decimal("0.001"), Decimal("0.0009")
_WINDOW = "total"


def _worker(url: str, ops: int, start: Any, results: Any) -> None:
    store = store_from_url(url)
    claim = Claim("bench", "", _WINDOW, RESERVED, Decimal("1000000"))
    for _ in range(20):  # warm-up: connections, prepared statements, the Lua script
        store.settle(store.reserve([claim]), Decimal(0))
    start.wait()
    samples = []
    for _ in range(ops):
        begin = time.perf_counter_ns()
        held = store.reserve([claim])
        store.settle(held, SETTLED)
        samples.append((time.perf_counter_ns() - begin) / 1000)
    results.put(samples)


def contended(url: str, processes: int, ops: int) -> dict[str, float]:
    """`processes` workers at once; p50/p99 of every round trip, and all workers' round trips a second."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=_worker, args=(url, ops, start, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    samples = sorted(s for _ in workers for s in results.get(timeout=600))
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join(timeout=60)
    spent, reserved = store_from_url(url).usage("bench", "", _WINDOW)
    return {"p50_us": statistics.median(samples), "p99_us": samples[int(len(samples) * 0.99) - 1],
            "per_second": len(samples) / elapsed,
            "exact": spent == SETTLED * processes * ops and reserved == 0}


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(directory)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure(ops: int) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 4):
            rows[f"SQLite, {processes} process{'es' if processes > 1 else ''}"] = contended(
                f"sqlite:///{tmp}/budgets-{processes}.db", processes, ops)
        with redis_server(Path(tmp)) as url:
            if url is not None:
                for processes in (1, 4):  # a database of its own each
                    rows[f"Redis, {processes} process{'es' if processes > 1 else ''}"] = contended(
                        url.replace("/0", f"/{processes}"), processes, ops)
    return rows


def report(rows: dict[str, dict[str, float]]) -> str:
    lines = ["reserve + settle round trip, one call's budget check: per process and all together"]
    for name, row in rows.items():
        lines.append(f"  {name:22} p50 {row['p50_us']:7.0f} us   p99 {row['p99_us']:7.0f} us   "
                     f"{row['per_second']:8.0f} round trips/s   spend exact: {row['exact']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    print(report(measure(args.ops)))


if __name__ == "__main__":
    main()

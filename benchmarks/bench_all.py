"""Every row of the README's performance table, measured in one run, printed as that table.

    bash benchmarks/run.sh [--write-readme]            (sets up .venv-bench first; about 5 minutes)
    .venv-bench/bin/python benchmarks/bench_all.py [--rounds 7] [--write-readme]

Per-call overhead of otel-llm-cost, the floor and the peers (bench_overhead.py), start-up under
`opentelemetry-instrument` (bench_startup.py) and the shared budget stores under contention
(bench_stores.py). `--write-readme` replaces the README's table between its `bench:` markers with
this run's, so the README shows only numbers this command printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import bench_overhead
import bench_startup
import bench_stores

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _times(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def table(overhead: dict, lifecycle: dict, startup: dict, stores: dict, rounds: int) -> str:
    modes = [m for m in bench_overhead.MODES[1:] if m in overhead["non-stream"]]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"Measured {when} on this machine ({os.cpu_count()} cores, Python {platform.python_version()}), all in one "
        f"run of `bash benchmarks/run.sh` ({rounds} interleaved rounds, each mode in its own process).",
        "",
        "Client CPU added per OpenAI call through the loopback fake provider (1,000 tokens in, 100 out). A "
        "call's ratio is to the floor; a stream's is to ours, as a stream's floor (one span around ~11 ms of "
        "SDK work) is within the noise: the no-I/O table below gives the streams' ratio to the floor.",
        "",
        "| mode | non-stream call | 100-chunk stream |",
        "|---|---|---|",
    ]
    ns, st = overhead["non-stream"], overhead["stream"]
    ours = st["otel-llm-cost"]
    lines.append(f"| uninstrumented (the call itself) | {ns['uninstrumented']:,.0f} µs | {st['uninstrumented']:,.0f} µs |")
    for mode in modes:
        name = {"bare span": "bare OTel span, no metrics", "otel-llm-cost": "**otel-llm-cost** (`configure()`, "
                "metrics on)", "floor": "the floor: a span with our ~18 attributes + the same metric records, "
                "written naively"}.get(mode, mode)
        lines.append(f"| {name} | {ns[mode]:+,.0f} µs ({_times(ns[mode], ns['floor'])} floor) | "
                     f"{st[mode]:+,.0f} µs ({_times(st[mode], ours)} ours) |")
    chunk = st["usage chunk"]
    lines += [
        f"| of ours: the usage chunk we ask for (the SDK parsing one more chunk) | | {chunk:+,.0f} µs |",
        f"| of ours: beyond a call's cost and that chunk, per chunk | | "
        f"{(ours - chunk - ns['otel-llm-cost']) / 100:+,.1f} µs |",
        "",
        "The same, with the HTTP round trip replaced by ready SDK objects (our own work, no I/O), µs per call:",
        "",
        "| mode | non-stream | 100-chunk stream |",
        "|---|---|---|",
    ]
    lns, lst = lifecycle["non-stream"], lifecycle["100-chunk stream"]
    for way in ("bare span", "floor", "otel-llm-cost"):
        a, b = lns[way] - lns["uninstrumented"], lst[way] - lst["uninstrumented"]
        lines.append(f"| {way} | {a:.0f} ({_times(a, lns['floor'] - lns['uninstrumented'])}) | "
                     f"{b:.0f} ({_times(b, lst['floor'] - lst['uninstrumented'])}) |")
    lines += ["", "Start-up, every supported SDK installed, peers disabled in both:", "",
              "| command | without ours | with ours | added |", "|---|---|---|---|"]
    for label, (without, with_ours) in startup.items():
        lines.append(f"| `opentelemetry-instrument python -c '{label}'` | {without * 1000:.0f} ms | "
                     f"{with_ours * 1000:.0f} ms | {(with_ours - without) * 1000:+.0f} ms |")
    lines += ["", "Budget check (reserve + settle of one call) on the shared stores, processes at once:", "",
              "| store | p50 | p99 | round trips/s, all processes | spend exact afterwards |", "|---|---|---|---|---|"]
    for name, row in stores.items():
        lines.append(f"| {name} | {row['p50_us']:,.0f} µs | {row['p99_us']:,.0f} µs | {row['per_second']:,.0f} | "
                     f"{'yes' if row['exact'] else '**no**'} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text("utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        sys.exit(f"bench_all: {README} has no {START} ... {END} block to replace")
    README.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", readme), "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--streams", type=int, default=150)
    parser.add_argument("--startup-runs", type=int, default=9)
    parser.add_argument("--store-ops", type=int, default=2000)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    print("bench_all: per-call overhead ...", file=sys.stderr)
    overhead = bench_overhead.measure(args.rounds, args.calls, args.streams)
    lifecycle = bench_overhead.measure_lifecycle()
    print(bench_overhead.report(overhead, lifecycle), file=sys.stderr)
    print("bench_all: start-up ...", file=sys.stderr)
    startup = bench_startup.measure(args.startup_runs)
    print("bench_all: budget stores ...", file=sys.stderr)
    stores = bench_stores.measure(args.store_ops)
    text = table(overhead, lifecycle, startup, stores, args.rounds)
    print(text)
    if args.write_readme:
        write_readme(text)
        print(f"bench_all: wrote the table into {README}", file=sys.stderr)


if __name__ == "__main__":
    main()

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
import tempfile
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
    ns, st = overhead["non-stream"], overhead["stream"]
    modes = [m for m in bench_overhead.MODES[1:] if m in ns]
    official = "official genai-openai"
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"Measured {when} on this machine ({os.cpu_count()} cores, Python {platform.python_version()}), all in one "
        f"run of `bash benchmarks/run.sh` ({rounds} rounds; each mode in its own process, switched off and on in "
        "alternating batches inside it).",
        "",
        "Process CPU added per OpenAI call through the loopback fake provider (1,000 tokens in, 100 out), each "
        "batch's window including one metrics collection. A call's ratios are to the floor and to the official "
        "instrumentation; a stream's to ours and to the official one. Budget rows: a global and a per-session "
        "budget, and their ratio to ours without budgets (measured in the same process).",
        "",
        "| mode | non-stream call | 100-chunk stream |",
        "|---|---|---|",
    ]
    ours = st["otel-llm-cost"]

    def versus(value: float, base: str, row: dict) -> str:
        return f"{_times(value, row[base])} {'official' if base == official else base}" if base in row else ""

    lines.append(f"| uninstrumented (the call itself) | {ns['uninstrumented']:,.0f} µs | {st['uninstrumented']:,.0f} µs |")
    for mode in modes:
        name = {"bare span": "bare OTel span, no metrics", "otel-llm-cost": "**otel-llm-cost** (`configure()`, "
                "metrics on)", "floor": "the floor: a span with our ~18 attributes + the same metric records, "
                "written naively"}.get(mode, mode)
        if mode in bench_overhead.BUDGET_MODES:
            name = f"otel-llm-cost with budgets, {mode.split(': ')[1]} store"
            beyond_ns, beyond_st = ns[f"{mode} beyond ours"], st[f"{mode} beyond ours"]
            trips = ns.get(f"{mode} round trips")
            trips_text = f"; {trips:.3f} store round trips a call" if trips is not None else ""
            lines.append(f"| {name} | {ns[mode]:+,.0f} µs ({_times(ns[mode], ns['otel-llm-cost'])} ours; budgets "
                         f"{beyond_ns:+,.0f} µs{trips_text}) | {st[mode]:+,.0f} µs ({_times(st[mode], ours)} ours; "
                         f"budgets {beyond_st:+,.0f} µs) |")
            continue
        call_ratios = ", ".join(r for r in (f"{_times(ns[mode], ns['floor'])} floor",
                                            versus(ns[mode], official, ns)) if r)
        stream_ratios = ", ".join(r for r in (f"{_times(st[mode], ours)} ours", versus(st[mode], official, st)) if r)
        lines.append(f"| {name} | {ns[mode]:+,.0f} µs ({call_ratios}) | {st[mode]:+,.0f} µs ({stream_ratios}) |")
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
    with tempfile.TemporaryDirectory() as tmp, bench_stores.redis_server(Path(tmp)) as redis_url:
        budget_stores = {"budgets: memory": "memory", "budgets: SQLite": f"sqlite:///{tmp}/budgets.db"}
        if redis_url is not None:
            budget_stores["budgets: Redis"] = redis_url
        overhead = bench_overhead.measure(args.rounds, args.calls, args.streams, budget_stores)
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

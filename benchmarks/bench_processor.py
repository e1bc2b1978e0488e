"""CostSpanProcessor and budget stores, measured in one run.

* `on_end` cost per span: our processor against a no-op processor on the same spans;
* the reservation round trip (reserve + settle) of the memory, SQLite and Redis stores (Redis: a
  redis-server started on loopback, when it is installed);
* RSS after 1,000,000 calls across 100,000 sessions (the LRU keeps 10,000).

    .venv/bin/python benchmarks/bench_processor.py [--calls 1000000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from bench_stores import redis_server

from otel_llm_cost.budget.stores import Claim, MemoryStore, RedisStore, SqliteStore
from otel_llm_cost.instrumentation._call import SCOPE_NAME
from otel_llm_cost.processor import CostSpanProcessor
from otel_llm_cost.sessions import SessionTotals

ATTRIBUTES = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cost.amount": 0.00475,
    "session.id": "s", "user.id": "u", "llm_cost.tag.feature": "chat",
}


class NoOp(SpanProcessor):
    def on_end(self, span) -> None:  # noqa: ANN001
        return None


def _ended_spans(n: int, scope: str) -> list:
    tracer = TracerProvider().get_tracer(scope)
    spans = []
    for i in range(n):
        span = tracer.start_span("chat gpt-4o", attributes={**ATTRIBUTES, "session.id": f"s{i % 1000}"})
        span.end()
        spans.append(span._readable_span())
    return spans


def per_span_us(processor: SpanProcessor, spans: list) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for span in spans:
            processor.on_end(span)
        rounds.append((time.perf_counter_ns() - start) / len(spans) / 1000)
    return statistics.median(rounds)


def round_trip_us(store, n: int) -> float:  # noqa: ANN001
    claim = Claim("bench", "", "total", Decimal("0.001"), Decimal("1000000"))
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        held = store.reserve([claim])
        store.settle(held, Decimal("0.0009"))
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def _rss_mib() -> float:
    """Resident memory now (not the peak), from /proc, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def rss_after(calls: int, sessions: int) -> tuple[float, float, int]:
    """Run in a fresh process (see main) so the peak RSS is this workload's own."""
    from otel_llm_cost.sessions import CallRecord
    from otel_llm_cost.usage import Usage

    before = _rss_mib()
    totals = SessionTotals(max_keys=10_000)
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000)
    for i in range(calls):
        totals.add(CallRecord("openai", "gpt-4o", usage, Decimal("0.00475"), f"s{i % sessions}", f"u{i % sessions}"))
    after = _rss_mib()
    return before, after, totals.session_count()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rss-only", action="store_true")
    args = parser.parse_args()
    if args.rss_only:
        import json

        print(json.dumps(rss_after(args.calls, 100_000)))
        return

    ours = _ended_spans(20_000, SCOPE_NAME)
    noop_us = per_span_us(NoOp(), ours)
    ours_us = per_span_us(CostSpanProcessor(), ours)
    foreign_us = per_span_us(CostSpanProcessor(), _ended_spans(20_000, "some.other.genai"))
    print(f"on_end per span: no-op {noop_us:.2f} us, ours (our spans) {ours_us:.2f} us, "
          f"ours (foreign spans, priced) {foreign_us:.2f} us")
    print(f"reserve+settle round trip: memory {round_trip_us(MemoryStore(), 20_000):.1f} us", end=", ")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"sqlite {round_trip_us(SqliteStore(Path(tmp) / 'b.db'), 2_000):.1f} us", end="")
        with redis_server(Path(tmp)) as url:
            print(f", redis (loopback) {round_trip_us(RedisStore(url), 2_000):.1f} us" if url else ", redis: not installed")
    import json
    import sys

    out = subprocess.run([sys.executable, __file__, "--rss-only", "--calls", str(args.calls)], capture_output=True,
                         text=True, check=True).stdout
    before, after, kept = json.loads(out)
    print(f"RSS after {args.calls:,} calls across 100,000 sessions: {after:.0f} MiB "
          f"(start {before:.0f} MiB), sessions kept: {kept:,}")


if __name__ == "__main__":
    main()

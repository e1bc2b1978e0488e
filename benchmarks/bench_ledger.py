"""How fast the ledger takes rows, and how long a usage report takes over a large one, grouped by each key.

    .venv-test/bin/python benchmarks/bench_ledger.py [--rows 2000000] [--batch 500] [--ledger URL]

Rows are spread over 30 days (in time order, as calls reach the writer), 40 models, 5,000 users, 20,000
sessions and 8 task tags, 5% unpriced,
written through the backend in the writer's batches (500 rows, one transaction each, the rollup kept in
the same transaction). Prints the write rate (and the rate over the last tenth of the rows, once the
ledger is full) and, for each grouping, the time of the whole-ledger report and of a last-7-days report
(whole days from the rollup, the edge inside a day from the rows), best of 3. `--ledger` takes a
PostgreSQL URL too (its tables are emptied first).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from otel_llm_cost.ledger import Row, open_backend, uuid7
from otel_llm_cost.ledger.report import usage_report


def _rows(count: int, now: datetime):
    rng = random.Random(42)
    models = [f"model-{i}" for i in range(40)]
    for i in range(count):
        unpriced = rng.random() < 0.05
        input_tokens, output_tokens = rng.randint(100, 20_000), rng.randint(10, 2_000)
        # in time order, as a writer receives calls: 30 days, oldest first
        yield Row(uuid7(), now - timedelta(seconds=30 * 86_400 * (1 - i / count) + rng.uniform(0, 1)), None, None, "svc",
                  rng.choice(("openai", "anthropic", "gcp.gemini")), "chat", rng.choice(models), None, None,
                  f"s{rng.randrange(20_000)}", None, f"u{rng.randrange(5_000)}", {"task": f"t{rng.randrange(8)}"},
                  input_tokens, output_tokens, 0, 0, 0,
                  None if unpriced else Decimal(input_tokens * 3 + output_tokens * 15) / 10**6, "local", "bundled",
                  False, "ok", None, False, None, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--ledger", help="default: a fresh SQLite file in a temporary directory")
    args = parser.parse_args()
    url = args.ledger or f"sqlite:///{tempfile.mkdtemp(prefix='ledger-bench-')}/usage.db"
    backend = open_backend(url)
    if url.startswith("postgres"):
        connection = backend._connection()
        connection.execute("TRUNCATE llm_calls, llm_rollup")
        connection.commit()
    now = datetime.now(UTC)
    writing = 0.0
    tail_rows, tail_time = 0, 0.0
    batch: list[Row] = []
    for index, row in enumerate(_rows(args.rows, now), start=1):  # rows are made outside the timing
        batch.append(row)
        if len(batch) == args.batch or index == args.rows:
            began = time.perf_counter()
            backend.write(batch, fresh=True)  # as the writer sends a batch the first time
            spent = time.perf_counter() - began
            writing += spent
            if index > args.rows * 0.9:
                tail_rows, tail_time = tail_rows + len(batch), tail_time + spent
            batch = []
    print(f"ledger {url.split('://')[0]}: wrote {args.rows:,} rows in {writing:.1f} s of writing "
          f"({args.rows / writing:,.0f} rows/s; {tail_rows / max(tail_time, 1e-9):,.0f} rows/s over the last "
          f"tenth; batches of {args.batch:,})")
    print(f"{'group by':10} {'groups':>7} {'all rows':>9} {'last 7 days':>12}")
    for by in ("model", "provider", "user", "session", "day", "tag:task"):
        timings = []
        for since in (None, now - timedelta(days=7)):
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                report = usage_report(since=since, by=by, ledger=backend)
                best = min(best, time.perf_counter() - t)
            timings.append(best)
        print(f"{by:10} {len(report.groups):>7,} {timings[0]:>8.2f}s {timings[1]:>11.2f}s")
    backend.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""compute_cost, cached and uncached, against a raw genai_prices.calc_price call in the same run.

    .venv/bin/python benchmarks/bench_pricing.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import genai_prices

from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.usage import Usage

USAGE = Usage(input_tokens=12_000, cache_read_tokens=8_000, output_tokens=700, reasoning_tokens=200)
GENAI_USAGE = genai_prices.Usage(input_tokens=12_000, cache_read_tokens=8_000, output_tokens=700)


def median_us(fn: Callable[[], object], runs: int = 20_000) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def main() -> None:
    book = PriceBook()
    book.compute_cost("openai", "gpt-4o", USAGE)  # warm the resolution cache

    def uncached() -> object:
        book._cache.clear()
        return book.compute_cost("openai", "gpt-4o", USAGE)

    raw = median_us(lambda: genai_prices.calc_price(GENAI_USAGE, "gpt-4o", provider_id="openai"), 5_000)
    cached = median_us(lambda: book.compute_cost("openai", "gpt-4o", USAGE))
    cold = median_us(uncached, 5_000)
    print(f"genai_prices.calc_price (raw)      {raw:8.2f} us  (1.00x)")
    print(f"compute_cost, uncached resolution  {cold:8.2f} us  ({cold / raw:.2f}x raw)")
    print(f"compute_cost, cached model         {cached:8.2f} us  ({cached / raw:.3f}x raw, {raw / cached:.0f}x faster)")


if __name__ == "__main__":
    main()

"""What the same usage would have cost: on another model (`--as-model gpt-4o-mini`) or another service
tier (`--as-tier batch`): "what would last month have cost on gpt-4o-mini, or through the Batch API".

Each row's stored usage is priced as the target prices it, cache reads and writes and reasoning tokens
included, as of the row's own day; a group with a row that has no such price is *unknown*, never a
partial sum. Calls a budget refused used nothing and cost nothing either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from otel_llm_cost.ledger.reprice import usage_of
from otel_llm_cost.ledger.rollup import column_keys
from otel_llm_cost.ledger.rows import Row, stored_cost
from otel_llm_cost.pricing import PriceBook

__all__ = ["WhatIf", "what_if", "TIERS", "group_key"]

TIERS: Final = ("batch", "flex", "priority")


@dataclass(slots=True)
class WhatIf:
    """Per group key, what the usage would have cost (None: unknown), the total, and what to know."""

    label: str
    costs: dict[str | None, Decimal | None] = field(default_factory=dict)
    total: Decimal | None = Decimal(0)
    notes: list[str] = field(default_factory=list)


def group_key(row: Row, by: str) -> str | None:
    """The key of `row` in a report grouped `by` (the rollup's own definition of each grouping)."""
    if by.startswith("tag:"):
        return row.tags.get(by[4:])
    if by == "day":
        return row.ts.strftime("%Y-%m-%d")
    return dict(column_keys(row))[by]


def what_if(rows: Iterable[Row], by: str, price_book: PriceBook, *, as_model: str | None = None,
            as_tier: str | None = None) -> WhatIf:
    """The rows' usage priced at `as_model` and/or `as_tier`, summed per group of `by`."""
    label = " ".join(part for part in (as_model, f"{as_tier} tier" if as_tier else None) if part)
    found = WhatIf(label)
    cache_reads = cache_writes = False
    for row in rows:
        if row.outcome == "blocked":
            continue
        key = group_key(row, by)
        if key not in found.costs:
            found.costs[key] = Decimal(0)
        cache_reads |= row.cache_read_tokens > 0
        cache_writes |= row.cache_write_tokens > 0
        cost = price_book.compute_cost(
            None if as_model else row.provider, as_model or row.response_model or row.request_model, usage_of(row),
            service_tier=as_tier if as_tier in ("flex", "priority") else row.service_tier,
            batch=as_tier == "batch" or row.batch, at=row.ts)
        sofar = found.costs[key]
        found.costs[key] = None if cost is None or sofar is None else sofar + stored_cost(cost.total)
    known = [cost for cost in found.costs.values()]
    found.total = None if any(cost is None for cost in known) else sum((c for c in known if c is not None), Decimal(0))
    if as_model:
        rates = price_book.rates(None, as_model)
        if rates is None:
            found.notes.append(f"no price is known for {as_model}")
        else:
            if cache_reads and rates.cache_read is None:
                found.notes.append(f"{as_model} has no cache-read price: cache reads are priced as input")
            if cache_writes and rates.cache_write is None:
                found.notes.append(f"{as_model} has no cache-write price: cache writes are priced as input")
    return found

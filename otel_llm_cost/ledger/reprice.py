"""Re-pricing the book: the rows whose cost was unknown (a new or private model, priced later), or every
row, priced again from their stored usage with the prices known now, custom ones included.

The most common complaint across the peers' trackers: adding a model's price later never fixes the past.
Here the rows get the cost, their `pricing_source` says where the price came from, and the rollup is
rebuilt from the rows, so every report agrees. Budgets are not touched: the past is repriced, not
enforced again. A row is priced as of its own day (a price that changed since applies from its date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from otel_llm_cost.ledger.rows import Row, stored_cost
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.usage import Usage

__all__ = ["Repricing", "reprice"]

REPRICED: str = "repriced"
"""The `cost_source` of a row whose cost this module set."""


@dataclass(slots=True)
class Repricing:
    """What a re-pricing found, and (unless it was a dry run) changed."""

    looked_at: int = 0
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)
    still_unknown: int = 0
    changes: list[tuple[str, Decimal, str]] = field(default_factory=list)
    """(row id, new stored cost, where its price came from)."""


def reprice(backend: Any, since: datetime | None, until: datetime | None, price_book: PriceBook, *,
            every: bool = False, dry_run: bool = False) -> Repricing:
    """Price again the rows in [since, until) whose cost is unknown (with `every`, all rows); write the new
    costs and rebuild the rollup unless `dry_run`. Calls a budget refused cost nothing and stay so."""
    found = Repricing()
    for row in backend.rows(since, until):
        if row.outcome == "blocked":
            continue
        found.looked_at += 1
        found.before += row.cost_usd or 0
        if row.cost_usd is not None and not every:
            found.after += row.cost_usd
            continue
        cost = price_book.compute_cost(row.provider, row.response_model or row.request_model, usage_of(row),
                                       service_tier=row.service_tier, batch=row.batch, at=row.ts)
        if cost is None:
            found.still_unknown += row.cost_usd is None
            found.after += row.cost_usd or 0
            continue
        new = stored_cost(cost.total)
        found.after += new
        if new != row.cost_usd:
            found.changes.append((row.id, new, cost.source))
    if found.changes and not dry_run:
        backend.reprice(found.changes, REPRICED)
    return found


def usage_of(row: Row) -> Usage:
    """The usage a row stores. Cache writes are priced at the 5-minute rate: a row does not keep the
    5-minute and 1-hour writes apart."""
    return Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                 cache_read_tokens=row.cache_read_tokens, cache_write_5m_tokens=row.cache_write_tokens,
                 reasoning_tokens=row.reasoning_tokens)

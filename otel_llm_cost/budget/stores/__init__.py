"""Where budget spend and in-flight reservations live: one process (`memory`), the processes of one host
(`sqlite`), or processes on many hosts (`redis`: Redis, Redis Cluster, Sentinel). One module per kind,
behind the one protocol of `_base`; the guard reaches each through `budget.outage.OutageBuffer`, which
applies settles behind the calls and nets out what it has not applied yet."""

from __future__ import annotations

from otel_llm_cost.budget.stores._base import (
    BudgetStore, Claim, Refusal, Reservation, StoreOpenError, StoreUnavailable, Write, new_id,
)
from otel_llm_cost.budget.stores.memory import MemoryStore
from otel_llm_cost.budget.stores.redis import RedisStore
from otel_llm_cost.budget.stores.sqlite import SqliteStore

__all__ = [
    "Claim", "Reservation", "Refusal", "Write", "BudgetStore", "MemoryStore", "SqliteStore", "RedisStore",
    "store_from_url", "StoreUnavailable", "StoreOpenError", "new_id",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "redis+sentinel://")


def store_from_url(url: str) -> BudgetStore:
    """`memory`, `sqlite:///path/to/file.db` or `redis://host:port/db` (also `rediss://`, `unix://`,
    `redis+cluster://`, `redis+sentinel://`): the OTEL_LLM_COST_BUDGET_STORE values. One that cannot be
    used raises `StoreOpenError`; one that is only down starts in outage (OTEL_LLM_COST_BUDGET_STORE_FAILURE)."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db
        return SqliteStore(url[len("sqlite:///"):])
    if url.startswith(REDIS_SCHEMES):
        return RedisStore(url)
    raise StoreOpenError(f"unknown budget store {url!r}")

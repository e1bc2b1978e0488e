"""The module-level functions of the public API (re-exported by `otel_llm_cost`)."""

from __future__ import annotations

from typing import Any

from otel_llm_cost._setup import runtime
from otel_llm_cost.budget import Budget, BudgetStatus
from otel_llm_cost.pricing import PricingStatus, default_price_book
from otel_llm_cost.sessions import SessionSummary


def session_usage(id: str | None = None) -> SessionSummary:
    """Totals of one session, or of every call when `id` is None (or the current session's id)."""
    rt = runtime()
    assert rt is not None
    if id is None:
        from otel_llm_cost.context import current_session

        current = current_session()
        id = current.session_id if current else None
    return rt.processor.totals.session(id)


def user_usage(user_id: str) -> SessionSummary:
    rt = runtime()
    assert rt is not None
    return rt.processor.totals.user(user_id)


def reset_usage() -> None:
    """Forget all totals (budgets keep their spend: use `clear_budget` for those)."""
    rt = runtime()
    assert rt is not None
    rt.processor.totals.reset()


def set_budget(
    limit: Any,
    scope: str = "global",
    window: str = "total",
    on_exceed: str = "raise",
    *,
    name: str | None = None,
    tag: str | None = None,
) -> Budget:
    """Add (or replace, by name) a budget. Bad values raise `BudgetError` naming the budget and value."""
    rt = runtime()
    assert rt is not None
    return rt.guard.set(Budget.create(limit, name=name, scope=scope, window=window, on_exceed=on_exceed, tag=tag))


def budget_remaining(name: str | None = None, key: str | None = None) -> BudgetStatus | None:
    """Where a budget stands (the first one when `name` is None); None when no budget is set."""
    rt = runtime()
    assert rt is not None
    return rt.guard.status(name, key)


def budgets() -> list[BudgetStatus]:
    rt = runtime()
    assert rt is not None
    return list(rt.guard.statuses())


def clear_budget(name: str | None = None) -> None:
    """Remove one budget (or all) and its recorded spend."""
    rt = runtime()
    assert rt is not None
    rt.guard.remove(name)
    rt.guard.store.clear(name)


def set_pricing(model: str, input_per_mtok: Any, output_per_mtok: Any, **more: Any) -> None:
    """Custom prices, USD per million tokens; they win over every other source."""
    default_price_book().set_pricing(model, input_per_mtok, output_per_mtok, **more)


def pricing_status() -> PricingStatus:
    """Which price source is active, and how old it is."""
    return default_price_book().status()

"""The module-level functions of the public API (re-exported by `otel_llm_cost`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from otel_llm_cost import _state
from otel_llm_cost._log import warn_once
from otel_llm_cost._setup import Runtime, runtime
from otel_llm_cost.budget import Budget, BudgetStatus
from otel_llm_cost.pricing import PricingStatus, default_price_book
from otel_llm_cost.sessions import SessionSummary

_logger = logging.getLogger("otel_llm_cost")


def _runtime(caller: str, *, counts: bool = False, checks: bool = False) -> Runtime:
    """The process's runtime, saying once why a call before `configure()` cannot do what it looks like:
    totals come from the span processor that configure() attaches (`counts`), and budgets check only
    calls of an instrumented SDK (`checks`)."""
    rt = runtime()
    assert rt is not None
    if counts and rt.tracer_provider is None:
        warn_once(_logger, ("before-configure", caller),
                  "otel-llm-cost: %s() before configure(): no call is counted until configure() attaches the "
                  "span processor (or the app runs under opentelemetry-instrument)", caller)
    if checks and not _state.instrumented_sdks:
        warn_once(_logger, ("before-configure", caller),
                  "otel-llm-cost: %s() before any LLM SDK is instrumented: the budget is kept, and checks calls "
                  "once configure() or instrument() runs (or under opentelemetry-instrument)", caller)
    return rt


def session_usage(id: str | None = None) -> SessionSummary:
    """Totals of one session, or of every call when `id` is None (or the current session's id)."""
    rt = _runtime("session_usage", counts=True)
    if id is None:
        from otel_llm_cost.context import current_session

        current = current_session()
        id = current.session_id if current else None
    return rt.processor.totals.session(id)


def user_usage(user_id: str) -> SessionSummary:
    rt = _runtime("user_usage", counts=True)
    return rt.processor.totals.user(user_id)


def reset_usage() -> None:
    """Forget all totals (budgets keep their spend: use `clear_budget` for those)."""
    rt = _runtime("reset_usage")
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
    budget = Budget.create(limit, name=name, scope=scope, window=window, on_exceed=on_exceed, tag=tag)
    return _runtime("set_budget", checks=True).guard.set(budget)


def on_budget_threshold(callback: Callable[[BudgetStatus, float], Any],
                        at: Iterable[float] = (0.5, 0.8, 1.0)) -> Callable[[], None]:
    """Call `callback(status, threshold)` once per budget, key and window when its spend first reaches each
    threshold (a fraction of the limit), in the process whose call crossed it, off that call's path.
    Returns a function that unsubscribes."""
    return _runtime("on_budget_threshold").guard.thresholds.subscribe(callback, at)


def budget_remaining(name: str | None = None, key: str | None = None) -> BudgetStatus | None:
    """Where a budget stands (the first one when `name` is None); None when no budget is set."""
    rt = _runtime("budget_remaining")
    status = rt.guard.status(name, key)
    if status is None and rt.tracer_provider is None:
        _runtime("budget_remaining", counts=True)
    return status


def budgets() -> list[BudgetStatus]:
    rt = _runtime("budgets")
    statuses = list(rt.guard.statuses())
    if not statuses and rt.tracer_provider is None:
        _runtime("budgets", counts=True)
    return statuses


def clear_budget(name: str | None = None) -> None:
    """Remove one budget (or all), its recorded spend and its threshold crossings."""
    rt = _runtime("clear_budget")
    rt.guard.clear(name)


def set_pricing(model: str, input_per_mtok: Any, output_per_mtok: Any, **more: Any) -> None:
    """Custom prices, USD per million tokens; they win over every other source."""
    default_price_book().set_pricing(model, input_per_mtok, output_per_mtok, **more)


def pricing_status() -> PricingStatus:
    """Which price source is active, and how old it is."""
    return default_price_book().status()

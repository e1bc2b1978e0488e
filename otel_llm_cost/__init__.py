"""otel-llm-cost: exact USD cost, session totals and budgets for LLM calls, in OpenTelemetry.

The public API, re-exported here and nothing else. Names resolve on first use (PEP 562), so
`import otel_llm_cost` is cheap, and the `opentelemetry-instrument` hooks, which import this package
first, can report a broken install in one line instead of crashing before they run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "configure": "otel_llm_cost._setup",
    "Budget": "otel_llm_cost.budget",
    "BudgetError": "otel_llm_cost.budget",
    "BudgetExceededError": "otel_llm_cost.budget",
    "BudgetStoreUnavailableError": "otel_llm_cost.budget",
    "BudgetStatus": "otel_llm_cost.budget",
    "ConfigError": "otel_llm_cost.config",
    "Settings": "otel_llm_cost.config",
    "session": "otel_llm_cost.context",
    "Estimate": "otel_llm_cost.estimate",
    "estimate_cost": "otel_llm_cost.estimate",
    "instrument": "otel_llm_cost.instrumentation",
    "uninstrument": "otel_llm_cost.instrumentation",
    "Cost": "otel_llm_cost.pricing",
    "PricingError": "otel_llm_cost.pricing",
    "PricingStatus": "otel_llm_cost.pricing",
    "compute_cost": "otel_llm_cost.pricing",
    "CostSpanProcessor": "otel_llm_cost.processor",
    "LastUsage": "otel_llm_cost.sessions",
    "SessionSummary": "otel_llm_cost.sessions",
    "last_usage": "otel_llm_cost.sessions",
    "Usage": "otel_llm_cost.usage",
    "session_usage": "otel_llm_cost._api",
    "user_usage": "otel_llm_cost._api",
    "reset_usage": "otel_llm_cost._api",
    "set_budget": "otel_llm_cost._api",
    "budget_remaining": "otel_llm_cost._api",
    "on_budget_threshold": "otel_llm_cost._api",
    "budgets": "otel_llm_cost._api",
    "clear_budget": "otel_llm_cost._api",
    "set_pricing": "otel_llm_cost._api",
    "pricing_status": "otel_llm_cost._api",
    "usage_report": "otel_llm_cost.ledger.report",
    "track": "otel_llm_cost.jobs",
    "Job": "otel_llm_cost.jobs",
    "estimate_batch": "otel_llm_cost.jobs",
    "UsageReport": "otel_llm_cost.ledger.report",
    "ReportError": "otel_llm_cost.ledger.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_llm_cost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from otel_llm_cost._api import (
        budget_remaining, budgets, clear_budget, on_budget_threshold, pricing_status, reset_usage, session_usage,
        set_budget, set_pricing, user_usage,
    )
    from otel_llm_cost._setup import configure
    from otel_llm_cost.budget import Budget, BudgetError, BudgetExceededError, BudgetStatus, BudgetStoreUnavailableError
    from otel_llm_cost.config import ConfigError, Settings
    from otel_llm_cost.context import session
    from otel_llm_cost.estimate import Estimate, estimate_cost
    from otel_llm_cost.instrumentation import instrument, uninstrument
    from otel_llm_cost.pricing import Cost, PricingError, PricingStatus, compute_cost
    from otel_llm_cost.processor import CostSpanProcessor
    from otel_llm_cost.sessions import LastUsage, SessionSummary, last_usage
    from otel_llm_cost.jobs import Job, estimate_batch, track
    from otel_llm_cost.ledger.report import ReportError, UsageReport, usage_report
    from otel_llm_cost.usage import Usage

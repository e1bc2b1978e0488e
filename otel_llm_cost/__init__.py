"""otel-llm-cost: exact USD cost, session totals and budgets for LLM calls, in OpenTelemetry.

The public API (ARCHITECTURE section 5), re-exported here and nothing else.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.config import ConfigError, Settings
from otel_llm_cost.estimate import Estimate, estimate_cost
from otel_llm_cost.pricing import Cost, PricingError, PricingStatus, compute_cost, default_price_book
from otel_llm_cost.usage import Usage

__version__ = "0.1.0"


def set_pricing(model: str, input_per_mtok: Any, output_per_mtok: Any, **more: Any) -> None:
    """Custom prices, USD per million tokens; they win over every other source."""
    default_price_book().set_pricing(model, input_per_mtok, output_per_mtok, **more)


def pricing_status() -> PricingStatus:
    """Which price source is active, and how old it is."""
    return default_price_book().status()


__all__ = [
    "ConfigError",
    "Cost",
    "Estimate",
    "PricingError",
    "PricingStatus",
    "Settings",
    "Usage",
    "compute_cost",
    "estimate_cost",
    "pricing_status",
    "set_pricing",
]

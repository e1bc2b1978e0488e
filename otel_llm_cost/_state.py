"""Process-wide state shared by the wrappers: the settings and the budget hook.

Kept in one small module so instrumentors, `configure()` and the auto-instrument hook agree on one
instance, whatever order they load in.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from otel_llm_cost.config import Settings

if TYPE_CHECKING:
    from otel_llm_cost.pricing import Cost


class Call(Protocol):
    """A call as a budget hook sees it (`instrumentation._call.LLMCall`): declared here, not imported,
    so that the lifecycle depends on this module and never the other way round."""

    request: Any
    session: Any
    span: Any
    reservation: Any


class BudgetHook(Protocol):
    """The seam between the call lifecycle and budgets: reserve before sending, settle after."""

    def reserve(self, call: Call) -> None:
        """Hold the worst-case cost of `call`, or raise `BudgetExceededError` so it is never sent."""

    def settle(self, call: Call, cost: Cost | None, failed: bool) -> None:
        """Replace the reservation by the actual cost (or release it when the call failed)."""

    def headroom(self, session: Any) -> Decimal | None:
        """The most the current session may still spend (the least any applicable budget has left), or
        None when no budget applies: for SDKs that take a spending cap of their own."""


class NoBudget:
    """No budget configured: nothing to reserve or settle."""

    def reserve(self, call: Call) -> None:
        return None

    def settle(self, call: Call, cost: Cost | None, failed: bool) -> None:
        return None

    def headroom(self, session: Any) -> Decimal | None:
        return None


_lock = threading.Lock()
_settings: Settings | None = None
_budget_hook: BudgetHook = NoBudget()
instrumented_sdks: set[str] = set()
"""The SDKs an instrumentor of ours currently patches: an empty set means no call can be checked."""


def settings() -> Settings:
    """The active settings; read from the environment on first use (a bad value raises here)."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings.from_env()
    return _settings


def set_settings(value: Settings) -> None:
    global _settings
    with _lock:
        _settings = value


def budget_hook() -> BudgetHook:
    return _budget_hook


def set_budget_hook(hook: BudgetHook | None) -> None:
    global _budget_hook
    _budget_hook = hook if hook is not None else NoBudget()

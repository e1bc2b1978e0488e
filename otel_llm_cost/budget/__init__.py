"""Budgets: limits on spend per scope and calendar window, enforced before a request is sent.

`BudgetExceededError` is the one exception otel-llm-cost raises into a host app on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from otel_llm_cost._money import usd

__all__ = [
    "Budget", "BudgetStatus", "BudgetExceededError", "BudgetStoreUnavailableError", "BudgetError", "SCOPES", "WINDOWS",
    "POLICIES",
]

SCOPES: Final = ("global", "session", "user", "tag", "job")
WINDOWS: Final = ("total", "hour", "day", "week", "month")
POLICIES: Final = ("raise", "warn", "respond", "fallback")
"""What happens to a call that would pass a budget: refused with `BudgetExceededError` (`raise`), sent and
marked (`warn`), answered with a refusal message in the SDK's own response type and never sent
(`respond`), or sent with a cheaper model whose worst case fits (`fallback`, else refused as `raise`)."""


class BudgetError(ValueError):
    """A budget definition is invalid; the message names the budget and the bad value."""


class BudgetExceededError(RuntimeError):
    """A call was refused before it was sent, because it could pass a budget.

    Carries the budget's name, its limit, its settled spend (`spent`), what other calls in flight hold
    (`held`) and the worst-case cost of the refused call (`estimate`), all in USD.
    """

    policy: str = "raise"
    """`respond` when the app is to get a refusal message as the model's answer instead of this error."""
    window: str = "total"
    held: Decimal = Decimal(0)

    def __init__(
        self, budget: str, limit: Decimal, spent: Decimal, estimate: Decimal, *, key: str | None = None,
        policy: str = "raise", window: str = "total", held: Decimal = Decimal(0),
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.held = held
        self.estimate = estimate
        self.key = key
        self.policy = policy
        self.window = window
        super().__init__(refusal_message(budget, key, limit, spent, held, estimate))


def refusal_message(budget: str, key: str | None, limit: Decimal, spent: Decimal, held: Decimal,
                    estimate: Decimal) -> str:
    """What is true at the refusal: settled spend, then holds of calls in flight, then this call's worst
    case; or, when the limit is below this call's worst case alone, that."""
    scope = f" for {key!r}" if key else ""
    if estimate > limit:
        return (f"budget {budget!r}{scope} would be exceeded: limit ${usd(limit)}, this call alone needs up to "
                f"${usd(estimate)}")
    in_flight = f", held by calls in flight ${usd(held)}" if held else ""
    return (f"budget {budget!r}{scope} would be exceeded: limit ${usd(limit)}, spent ${usd(spent)}{in_flight}, "
            f"this call up to ${usd(estimate)}")


class BudgetStoreUnavailableError(BudgetExceededError):
    """A call was refused before it was sent because the shared budget store could not be reached and
    OTEL_LLM_COST_BUDGET_STORE_FAILURE is `refuse`. A `BudgetExceededError`, so one `except` covers both."""

    def __init__(self, budget: str, limit: Decimal, estimate: Decimal, reason: str) -> None:
        RuntimeError.__init__(
            self, f"budget {budget!r} cannot be checked: the budget store is unreachable ({reason}); "
                  f"calls are refused until it is back (OTEL_LLM_COST_BUDGET_STORE_FAILURE=refuse)")
        self.budget, self.limit, self.spent, self.estimate, self.key = budget, limit, Decimal(0), estimate, None
        self.held, self.policy, self.window = Decimal(0), "raise", "total"


@dataclass(frozen=True, slots=True)
class Budget:
    """A limit in USD. `scope="tag"` needs `tag`: each value of that tag gets the limit."""

    name: str
    limit: Decimal
    scope: str = "global"
    window: str = "total"
    on_exceed: str = "raise"
    tag: str | None = None
    key: str | None = None
    """When set, the budget covers this one key of its scope only (one run of a job), not each key."""

    @classmethod
    def create(
        cls,
        limit: object,
        *,
        name: str | None = None,
        scope: str = "global",
        window: str = "total",
        on_exceed: str = "raise",
        tag: str | None = None,
        key: str | None = None,
        where: str = "set_budget",
    ) -> Budget:
        """Validate every field; a bad one raises `BudgetError` naming the budget and the value."""
        label = name or (f"{scope}:{tag}" if scope == "tag" else scope) + (f"/{window}" if window != "total" else "")
        prefix = f"{where}: budget {label!r}"
        amount = _parse_limit(prefix, limit)
        if scope not in SCOPES:
            raise BudgetError(f"{prefix}: scope={scope!r} is not one of {', '.join(SCOPES)}")
        if window not in WINDOWS:
            raise BudgetError(f"{prefix}: window={window!r} is not one of {', '.join(WINDOWS)}")
        if on_exceed not in POLICIES:
            raise BudgetError(f"{prefix}: on_exceed={on_exceed!r} is not one of {', '.join(POLICIES)}")
        if scope == "tag" and not tag:
            raise BudgetError(f"{prefix}: scope='tag' needs tag=<tag name>, e.g. tag='feature'")
        if scope != "tag" and tag is not None:
            raise BudgetError(f"{prefix}: tag={tag!r} is only for scope='tag'")
        return cls(name=label, limit=amount, scope=scope, window=window, on_exceed=on_exceed, tag=tag, key=key)


def _parse_limit(prefix: str, limit: object) -> Decimal:
    if isinstance(limit, bool):
        raise BudgetError(f"{prefix}: limit={limit!r} is not a number of US dollars")
    if isinstance(limit, float) and not math.isfinite(limit):
        raise BudgetError(f"{prefix}: limit={limit!r} must be a finite number")
    try:
        amount = Decimal(str(limit)) if isinstance(limit, (int, float, str)) else limit
    except InvalidOperation:
        raise BudgetError(f"{prefix}: limit={limit!r} is not a number of US dollars") from None
    if not isinstance(amount, Decimal):
        raise BudgetError(f"{prefix}: limit={limit!r} is not a number of US dollars")
    if not amount.is_finite():
        raise BudgetError(f"{prefix}: limit={limit!r} must be a finite number")
    if amount < 0:
        raise BudgetError(f"{prefix}: limit={limit!r} must not be negative")
    return amount


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where a budget stands. For a per-key scope, `key` names the key (or the worst one)."""

    name: str
    scope: str
    window: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    key: str | None = None
    exhausted_keys: int = 0
    stale: bool = False
    """True when the budget store was unreachable: the figures are the last known, plus spend queued since."""

    def __repr__(self) -> str:
        key = f", key={self.key!r}" if self.key else ""
        stale = ", stale=True" if self.stale else ""
        return (f"BudgetStatus(name={self.name!r}{key}, limit=${usd(self.limit)}, spent=${usd(self.spent)}, "
                f"reserved=${usd(self.reserved)}, remaining=${usd(self.remaining)}, "
                f"utilization={self.utilization:.1%}{stale})")

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent - self.reserved)

    @property
    def utilization(self) -> float:
        if self.limit == 0:
            return 1.0 if self.spent > 0 else 0.0
        return float((self.spent + self.reserved) / self.limit)

    @property
    def exhausted(self) -> bool:
        return self.spent + self.reserved >= self.limit

    @property
    def level(self) -> str:
        """`ok` below 50% of the limit, `warn` below 90%, `high` below 100%, then `exhausted`."""
        if self.exhausted:
            return "exhausted"
        used = self.utilization
        return "ok" if used < 0.5 else "warn" if used < 0.9 else "high"

    def __str__(self) -> str:
        """One line for a status bar: `[Cost: $0.41 of $1.00 (41%) OK]`."""
        places = "0.01" if self.limit >= 1 else "0.0001"  # cents hide a sub-dollar budget's movement
        spent = (self.spent + self.reserved).quantize(Decimal(places))
        return f"[Cost: ${spent} of ${self.limit.quantize(Decimal(places))} ({self.utilization:.0%}) {self.level.upper()}]"

"""Budgets: the one exception otel-llm-cost raises into a host app on purpose."""

from __future__ import annotations

from decimal import Decimal


class BudgetExceededError(RuntimeError):
    """A call was refused before it was sent, because it could pass a budget.

    Carries the budget's name, its limit, what is spent (including reservations in flight) and the
    estimated cost of the refused call, all in USD.
    """

    def __init__(self, budget: str, limit: Decimal, spent: Decimal, estimate: Decimal, *, key: str | None = None) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.estimate = estimate
        self.key = key
        scope = f" for {key!r}" if key else ""
        super().__init__(
            f"budget {budget!r}{scope} would be exceeded: limit ${limit}, spent ${spent}, this call up to ${estimate}"
        )

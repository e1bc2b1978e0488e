"""`BudgetGuard`: reserve the worst-case cost before a request is sent, settle with the actual cost.

The reservation is the estimate of `estimate.py`: an upper bound on input tokens plus all of
`max_tokens` (or the default output tokens) at the output rate. With `max_tokens` given and an
ordinary prompt, the actual cost never exceeds the reservation, and the store's atomic
check-and-reserve makes sure the sum of reservations never passes a limit: no budget is overspent,
however many threads, tasks or processes race for it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from otel_llm_cost import attributes as attr
from otel_llm_cost._log import exception_once, warn_once
from otel_llm_cost.budget import Budget, BudgetExceededError, BudgetStatus, BudgetStoreUnavailableError
from otel_llm_cost.budget.leases import leased
from otel_llm_cost.budget.outage import buffered
from otel_llm_cost.budget.stores import BudgetStore, Claim, MemoryStore, Refusal, Reservation, StoreUnavailable
from otel_llm_cost.budget.thresholds import Thresholds
from otel_llm_cost.pricing import Cost, PriceBook, default_price_book

if TYPE_CHECKING:
    from otel_llm_cost.context import SessionContext
    from otel_llm_cost.instrumentation._call import LLMCall

__all__ = ["BudgetGuard", "window_id", "budget_slot", "fallback_chain"]

_logger = logging.getLogger(__name__)
ZERO = Decimal(0)


def window_id(window: str, now: datetime) -> str:
    """The calendar window (UTC) that `now` falls in; a new id starts a new, empty window."""
    now = now.astimezone(UTC)
    if window == "hour":
        return now.strftime("%Y-%m-%dT%H")
    if window == "day":
        return now.strftime("%Y-%m-%d")
    if window == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    if window == "month":
        return now.strftime("%Y-%m")
    return "total"


def budget_key(budget: Budget, session: SessionContext | None) -> str | None:
    """Which key of `budget` a call in `session` counts against; None when it does not apply."""
    if budget.scope == "global":
        return ""
    if session is None:
        return None
    if budget.scope == "session":
        key = session.session_id
    elif budget.scope == "user":
        key = session.user_id
    elif budget.scope == "job":  # one run's budget: it covers the calls of every job nested in that run
        return budget.key if budget.key is not None and budget.key in session.job_runs else None
    else:
        key = session.tags.get(budget.tag or "")
    return None if budget.key is not None and key != budget.key else key


def fallback_chain(model: str, cheaper: dict[str, str]) -> list[str]:
    """The cheaper models to try for `model`, in order (`gpt-4o=gpt-4o-mini,gpt-4o-mini=gpt-4.1-nano`)."""
    chain: list[str] = []
    while (model := cheaper.get(model, "")) and model not in chain:
        chain.append(model)
    return chain


def budget_slot(budget: Budget) -> str:
    """Where the guard keeps `budget`: its name, or for a budget of one key (one run of a job) its name
    and key, so two runs of a job with the same name each keep their own budget."""
    return budget.name if budget.key is None else f"{budget.name}#{budget.key}"


@dataclass(frozen=True, slots=True)
class Hold:
    """What a call holds: its reservations and the amount each holds."""

    reservations: tuple[Reservation, ...]
    amount: Decimal
    priced: bool = True
    """False for a call whose worst case has no price: it holds a token amount, so that a spent budget
    refuses it too and what it turns out to cost (a cost the provider reports) still counts."""


_UNPRICED_HOLD = Decimal("1e-12")
"""What a call whose worst case has no price holds: nothing to speak of, but not nothing, so that a
budget with no room left refuses it."""


class BudgetGuard:
    """The budget hook of the call lifecycle (see `_state.BudgetHook`)."""

    def __init__(
        self,
        store: BudgetStore | None = None,
        *,
        default_output_tokens: int = 1024,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        price_book: PriceBook | None = None,
        on_store_failure: str = "allow",
        fallback_models: Iterable[tuple[str, str]] = (),
        lease: bool = False,
    ) -> None:
        self.store: BudgetStore = leased(buffered(store or MemoryStore(), on_store_failure), lease)
        self.default_output_tokens = default_output_tokens
        self.clock = clock
        self.price_book = price_book
        self.fallback_models: dict[str, str] = dict(fallback_models)
        """model -> cheaper model (OTEL_LLM_COST_FALLBACK_MODELS), for budgets whose policy is `fallback`."""
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()
        self.blocked: Counter[str] = Counter()
        self.thresholds = Thresholds()
        self.unpriced_calls = 0

    # --- configuration ---
    def set(self, budget: Budget) -> Budget:
        with self._lock:
            self._budgets = {**self._budgets, budget_slot(budget): budget}
        return budget

    def remove(self, name: str | None = None) -> None:
        """Remove the budget kept under `name` (see `budget_slot`), or every budget."""
        with self._lock:
            if name is None:
                self._budgets = {}
            else:
                self._budgets = {k: v for k, v in self._budgets.items() if k != name}

    def clear(self, name: str | None = None) -> None:
        """Remove a budget (or all) with its spend and its threshold claims, in the store and here."""
        self.remove(name)
        self.store.clear(name)
        self.thresholds.forget(name)

    @property
    def budgets(self) -> dict[str, Budget]:
        return self._budgets

    # --- the hook ---
    def reserve(self, call: LLMCall) -> None:
        """Hold the call's worst case against every budget that applies, or refuse it as the refusing
        budget's policy says: raise, respond (the error says so), or fall back to a cheaper model."""
        budgets = self._budgets
        if not budgets:
            return
        applicable = [(b, key) for b in budgets.values() if (key := budget_key(b, call.session)) is not None]
        if not applicable:
            return
        request = call.request
        names = ",".join(b.name for b, _ in applicable)
        amount = self._worst_cost(request, request.model)
        priced = amount is not None
        if amount is None:
            self.unpriced_calls += 1
            warn_once(_logger, ("unpriced-budget", request.model),
                      "otel-llm-cost: no price for model %r; budgets %s are best-effort for it "
                      "(set one with set_pricing)", request.model, names)
            amount = _UNPRICED_HOLD
        now = self.clock()
        result = self._claim(applicable, amount, now)
        if isinstance(result, Refusal):
            refusing = next(b for b, _ in applicable if b.name == result.claim.budget)
            if refusing.on_exceed == "fallback" and self._fall_back(call, applicable, now):
                return
            self._refused(result, refusing, call)
            raise BudgetExceededError(result.claim.budget, result.claim.limit or ZERO, result.spent,
                                      amount if priced else ZERO, key=result.claim.key or None, window=refusing.window,
                                      policy="respond" if refusing.on_exceed == "respond" else "raise",
                                      held=result.reserved)
        call.reservation = Hold(tuple(result), amount, priced)
        outcome = "warned" if self._warned(applicable, now) else "allowed"
        call.span.set_attributes({attr.LLM_COST_BUDGET_NAME: names, attr.LLM_COST_BUDGET_OUTCOME: outcome})

    def _worst_cost(self, request: Any, model: str | None) -> Decimal | None:
        worst = request.worst_case(self.default_output_tokens)
        cost = (self.price_book or default_price_book()).compute_cost(
            request.provider, model or "", worst, service_tier=request.service_tier, batch=request.batch,
            regional=request.regional)
        return None if cost is None else cost.total

    def _claim(self, applicable: list[tuple[Budget, str]], amount: Decimal, now: datetime) -> Any:
        """Reserve `amount` against each budget at once (strictly where the policy refuses), or a Refusal."""
        claims = [Claim(b.name, key, window_id(b.window, now), amount, b.limit if b.on_exceed != "warn" else None)
                  for b, key in applicable]
        try:
            return self.store.reserve(claims)
        except StoreUnavailable as error:  # only under the `refuse` failure policy
            budget = next((b for b, _ in applicable if b.on_exceed != "warn"), applicable[0][0])
            self.blocked[budget.name] += 1
            raise BudgetStoreUnavailableError(budget.name, budget.limit, amount, str(error)) from None

    def _fall_back(self, call: LLMCall, applicable: list[tuple[Budget, str]], now: datetime) -> bool:
        """Try each cheaper model of the call's chain in turn; the first whose worst case fits is reserved
        (as strictly as any call) and sent. False when none fits, or the request's model cannot change."""
        request = call.request
        asked = request.model or ""
        for model in fallback_chain(asked, self.fallback_models):
            amount = self._worst_cost(request, model)
            if amount is None:
                continue  # an unpriced model can never be shown to fit
            result = self._claim(applicable, amount, now)
            if isinstance(result, Refusal):
                continue
            if not request.use_model(model):
                self.store.settle(result, ZERO)
                return False
            call.reservation = Hold(tuple(result), amount)
            call.span.update_name(f"{request.operation} {model}")
            call.span.set_attributes({attr.LLM_COST_BUDGET_NAME: ",".join(b.name for b, _ in applicable),
                                      attr.LLM_COST_BUDGET_OUTCOME: "fallback", attr.GEN_AI_REQUEST_MODEL: model,
                                      attr.LLM_COST_BUDGET_FALLBACK_FROM: asked})
            return True
        return False

    def admit(self, amount: Decimal, session: SessionContext | None) -> None:
        """Refuse work whose worst case `amount` would pass a budget (a provider batch being created):
        raises `BudgetExceededError` before it is sent. Nothing stays held: its results are charged as
        they are read."""
        applicable = [(b, key) for b in self._budgets.values() if (key := budget_key(b, session)) is not None]
        if not applicable or not amount:
            return
        result = self._claim(applicable, amount, self.clock())
        if isinstance(result, Refusal):
            refusing = next(b for b, _ in applicable if b.name == result.claim.budget)
            self._refused(result, refusing, None)
            raise BudgetExceededError(result.claim.budget, result.claim.limit or ZERO, result.spent, amount,
                                      key=result.claim.key or None, window=refusing.window, held=result.reserved)
        self.store.settle(result, ZERO)

    def _refused(self, refusal: Refusal, budget: Budget, call: LLMCall | None) -> None:
        """Count a refusal; it is where a strict budget reaches its `1.0` threshold (its spend never does)."""
        self.blocked[refusal.claim.budget] += 1
        if self.thresholds.active:
            try:
                crossed = self.thresholds.reached_by_refusal(self.store, budget, refusal.claim.key,
                                                             refusal.claim.window, self._status_of)
                if call is not None:
                    self._events(call, crossed)
            except Exception:
                exception_once(_logger, "budget-thresholds", "otel-llm-cost: could not check budget thresholds")

    def _warned(self, applicable: list[tuple[Budget, str]], now: datetime) -> bool:
        warned = False
        for budget, key in applicable:
            if budget.on_exceed != "warn":
                continue
            window = window_id(budget.window, now)
            spent, reserved = self.store.usage(budget.name, key, window)
            if spent + reserved > budget.limit:
                warned = True
                warn_once(_logger, ("budget-warn", budget.name, window),
                          "otel-llm-cost: budget %r%s is over its limit of $%s (spent and reserved: $%s)",
                          budget.name, f" for {key!r}" if key else "", budget.limit, spent + reserved)
        return warned

    def settle(self, call: LLMCall, cost: Cost | None, failed: bool) -> None:
        hold = call.reservation
        if not isinstance(hold, Hold):
            return
        call.reservation = None
        if cost is not None:
            actual = cost.total
        elif failed:
            actual = ZERO  # nothing billed for a call that failed before a response
        elif hold.priced:
            actual = hold.amount  # billed, price unknown: keep the estimate, the conservative choice
        else:
            actual = ZERO  # no price before or after: nothing to count
        self.store.settle(hold.reservations, actual)
        if self.thresholds.active and actual:
            self._crossings(call, hold)

    def _crossings(self, call: LLMCall, hold: Hold) -> None:
        """Thresholds this call's spend made a budget reach: an event on its span; callbacks notified."""
        try:
            # this process's spend goes to the store before it looks: a process that checks after it then
            # sees it, so a crossing made by calls in several processes is seen by one of them
            self.flush()
            self._events(call, self.thresholds.check(self.store, self._budgets, hold.reservations, self._status_of))
        except Exception:
            exception_once(_logger, "budget-thresholds", "otel-llm-cost: could not check budget thresholds")

    @staticmethod
    def _events(call: LLMCall, crossed: list[tuple[BudgetStatus, float]]) -> None:
        for status, level in crossed:
            call.span.add_event(attr.LLM_COST_BUDGET_THRESHOLD_EVENT, {
                attr.LLM_COST_BUDGET_NAME: status.name, "llm_cost.budget.threshold": level,
                "llm_cost.budget.utilization": status.utilization, "llm_cost.budget.level": status.level})

    def record_unreserved(self, cost: Decimal, session: SessionContext | None) -> None:
        """Spend seen only afterwards (another instrumentation's call): count it against the budgets."""
        now = self.clock()
        for budget in self._budgets.values():
            key = budget_key(budget, session)
            if key is not None:
                self.store.add(budget.name, key, window_id(budget.window, now), cost)

    def headroom(self, session: SessionContext | None) -> Decimal | None:
        """What the tightest applicable budget has left (limit - spent - reserved, never below 0), read
        from the store: the cap handed to an SDK that enforces one itself (claude-agent-sdk)."""
        budgets = self._budgets
        if not budgets:
            return None
        window_now = self.clock()
        left = None
        for budget in budgets.values():
            key = budget_key(budget, session)
            if key is None:
                continue
            spent, reserved = self.store.usage(budget.name, key, window_id(budget.window, window_now))
            remaining = max(ZERO, budget.limit - spent - reserved)
            left = remaining if left is None else min(left, remaining)
        return left

    # --- reading ---
    def status(self, name: str | None = None, key: str | None = None) -> BudgetStatus | None:
        budgets = self._budgets
        if not budgets:
            return None
        budget = (budgets.get(name) or next((b for b in budgets.values() if b.name == name), None)) if name \
            else next(iter(budgets.values()))
        if budget is None:
            raise KeyError(f"no budget named {name!r}; budgets: {sorted(b.name for b in budgets.values())}")
        return self._status_of(budget, key)

    def _status_of(self, budget: Budget, key: str | None = None) -> BudgetStatus:
        window = window_id(budget.window, self.clock())
        key = key if key is not None else budget.key
        if budget.scope == "global" or key is not None:
            spent, reserved = self.store.usage(budget.name, key or "", window)
            return BudgetStatus(budget.name, budget.scope, budget.window, budget.limit, spent, reserved, key,
                                stale=self.stale)
        return self._worst_key(budget, window)

    @property
    def stale(self) -> bool:
        """True while a shared store is unreachable (statuses are then the last known state)."""
        return bool(getattr(self.store, "stale", False))

    def flush(self) -> bool:
        """Apply spend queued during a store outage; True when nothing is left queued."""
        flush = getattr(self.store, "flush", None)
        return flush() if flush is not None else True

    def _worst_key(self, budget: Budget, window: str) -> BudgetStatus:
        """A per-key budget seen whole: its worst key, and how many keys are exhausted."""
        keys = self.store.keys(budget.name, window)
        exhausted = sum(1 for _, s, r in keys if s + r >= budget.limit)
        if not keys:
            return BudgetStatus(budget.name, budget.scope, budget.window, budget.limit, ZERO, ZERO, stale=self.stale)
        key, spent, reserved = max(keys, key=lambda k: (k[1] + k[2], k[0]))
        return BudgetStatus(budget.name, budget.scope, budget.window, budget.limit, spent, reserved, key, exhausted,
                            stale=self.stale)

    def statuses(self) -> Iterable[BudgetStatus]:
        for budget in list(self._budgets.values()):
            yield self._status_of(budget)

    def reset(self) -> None:
        self.store.clear()
        self.blocked.clear()
        self.unpriced_calls = 0

    def describe(self) -> dict[str, Any]:
        return {name: {"scope": b.scope, "window": b.window, "limit": str(b.limit), "on_exceed": b.on_exceed}
                for name, b in self._budgets.items()}

"""`OutageBuffer`: a shared budget store (Redis, SQLite) seen through an outage.

While the store is unreachable:

* reads (`usage`, `keys`) answer from the last state seen, plus the spend queued since, and the
  buffer reports itself `stale`, so `budget_remaining()` and the gauges never raise into the app;
* writes (`settle`, `add`) are queued, bounded, each with an operation id, and replayed when the
  store answers again; the store applies each id at most once, so a write is counted exactly once
  even when the connection dropped while it was being applied;
* a reservation follows the failure policy: `allow` lets the call go ahead holding nothing (its spend
  is queued when it settles), `refuse` raises `StoreUnavailable` for the guard to refuse the call.

The outage is logged when it starts and when it ends, one line each, every time.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import Incident
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation, StoreUnavailable

__all__ = ["OutageBuffer", "FAILURE_POLICIES"]

_logger = logging.getLogger("otel_llm_cost.budget")
ZERO = Decimal(0)
FAILURE_POLICIES: Final = ("allow", "refuse")

Slot = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _Write:
    """A settle (reservations released, `amount` added to their slots) or an add (one slot)."""

    op_id: str
    slots: tuple[Slot, ...]
    amount: Decimal
    reservations: tuple[Reservation, ...] = ()

    def apply(self, store: BudgetStore) -> None:
        if self.reservations:
            store.settle(self.reservations, self.amount, op_id=self.op_id)
        else:
            budget, key, window = self.slots[0]
            store.add(budget, key, window, self.amount, op_id=self.op_id)


class OutageBuffer:
    """Wraps a `BudgetStore` that can be unreachable; itself a `BudgetStore`."""

    def __init__(self, store: BudgetStore, *, on_failure: str = "allow", max_pending: int = 100_000,
                 max_remembered: int = 10_000, what: str = "budget store") -> None:
        if on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure={on_failure!r} is not one of {', '.join(FAILURE_POLICIES)}")
        self.store = store
        self.on_failure = on_failure
        self._pending: deque[_Write] = deque()
        self._max_pending = max_pending
        self._last: Bounded[Slot, tuple[Decimal, Decimal]] = Bounded(max_remembered)
        self._last_keys: Bounded[tuple[str, str], list[tuple[str, Decimal, Decimal]]] = Bounded(max_remembered)
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self.dropped = 0
        """Writes lost because the queue was full (each logged as part of its outage)."""
        self.incident = Incident(_logger, what)

    @property
    def stale(self) -> bool:
        """True while the store is unreachable: what it reports is the last state seen."""
        return self.incident.ongoing

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- the store protocol ---
    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        try:
            self._replay()
            result = self.store.reserve(claims)
        except StoreUnavailable as error:
            self._failed(error)
            if self.on_failure == "refuse":
                raise
            # allowed, holding nothing: an empty id releases nothing when settled, and adds the spend
            return [Reservation("", c.budget, c.key, c.window, c.amount) for c in claims]
        self.incident.recovered(self._recovery_detail())
        return result

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        slots = tuple((r.budget, r.key, r.window) for r in reservations)
        self._write(_Write(op_id or uuid.uuid4().hex, slots, actual, tuple(reservations)))

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self._write(_Write(op_id or uuid.uuid4().hex, ((budget, key, window),), amount))

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        slot = (budget, key, window)
        try:
            self._replay()
            value = self.store.usage(budget, key, window)
        except StoreUnavailable as error:
            self._failed(error)
            spent, reserved = self._last.get(slot, (ZERO, ZERO))
            return spent + self._queued(slot), reserved
        self.incident.recovered(self._recovery_detail())
        self._remember(self._last, slot, value)
        return value

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        try:
            self._replay()
            value = self.store.keys(budget, window)
        except StoreUnavailable as error:
            self._failed(error)
            known = {key: (spent, reserved) for key, spent, reserved in self._last_keys.get((budget, window), [])}
            for write in list(self._pending):
                for slot in write.slots:
                    if slot[0] == budget and slot[2] == window:
                        spent, reserved = known.get(slot[1], (ZERO, ZERO))
                        known[slot[1]] = (spent + write.amount, reserved)
            return [(key, spent, reserved) for key, (spent, reserved) in known.items()]
        self.incident.recovered(self._recovery_detail())
        self._remember(self._last_keys, (budget, window), value)
        return value

    def clear(self, budget: str | None = None) -> None:
        with self._lock:
            if budget is None:
                self._pending.clear()
                self._last.clear()
                self._last_keys.clear()
            else:
                self._pending = deque(w for w in self._pending if all(s[0] != budget for s in w.slots))
                for table in (self._last, self._last_keys):
                    for slot in [s for s in table if s[0] == budget]:
                        del table[slot]
        self.store.clear(budget)

    def flush(self) -> bool:
        """Replay queued writes now; True when none is left (at shutdown, and in tests)."""
        if not self._pending:
            return True
        try:
            self._replay()
        except StoreUnavailable as error:
            self._failed(error)
            return False
        self.incident.recovered(self._recovery_detail())
        return not self._pending

    # --- the outage ---
    def _write(self, write: _Write) -> None:
        try:
            self._replay()
            write.apply(self.store)
        except StoreUnavailable as error:
            self._failed(error)
            self._enqueue(write)
            return
        self.incident.recovered(self._recovery_detail())

    def _enqueue(self, write: _Write) -> None:
        with self._lock:
            if len(self._pending) < self._max_pending:
                self._pending.append(write)
                return
            self.dropped += 1
            first_drop = self.dropped == 1
        if first_drop:
            _logger.warning("otel-llm-cost: budget store outage queue is full (%d writes); later spend is "
                            "not counted until the store is back", self._max_pending)

    def _replay(self) -> None:
        """Apply queued writes, oldest first; stops (raising) at the first that cannot be applied."""
        if not self._pending:
            return
        with self._replay_lock:
            while self._pending:
                write = self._pending[0]
                write.apply(self.store)  # StoreUnavailable propagates; the write stays queued
                with self._lock:
                    if self._pending and self._pending[0] is write:
                        self._pending.popleft()

    def _queued(self, slot: Slot) -> Decimal:
        return sum((w.amount for w in list(self._pending) if slot in w.slots), ZERO)

    def _failed(self, error: StoreUnavailable) -> None:
        consequence = ("calls are allowed and their spend is queued until it is back" if self.on_failure == "allow"
                       else "calls that a budget covers are refused until it is back")
        self.incident.failed(error, consequence)

    def _recovery_detail(self) -> str:
        dropped = f", {self.dropped} lost to a full queue" if self.dropped else ""
        return f"queued spend applied{dropped}"

    def _remember(self, table: Bounded, key: object, value: object) -> None:  # type: ignore[type-arg]
        with self._lock:
            table.put(key, value, refresh=True)


def buffered(store: BudgetStore, on_failure: str) -> BudgetStore:
    """The store as the guard should use it: a store that lives in this process cannot have an outage."""
    from otel_llm_cost.budget.stores import MemoryStore

    return store if isinstance(store, MemoryStore) else OutageBuffer(store, on_failure=on_failure)


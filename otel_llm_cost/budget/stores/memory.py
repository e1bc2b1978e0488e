"""`MemoryStore`: budgets kept in one process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from otel_llm_cost.budget.stores._base import (
    ZERO, Claim, Refusal, Reservation, Slot, Write, WritesInBatches, belongs_to, new_id,
)

__all__ = ["MemoryStore"]


class MemoryStore(WritesInBatches):
    """One process. A lock makes check-and-reserve atomic across threads and asyncio tasks. Each slot keeps
    the sum it holds, so a check costs the same however many reservations are in flight; with one `ttl`
    and a monotonic clock, reservations expire in the order they were made (a dict's order). Writes are
    applied in the call: there is nothing to gain by queueing them."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 200_000):
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._spent: dict[Slot, Decimal] = {}
        self._held: dict[Slot, dict[str, tuple[Decimal, float]]] = {}
        self._held_sum: dict[Slot, Decimal] = {}

    def quantize(self, amount: Decimal) -> Decimal:
        return amount

    def _reserved(self, slot: Slot, now: float) -> Decimal:
        held = self._held.get(slot)
        if not held:
            return ZERO
        while held:
            rid, (amount, expires) = next(iter(held.items()))
            if expires > now:
                break
            del held[rid]
            self._held_sum[slot] -= amount
        if not held:
            del self._held[slot]
            del self._held_sum[slot]
            return ZERO
        return self._held_sum[slot]

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        now = self._clock()
        with self._lock:
            for claim in claims:
                if claim.limit is None:
                    continue
                slot = (claim.budget, claim.key, claim.window)
                spent, reserved = self._spent.get(slot, ZERO), self._reserved(slot, now)
                if spent + reserved - claim.credit + claim.amount > claim.limit:
                    return Refusal(claim, spent, reserved)
            reservations = []
            for claim in claims:
                rid = new_id()
                slot = (claim.budget, claim.key, claim.window)
                self._held.setdefault(slot, {})[rid] = (claim.amount, now + self.ttl)
                self._held_sum[slot] = self._held_sum.get(slot, ZERO) + claim.amount
                reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
            return reservations

    def apply_writes(self, writes: Sequence[Write]) -> None:
        with self._lock:
            for write in writes:
                for r in write.reservations:
                    slot = (r.budget, r.key, r.window)
                    held = self._held.get(slot)
                    if held is not None and held.pop(r.id, None) is not None:
                        if held:
                            self._held_sum[slot] -= r.amount
                        else:
                            del self._held[slot]
                            del self._held_sum[slot]
                if write.amount:
                    for slot in write.added_to():
                        self._spent[slot] = self._spent.get(slot, ZERO) + write.amount
            self._prune()

    def _prune(self) -> None:
        """Per-session keys are unbounded: drop the oldest idle entries beyond the cap."""
        excess = len(self._spent) - self._max_entries
        if excess > 0:
            for slot in [s for s in self._spent if s not in self._held][:excess]:
                del self._spent[slot]

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        slot = (budget, key, window)
        with self._lock:
            return self._spent.get(slot, ZERO), self._reserved(slot, self._clock())

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        now = self._clock()
        with self._lock:
            slots = {s for s in self._spent if s[0] == budget and s[2] == window}
            slots |= {s for s in self._held if s[0] == budget and s[2] == window}
            return [(s[1], self._spent.get(s, ZERO), self._reserved(s, now)) for s in slots]

    def clear(self, budget: str | None = None) -> None:
        with self._lock:
            if budget is None:
                self._spent.clear()
                self._held.clear()
                self._held_sum.clear()
                return
            for table in (self._spent, self._held, self._held_sum):
                for slot in [s for s in table if belongs_to(s[0], budget)]:
                    del table[slot]

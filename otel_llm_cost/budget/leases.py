"""Budget leases: far from its limit, a budget costs a call no round trip to a shared store.

A process leases a slice of what a budget has left, held in the store as one reservation of its own,
and admits calls against it in memory. The idea is quota leasing as in Google's Doorman: a client holds
capacity granted for a while, asks again when it runs low, and gives back what it does not use.

- **Taking a slice** (`_sync`) is the only time a call waits on the store: the old lease is settled
  (its calls' spend added, its hold released; queued, and netted out at once by `OutageBuffer`), what
  the budget has left is read, and one reservation is made of the calls still in flight on the lease,
  this call, and a slice: `LEASE_CALLS` of this call's worst case, at most `LEASE_SHARE` of what is
  left after that. Far from the limit that is one read and one reservation per 64 calls; near it the
  slice shrinks to nothing and every call reserves in the store, as without leases.
- **Strict** across processes and hosts: a lease is a reservation, and no call is admitted beyond it.
- **Never a refusal that could be avoided**: a call the lease cannot hold takes a new slice, for which
  the process's own unused lease has just been given back, so a call is refused only when neither its
  lease nor the store's unleased remainder has room for it.
- **What leases can make unusable**: the slices other processes hold and do not use, each at most
  `LEASE_SHARE` of what was unleased when it was taken, until that process's next call takes a new
  slice, it is idle for `IDLE_RETURN` seconds, or it exits. A killed process's lease lapses after the
  store's reservation TTL, as any reservation does; a live one is renewed before half of it passes.

Reads (`usage`, `keys`) answer as if every leased call had settled in the store: the lease's unused part
is not counted as held, its calls' spend is counted as spent.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from otel_llm_cost._process import at_multiprocessing_exit
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation, Write
from otel_llm_cost.budget.stores._base import THRESHOLD_MARK, ZERO, Slot, belongs_to

__all__ = ["LeasedStore", "leased", "LEASE_CALLS", "LEASE_SHARE", "IDLE_RETURN", "release_all_leases"]

LEASE_CALLS: Final = 64
"""A slice holds at most this many of the call's worst case: one store round trip per 64 calls."""
LEASE_SHARE: Final = Decimal("0.1")
"""...and at most this share of what the budget has unleased, so N processes leave each other room."""
IDLE_RETURN: Final = 1.0
"""Seconds without a call after which a lease goes back to the store."""
_PREFIX = "lease:"


@dataclass(slots=True)
class _Lease:
    reservation: Reservation
    """What the store holds for the lease (id '' while the store is unreachable and calls are allowed)."""
    name: str
    """This lease's own id, which its calls' reservations start with."""
    in_flight: Decimal = ZERO
    """The worst cases of the calls admitted on the lease and not yet settled."""
    spent: Decimal = ZERO
    """What those calls cost, not yet in the store (it goes there with the lease's settle)."""
    taken: float = 0.0
    used: float = 0.0

    @property
    def room(self) -> Decimal:
        return self.reservation.amount - self.in_flight - self.spent


class LeasedStore:
    """A `BudgetStore` over a shared one (through its `OutageBuffer`) that admits calls against leases."""

    def __init__(self, store: BudgetStore, *, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._renew_after = ttl / 2
        self._clock = clock
        self._leases: dict[Slot, _Lease] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._returner: threading.Thread | None = None
        self._pid = os.getpid()
        _leased_stores.add(self)
        at_multiprocessing_exit(self, "release_all", priority=11)  # before the buffer's flush (10)

    def __getattr__(self, name: str) -> Any:  # stale, flush, pending... of the store beneath
        return getattr(self.store, name)

    # --- calls ---
    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        if any(c.limit is None or THRESHOLD_MARK in c.budget for c in claims) or getattr(self.store, "stale", False):
            # `warn` budgets, threshold claims, and calls while the store is unreachable (the failure
            # policy decides them, and no lease is taken from a store that cannot hold it): as without leases
            return self.store.reserve(claims)
        now = self._clock()
        with self._lock:
            self._after_fork()
            for claim in claims:
                lease = self._leases.get((claim.budget, claim.key, claim.window))
                if lease is None or lease.room < claim.amount or now - lease.taken > self._renew_after:
                    refused = self._sync(claim, now)
                    if refused is not None:
                        return refused
            return [self._admit(claim, now) for claim in claims]

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        if not reservations or not reservations[0].id.startswith(_PREFIX):
            self.store.settle(reservations, actual, op_id)
            return
        orphaned = []
        with self._lock:
            for r in reservations:
                lease = self._leases.get((r.budget, r.key, r.window))
                if lease is not None and r.id.startswith(lease.name + "/"):
                    lease.in_flight -= r.amount
                    lease.spent += actual
                else:  # its lease went back meanwhile (cleared, or the process is exiting): spend only
                    orphaned.append(r)
        for r in orphaned:
            if actual:
                self.store.add(r.budget, r.key, r.window, actual)

    def _admit(self, claim: Claim, now: float) -> Reservation:
        lease = self._leases[(claim.budget, claim.key, claim.window)]
        lease.in_flight += claim.amount
        lease.used = now
        self._start_returner()
        return Reservation(f"{lease.name}/{next(self._ids)}", claim.budget, claim.key, claim.window, claim.amount)

    def _sync(self, claim: Claim, now: float) -> Refusal | None:
        """Give the lease back and take a new one that holds its calls in flight, this call and a slice;
        a Refusal when the budget has no room for this call (the calls in flight stay held)."""
        slot = (claim.budget, claim.key, claim.window)
        old = self._leases.pop(slot, None)
        keep = old.in_flight if old is not None else ZERO
        if old is not None:
            self.store.settle([old.reservation], old.spent)  # queued; netted out of the reads below
        spent, held = self.store.usage(*slot)
        left = (claim.limit or ZERO) - spent - held
        if keep + claim.amount > left:
            self._hold(claim, keep, old.name if old is not None else "", now)
            return Refusal(claim, spent, held + keep)
        slice_ = min(claim.amount * LEASE_CALLS, (left - keep - claim.amount) * LEASE_SHARE)
        name = old.name if old is not None else f"{_PREFIX}{next(self._ids)}"  # its calls in flight move along
        for amount in (keep + claim.amount + slice_, keep + claim.amount):  # another process may take some first
            result = self.store.reserve([replace(claim, amount=amount)])
            if not isinstance(result, Refusal):
                # an outage that began just now gives a placeholder that holds nothing: a lease of it
                # lives only until its calls are in (it admits no new call beyond this one)
                granted = result[0] if result[0].id else replace(result[0], amount=keep + claim.amount)
                self._leases[slot] = _Lease(granted, name, in_flight=keep, taken=now, used=now)
                return None
        self._hold(claim, keep, name, now)
        return Refusal(claim, spent, held + keep)

    def _hold(self, claim: Claim, keep: Decimal, name: str, now: float) -> None:
        """After a refusal, keep the calls in flight held (their lease was given back), on a lease of
        exactly them; they fit, for their old lease held them."""
        if keep > 0:
            result = self.store.reserve([replace(claim, amount=keep, limit=None)])
            if not isinstance(result, Refusal):
                self._leases[(claim.budget, claim.key, claim.window)] = _Lease(
                    result[0], name, in_flight=keep, taken=now, used=now)

    # --- giving leases back ---
    def _give_back(self, slot: Slot, lease: _Lease) -> None:
        """Settle the lease in the store with its calls' spend (queued: no round trip)."""
        self.store.settle([lease.reservation], lease.spent)

    def return_idle(self) -> None:
        """Give back every lease unused for `IDLE_RETURN` seconds with no call in flight."""
        now = self._clock()
        with self._lock:
            idle = [(slot, lease) for slot, lease in self._leases.items()
                    if lease.in_flight <= 0 and now - lease.used >= IDLE_RETURN]
            for slot, lease in idle:
                del self._leases[slot]
                self._give_back(slot, lease)

    def release_all(self) -> None:
        """At exit: every lease goes back, with its calls' spend; then the queue is applied."""
        with self._lock:
            if self._pid != os.getpid():
                return
            leases, self._leases = self._leases, {}
            for slot, lease in leases.items():
                self._give_back(slot, lease)
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            flush()

    def _start_returner(self) -> None:
        if self._returner is None:
            self._returner = threading.Thread(target=_return_loop, args=(weakref.ref(self),),
                                              name="otel-llm-cost-leases", daemon=True)
            self._returner.start()

    def _after_fork(self) -> None:
        """In a forked child, the parent's leases are the parent's."""
        if self._pid != os.getpid():
            self._pid, self._leases, self._returner = os.getpid(), {}, None

    # --- reads: as if every leased call had settled in the store ---
    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        spent, held = self.store.usage(budget, key, window)
        return self._as_settled((budget, key, window), spent, held)

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        return [(key, *self._as_settled((budget, key, window), spent, held))
                for key, spent, held in self.store.keys(budget, window)]

    def _as_settled(self, slot: Slot, spent: Decimal, held: Decimal) -> tuple[Decimal, Decimal]:
        lease = self._leases.get(slot)
        if lease is None or self._pid != os.getpid():
            return spent, held
        return spent + lease.spent, max(ZERO, held - lease.reservation.amount + lease.in_flight)

    # --- the rest of the protocol ---
    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self.store.add(budget, key, window, amount, op_id)

    def apply_writes(self, writes: Sequence[Write]) -> None:
        self.store.apply_writes(writes)

    def quantize(self, amount: Decimal) -> Decimal:
        return self.store.quantize(amount)

    def clear(self, budget: str | None = None) -> None:
        with self._lock:
            for slot in [s for s in self._leases if budget is None or belongs_to(s[0], budget)]:
                del self._leases[slot]
        self.store.clear(budget)


_leased_stores: weakref.WeakSet[LeasedStore] = weakref.WeakSet()


def _return_loop(ref: weakref.ref[LeasedStore]) -> None:
    """Give idle leases back, a few times a second; ends with its store."""
    while True:
        time.sleep(IDLE_RETURN / 4)
        store = ref()
        if store is None or store._returner is not threading.current_thread():
            return
        try:
            store.return_idle()
        except Exception:  # noqa: BLE001 - a store error here is the outage buffer's to report; try again
            pass
        del store


def release_all_leases() -> None:
    """Every process's leases back to their stores, and the stores' queues applied (at exit)."""
    for store in list(_leased_stores):
        try:
            store.release_all()
        except Exception:  # noqa: BLE001 - at exit, nothing may raise
            pass


atexit.register(release_all_leases)  # registered after outage's flush, so it runs before it


def leased(store: BudgetStore, lease: bool) -> BudgetStore:
    """The store as the guard uses it: a shared store (behind its outage buffer) with leases, unless
    OTEL_LLM_COST_BUDGET_LEASE=off; a store in this process needs none (a check costs no round trip)."""
    from otel_llm_cost.budget.outage import OutageBuffer

    return LeasedStore(store) if lease and isinstance(store, OutageBuffer) else store

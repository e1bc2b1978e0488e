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

Writes also leave the call's critical path when the store is up (`write_behind`): a settle (or the
spend of another instrumentation's call, `add`) is queued and a background thread applies what has gathered (a few milliseconds' worth) in one round trip, one
SQLite transaction or one Redis pipeline. A reservation held a little longer only ever over-reserves,
so strictness is unchanged; reads (`usage`, `keys`) apply the queue first, so this process always reads
its own spend, and the queue is applied at exit. A forked child starts with an empty queue (the
parent's writes are the parent's to apply).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import Incident
from otel_llm_cost._process import at_multiprocessing_exit
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation, StoreUnavailable, new_id

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

    RETRY_AFTER_FAILURE = 0.5
    """Seconds the settler waits before trying an unreachable store again."""

    def __init__(self, store: BudgetStore, *, on_failure: str = "allow", max_pending: int = 100_000,
                 max_remembered: int = 10_000, what: str = "budget store", write_behind: float | None = None) -> None:
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
        self.write_behind = write_behind
        """Seconds a settle may wait to be applied with others (None: applied in the call)."""
        self._wake = threading.Event()
        self._settler: threading.Thread | None = None
        self._settler_pid = 0
        if write_behind is not None:
            _write_behind_buffers.add(self)
            at_multiprocessing_exit(self, "flush")

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
            if self.write_behind is None:
                self._replay()  # with write-behind, queued writes are the settler's to apply
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
        self._write(_Write(op_id or new_id(), slots, actual, tuple(reservations)))

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self._write(_Write(op_id or new_id(), ((budget, key, window),), amount))

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
        """Apply a settle or an add now, or, with write-behind, leave it to the settler; queued either way
        while the store is unreachable."""
        if self.write_behind is not None:
            self._enqueue(write)
            self._wake_settler()
            return
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
        """Apply queued writes, oldest first, as many at once as the store takes in one round trip
        (`apply_writes`); stops (raising) at the first batch that cannot be applied, which stays queued."""
        if not self._pending:
            return
        apply_batch = getattr(self.store, "apply_writes", None)
        with self._replay_lock:
            left = len(self._pending)  # what is queued now: writes queued meanwhile wait for the next round
            while left > 0 and self._pending:
                with self._lock:
                    batch = list(itertools.islice(self._pending, min(left, _BATCH) if apply_batch else 1))
                left -= len(batch)
                if apply_batch is not None:
                    apply_batch([(w.op_id, w.reservations, w.slots, w.amount) for w in batch])
                else:
                    batch[0].apply(self.store)  # StoreUnavailable propagates; the write stays queued
                with self._lock:
                    for write in batch:
                        if self._pending and self._pending[0] is write:
                            self._pending.popleft()

    # --- write-behind ---
    def _wake_settler(self) -> None:
        if self._settler is None or self._settler_pid != os.getpid():
            with self._lock:
                if self._settler is None or self._settler_pid != os.getpid():
                    self._settler_pid = os.getpid()
                    self._settler = threading.Thread(target=_settle_loop, args=(weakref.ref(self),),
                                                     name="otel-llm-cost-settler", daemon=True)
                    self._settler.start()
        self._wake.set()

    def _settle_pending(self) -> bool:
        """One round of the settler: apply what has gathered. False when the store is unreachable."""
        try:
            self._replay()
        except StoreUnavailable as error:
            self._failed(error)
            return False
        except Exception:  # never let the settler die on a bug: the writes stay queued for the next round
            _logger.exception("otel-llm-cost: could not apply budget settles; retrying")
            return False
        self.incident.recovered(self._recovery_detail())
        return True

    def _after_fork(self) -> None:
        """In a forked child: the parent's queued writes are the parent's; no settler runs yet."""
        self._pending = deque()
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._wake = threading.Event()
        self._settler = None
        at_multiprocessing_exit(self, "flush")

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


_BATCH = 500
"""The most queued writes applied in one round trip."""
WRITE_BEHIND = 0.02
"""Seconds a settle waits for others to be applied with: ~100 calls' worth at a busy process's pace,
and nothing anyone reading a budget can notice (reads apply the queue first)."""
_write_behind_buffers: weakref.WeakSet[OutageBuffer] = weakref.WeakSet()


def _settle_loop(ref: weakref.ref[OutageBuffer]) -> None:
    """The settler thread: wait for a settle, let others gather, apply them all; back off while the
    store is unreachable. Holds the buffer only weakly, so a dropped guard's thread ends."""
    while True:
        buffer = ref()
        if buffer is None:
            return
        wake, linger = buffer._wake, buffer.write_behind or 0.0
        del buffer
        wake.wait(timeout=5.0)
        wake.clear()  # before looking: a settle queued from here on wakes the next round
        buffer = ref()
        if buffer is None or buffer._settler is not threading.current_thread():
            return
        if not buffer._pending:
            continue
        time.sleep(linger)
        if not buffer._settle_pending():
            time.sleep(buffer.RETRY_AFTER_FAILURE)
            wake.set()


def _flush_at_exit() -> None:
    for buffer in list(_write_behind_buffers):
        try:
            buffer.flush()
        except Exception:  # noqa: BLE001 - at exit, nothing may raise
            pass


def _forked() -> None:
    for buffer in list(_write_behind_buffers):
        buffer._after_fork()


atexit.register(_flush_at_exit)
os.register_at_fork(after_in_child=_forked)


def buffered(store: BudgetStore, on_failure: str) -> BudgetStore:
    """The store as the guard should use it: a store that lives in this process cannot have an outage,
    and its settles cost too little to move off the call; a shared one settles behind the calls."""
    from otel_llm_cost.budget.stores import MemoryStore

    if isinstance(store, MemoryStore):
        return store
    return OutageBuffer(store, on_failure=on_failure, write_behind=WRITE_BEHIND)


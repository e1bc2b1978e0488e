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
SQLite transaction or one Redis pipeline. What the queue has not applied yet, this process nets out of
everything it asks the store: a check counts the holds its queued settles release as free and the spend
they add as spent (`Claim.credit`, applied inside the store's atomic check), and `usage`/`keys` answer
with the queue applied. So a process sees its own calls at once, on every store, and stays strict: the
queued writes are applied, and another process meanwhile only sees holds that are about to become
spend. A gate keeps a check and the settler's apply apart, so nothing is netted out twice. The queue is
applied at exit; a forked child starts with an empty one (the parent's writes are the parent's to apply).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Final

from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import Incident
from otel_llm_cost._process import at_multiprocessing_exit
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation, StoreUnavailable, Write, new_id
from otel_llm_cost.budget.stores._base import belongs_to

__all__ = ["OutageBuffer", "FAILURE_POLICIES"]

_logger = logging.getLogger("otel_llm_cost.budget")
ZERO = Decimal(0)
FAILURE_POLICIES: Final = ("allow", "refuse")

Slot = tuple[str, str, str]


class _Gate:
    """Many checks at once, or the settler's apply alone: a check nets out the unapplied writes, so the
    store must not apply them between the netting and the check. The settler waits for the checks in
    flight, and new checks wait for it (it is brief: one round trip)."""

    __slots__ = ("_cond", "_readers", "_writing")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True  # from here, new checks wait
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class _Unapplied:
    """Per slot, what this process's queued writes will do once applied: spend added, holds released.
    Amounts are rounded as the store keeps them, so netting is exact to the store's last unit."""

    __slots__ = ("spent", "released", "uncertain")

    def __init__(self) -> None:
        self.spent: dict[Slot, Decimal] = {}
        self.released: dict[Slot, Decimal] = {}
        self.uncertain: set[str] = set()
        """Writes whose releases are no longer counted: a batch failed while it was sent, so the store may
        have applied them already (a Redis pipeline cut halfway); counting them again could overspend."""

    def count(self, write: Write, quantize: object, sign: int) -> None:
        amount = quantize(write.amount) if write.amount else ZERO  # type: ignore[operator]
        if amount:
            for slot in write.added_to():
                _bump(self.spent, slot, sign * amount)
        if write.op_id in self.uncertain:
            if sign < 0:  # applied at last: nothing of it is counted any more
                self.uncertain.discard(write.op_id)
            return
        self._releases(write, quantize, sign)

    def withdraw_releases(self, write: Write, quantize: object) -> None:
        """Stop counting `write`'s releases as free until it is applied: its batch may have been applied in
        part. Its spend stays counted, so the process over-reserves meanwhile, never under."""
        if write.op_id not in self.uncertain:
            self.uncertain.add(write.op_id)
            self._releases(write, quantize, -1)

    def _releases(self, write: Write, quantize: object, sign: int) -> None:
        for r in write.reservations:
            if r.id:  # an outage's placeholder holds nothing in the store
                _bump(self.released, (r.budget, r.key, r.window), sign * quantize(r.amount))  # type: ignore[operator]

    def credit(self, slot: Slot) -> Decimal:
        return self.released.get(slot, ZERO) - self.spent.get(slot, ZERO)

    def applied_to(self, slot: Slot, spent: Decimal, held: Decimal) -> tuple[Decimal, Decimal]:
        """A slot's (spent, held) as the store reports it, with the queued writes applied."""
        return spent + self.spent.get(slot, ZERO), max(ZERO, held - self.released.get(slot, ZERO))


def _bump(table: dict[Slot, Decimal], slot: Slot, amount: Decimal) -> None:
    total = table.get(slot, ZERO) + amount
    if total:
        table[slot] = total
    else:
        table.pop(slot, None)


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
        self._pending: deque[Write] = deque()
        self._unapplied = _Unapplied()
        self._gate = _Gate()
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
            with self._gate.shared():
                unapplied = self._unapplied
                if unapplied.spent or unapplied.released:
                    claims = [dataclasses.replace(c, credit=unapplied.credit((c.budget, c.key, c.window)))
                              for c in claims]
                result = self.store.reserve(claims)
                if isinstance(result, Refusal):
                    claim = result.claim
                    spent, held = unapplied.applied_to((claim.budget, claim.key, claim.window), result.spent,
                                                       result.reserved)
                    result = Refusal(claim, spent, held)
        except StoreUnavailable as error:
            self._failed(error)
            if self.on_failure == "refuse":
                raise
            # allowed, holding nothing: an empty id releases nothing when settled, and adds the spend
            return [Reservation("", c.budget, c.key, c.window, c.amount) for c in claims]
        self.incident.recovered(self._recovery_detail())
        return result

    def apply_writes(self, writes: Sequence[Write]) -> None:
        for write in writes:
            self._write(write)

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        self._write(Write(op_id or new_id(), tuple(reservations), (), actual))

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self._write(Write(op_id or new_id(), (), ((budget, key, window),), amount))

    def quantize(self, amount: Decimal) -> Decimal:
        return self.store.quantize(amount)

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        """The slot as the store has it with this process's queued writes applied; in an outage, as last
        seen, plus the spend queued since."""
        slot = (budget, key, window)
        try:
            with self._gate.shared():
                value = self.store.usage(budget, key, window)
                now = self._unapplied.applied_to(slot, *value)
        except StoreUnavailable as error:
            self._failed(error)
            spent, reserved = self._last.get(slot, (ZERO, ZERO))
            return self._unapplied.applied_to(slot, spent, reserved)
        self.incident.recovered(self._recovery_detail())
        self._remember(self._last, slot, value)
        return now

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        try:
            with self._gate.shared():
                value = self.store.keys(budget, window)
                now = self._keys_applied(budget, window, value)
        except StoreUnavailable as error:
            self._failed(error)
            return self._keys_applied(budget, window, self._last_keys.get((budget, window), []))
        self.incident.recovered(self._recovery_detail())
        self._remember(self._last_keys, (budget, window), value)
        return now

    def _keys_applied(self, budget: str, window: str,
                      keys: list[tuple[str, Decimal, Decimal]]) -> list[tuple[str, Decimal, Decimal]]:
        known = {key: (spent, held) for key, spent, held in keys}
        unapplied = self._unapplied
        for slot in {*unapplied.spent, *unapplied.released}:
            if slot[0] == budget and slot[2] == window:
                known.setdefault(slot[1], (ZERO, ZERO))
        return [(key, *unapplied.applied_to((budget, key, window), spent, held))
                for key, (spent, held) in known.items()]

    def clear(self, budget: str | None = None) -> None:
        """Forget a budget's (or every) queued writes and data, here and in the store. A batch the settler is
        applying finishes first, so none of the budget's writes lands after the store is cleared."""
        with self._replay_lock, self._lock:
            if budget is None:
                self._pending.clear()
                self._last.clear()
                self._last_keys.clear()
            else:
                self._pending = deque(w for w in self._pending if all(not belongs_to(s[0], budget)
                                                                      for s in w.added_to()))
                for table in (self._last, self._last_keys):
                    for slot in [s for s in table if belongs_to(s[0], budget)]:
                        del table[slot]
            self._unapplied = _Unapplied()  # counted again from what stays queued
            for write in self._pending:
                self._unapplied.count(write, self.store.quantize, +1)
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
    def _write(self, write: Write) -> None:
        """Apply a settle or an add now, or, with write-behind, leave it to the settler; queued either way
        while the store is unreachable."""
        if self.write_behind is not None:
            self._enqueue(write)
            self._wake_settler()
            return
        try:
            self._replay()
            self.store.apply_writes([write])
        except StoreUnavailable as error:
            self._failed(error)
            if self._enqueue(write):
                with self._lock:  # it may have been applied before the connection failed
                    self._unapplied.withdraw_releases(write, self.store.quantize)
            return
        self.incident.recovered(self._recovery_detail())

    def _enqueue(self, write: Write) -> bool:
        """Queue `write`; False when the queue is full and it is dropped (and counted)."""
        with self._lock:
            if len(self._pending) < self._max_pending:
                self._pending.append(write)
                self._unapplied.count(write, self.store.quantize, +1)
                return True
            self.dropped += 1
            first_drop = self.dropped == 1
        if first_drop:
            _logger.warning("otel-llm-cost: budget store outage queue is full (%d writes); later spend is "
                            "not counted until the store is back", self._max_pending)
        return False

    def _replay(self) -> None:
        """Apply queued writes, oldest first, as many at once as the store takes in one round trip;
        stops (raising) at the first batch that cannot be applied, which stays queued."""
        if not self._pending:
            return
        with self._replay_lock:
            left = len(self._pending)  # what is queued now: writes queued meanwhile wait for the next round
            while left > 0 and self._pending:
                with self._lock:
                    batch = list(itertools.islice(self._pending, min(left, _BATCH)))
                left -= len(batch)
                with self._gate.exclusive():
                    try:
                        self.store.apply_writes(batch)  # StoreUnavailable propagates; the batch stays queued
                    except BaseException:
                        with self._lock:
                            for write in batch:
                                self._unapplied.withdraw_releases(write, self.store.quantize)
                        raise
                    with self._lock:
                        for write in batch:
                            if self._pending and self._pending[0] is write:
                                self._pending.popleft()
                                self._unapplied.count(write, self.store.quantize, -1)
                                self._remember_applied(write)

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
        self._unapplied = _Unapplied()
        self._gate = _Gate()
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._wake = threading.Event()
        self._settler = None
        at_multiprocessing_exit(self, "flush")

    def _failed(self, error: StoreUnavailable) -> None:
        consequence = ("calls are allowed and their spend is queued until it is back" if self.on_failure == "allow"
                       else "calls that a budget covers are refused until it is back")
        self.incident.failed(error, consequence)

    def _recovery_detail(self) -> str:
        dropped = f", {self.dropped} lost to a full queue" if self.dropped else ""
        return f"queued spend applied{dropped}"

    def _remember_applied(self, write: Write) -> None:
        """The store now has `write`: so has the state remembered for an outage (which is the store's, not
        netted), else an outage starting now would forget it."""
        applied = _Unapplied()
        applied.count(write, self.store.quantize, +1)
        for slot in {*applied.spent, *applied.released}:
            if slot in self._last:
                self._last[slot] = applied.applied_to(slot, *self._last[slot])
            known = self._last_keys.get((slot[0], slot[2]))
            if known is not None:
                self._last_keys[(slot[0], slot[2])] = [
                    (key, *applied.applied_to(slot, spent, held)) if key == slot[1] else (key, spent, held)
                    for key, spent, held in known]

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


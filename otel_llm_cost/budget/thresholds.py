"""`on_budget_threshold`: tell the app, once, when a budget's spend first reaches 50%, 80%, 100%...

Once per budget, key, window and threshold, even when several processes share a store: the first
process to see the spend at or past a threshold claims it in the store itself, with the store's own
atomic check-and-reserve on a one-dollar "budget" of one dollar (`<budget>@<threshold>`): the first
claim fits, every later one is refused. That process's crossing call gets a span event, and the
callback runs on a notifier thread, off the call's critical path.

Nothing here runs unless a callback is registered.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import exception_once
from otel_llm_cost.budget import Budget, BudgetStatus
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation
from otel_llm_cost.budget.stores._base import THRESHOLD_MARK

__all__ = ["Thresholds", "ThresholdCallback"]

_logger = logging.getLogger(__name__)
_ONE = Decimal(1)

ThresholdCallback = Callable[[BudgetStatus, float], Any]


class Thresholds:
    """The registered callbacks, and which crossings this process already knows were claimed."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[ThresholdCallback, tuple[float, ...]]] = []
        self._known: Bounded[tuple[str, str, str, float], None] = Bounded(50_000)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[ThresholdCallback, BudgetStatus, float]] | None = None
        self._pid = 0

    def subscribe(self, callback: ThresholdCallback, at: Iterable[float]) -> Callable[[], None]:
        levels = tuple(sorted({float(level) for level in at}))
        if not levels or any(not 0 < level <= 10 for level in levels):
            raise ValueError(f"on_budget_threshold(at={tuple(at)!r}): thresholds are fractions of the limit, "
                             "greater than 0 (e.g. 0.5, 0.8, 1.0)")
        entry = (callback, levels)
        with self._lock:
            self._subscribers = [*self._subscribers, entry]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not entry]

        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def check(self, store: BudgetStore, budgets: dict[str, Budget], reservations: Sequence[Reservation],
              status_of: Callable[[Budget, str], BudgetStatus]) -> list[tuple[BudgetStatus, float]]:
        """After a call settled: the crossings it made that this process won, each handed to the
        subscribers. Returns them, for the call's span events."""
        subscribers = self._subscribers
        levels = sorted({level for _, at in subscribers for level in at})
        crossed: list[tuple[BudgetStatus, float]] = []
        for reservation in reservations:
            budget = budgets.get(reservation.budget) or next(
                (b for b in budgets.values() if b.name == reservation.budget), None)
            if budget is None or not budget.limit:
                continue
            spent, _ = store.usage(reservation.budget, reservation.key, reservation.window)
            reached = [level for level in levels if spent >= budget.limit * Decimal(repr(level))]
            crossed += self._claim_all(store, budget, reservation.key, reservation.window, reached, status_of)
        return crossed

    def reached_by_refusal(self, store: BudgetStore, budget: Budget, key: str, window: str,
                           status_of: Callable[[Budget, str], BudgetStatus]) -> list[tuple[BudgetStatus, float]]:
        """A budget refused a call: every threshold up to `1.0` is reached, whatever was spent (a strict
        budget refuses before its spend reaches the limit)."""
        levels = sorted({level for _, at in self._subscribers for level in at if level <= 1.0})
        return self._claim_all(store, budget, key, window, levels, status_of)

    def _claim_all(self, store: BudgetStore, budget: Budget, key: str, window: str, levels: Sequence[float],
                   status_of: Callable[[Budget, str], BudgetStatus]) -> list[tuple[BudgetStatus, float]]:
        """Claim each reached level this process does not yet know was claimed; notify for those it won."""
        crossed: list[tuple[BudgetStatus, float]] = []
        for level in levels:
            mark = (budget.name, key, window, level)
            if mark in self._known:
                continue
            self._known.put(mark, None)
            if self._claim(store, mark):
                status = status_of(budget, key)
                crossed.append((status, level))
                for callback, at in self._subscribers:
                    if level in at:
                        self._notify(callback, status, level)
        return crossed

    def forget(self, budget: str | None = None) -> None:
        """This process's memory of claimed crossings, for `clear_budget()` (the store's claims go with
        the budget's data)."""
        with self._lock:
            if budget is None:
                self._known.clear()
            else:
                for mark in [m for m in self._known if m[0] == budget]:
                    del self._known[mark]

    @staticmethod
    def _claim(store: BudgetStore, mark: tuple[str, str, str, float]) -> bool:
        """Atomically, across every process on the store: True for the first to claim this crossing."""
        name, key, window, level = mark
        result = store.reserve([Claim(f"{name}{THRESHOLD_MARK}{level:g}", key, window, _ONE, _ONE)])
        if isinstance(result, Refusal):
            return False
        store.settle(result, _ONE)
        return True

    def _notify(self, callback: ThresholdCallback, status: BudgetStatus, level: float) -> None:
        if self._queue is None or self._pid != os.getpid():  # first use, or a forked child: its own thread
            self._queue, self._pid = queue.SimpleQueue(), os.getpid()
            _notifying.add(self)
            threading.Thread(target=self._run, args=(self._queue,), name="otel-llm-cost-thresholds",
                             daemon=True).start()
        self._queue.put((callback, status, level))

    @staticmethod
    def _run(pending: queue.SimpleQueue[tuple[ThresholdCallback, BudgetStatus, float]]) -> None:
        while True:
            callback, status, level = pending.get()
            try:
                callback(status, level)
            except Exception:
                exception_once(_logger, ("threshold-callback", callback),
                               "otel-llm-cost: an on_budget_threshold callback raised")

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until the callbacks queued so far have run (tests, and apps that exit right after)."""
        pending = self._queue
        if pending is None:
            return
        done = threading.Event()
        pending.put((lambda status, level: done.set(), None, 0.0))  # type: ignore[arg-type]
        done.wait(timeout)


EXIT_WAIT = 2.0
"""Seconds an exiting process waits for the callbacks of crossings it claimed: a crossing made by a
script's last call is claimed in the store, so no other process will ever deliver it."""
_notifying: weakref.WeakSet[Thresholds] = weakref.WeakSet()


def _deliver_at_exit() -> None:
    deadline = time.monotonic() + EXIT_WAIT
    for thresholds in list(_notifying):
        if thresholds._pid == os.getpid():
            thresholds.drain(max(0.0, deadline - time.monotonic()))


atexit.register(_deliver_at_exit)

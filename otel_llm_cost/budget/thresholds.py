"""`on_budget_threshold`: tell the app, once, when a budget's spend first reaches 50%, 80%, 100%...

Once per budget, key, window and threshold, even when several processes share a store: the first
process to see the spend at or past a threshold claims it in the store itself, with the store's own
atomic check-and-reserve on a one-dollar "budget" of one dollar (`<budget>@<threshold>`): the first
claim fits, every later one is refused. That process's crossing call gets a span event, and the
callback runs on a notifier thread, off the call's critical path.

Nothing here runs unless a callback is registered.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import exception_once
from otel_llm_cost.budget import Budget, BudgetStatus
from otel_llm_cost.budget.stores import BudgetStore, Claim, Refusal, Reservation

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
            for level in levels:
                mark = (reservation.budget, reservation.key, reservation.window, level)
                if spent < budget.limit * Decimal(repr(level)) or mark in self._known:
                    continue
                self._known.put(mark, None)
                if self._claim(store, mark):
                    status = status_of(budget, reservation.key)
                    crossed.append((status, level))
                    for callback, at in subscribers:
                        if level in at:
                            self._notify(callback, status, level)
        return crossed

    @staticmethod
    def _claim(store: BudgetStore, mark: tuple[str, str, str, float]) -> bool:
        """Atomically, across every process on the store: True for the first to claim this crossing."""
        name, key, window, level = mark
        result = store.reserve([Claim(f"{name}@threshold:{level:g}", key, window, _ONE, _ONE)])
        if isinstance(result, Refusal):
            return False
        store.settle(result, _ONE)
        return True

    def _notify(self, callback: ThresholdCallback, status: BudgetStatus, level: float) -> None:
        if self._queue is None or self._pid != os.getpid():  # first use, or a forked child: its own thread
            self._queue, self._pid = queue.SimpleQueue(), os.getpid()
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

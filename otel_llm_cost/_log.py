"""Log a problem once per kind, so a hot path that keeps failing never floods the host app's logs,
and log an outage when it starts and when it ends, every time.

"Once" is bounded by a least-recently-seen table, never by a fixed set that fills up: a flood of
distinct kinds evicts the oldest, so a new kind of problem is always logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

from otel_llm_cost._bounded import Bounded

_seen: Bounded[Hashable, None] = Bounded(4096)
_lock = threading.Lock()


def _first_time(kind: Hashable) -> bool:
    with _lock:
        known = kind in _seen
        _seen.put(kind, None, refresh=True)  # a kind that keeps recurring is never the one forgotten
        return not known


def warn_once(logger: logging.Logger, kind: Hashable, message: str, *args: object) -> None:
    if _first_time(("warn", kind)):
        logger.warning(message, *args)


def exception_once(logger: logging.Logger, kind: Hashable, message: str, *args: object) -> None:
    """Call from an `except` block: logs the traceback the first time this kind fails."""
    if _first_time(("exc", kind)):
        logger.exception(message, *args)


class Incident:
    """A dependency that can go down and come back (a budget store, a ledger).

    `failed()` logs one WARNING line when the outage starts (the traceback only at DEBUG) and nothing
    while it lasts; `recovered()` logs one line when it ends. The next outage is logged again.
    """

    __slots__ = ("_logger", "_what", "_since", "_lock")

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, consequence: str) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._logger.warning("otel-llm-cost: %s unreachable (%s: %s); %s", self._what, type(error).__name__,
                             error, consequence)
        self._logger.debug("otel-llm-cost: %s failure", self._what, exc_info=error)

    def recovered(self, detail: str = "") -> None:
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self._logger.warning("otel-llm-cost: %s reachable again after %.1f s%s", self._what,
                                 time.monotonic() - since, f"; {detail}" if detail else "")


def reset_for_tests() -> None:
    with _lock:
        _seen.clear()

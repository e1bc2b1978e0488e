"""Log a problem once per kind, so a hot path that keeps failing never floods the host app's logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

_seen: set[Hashable] = set()
_lock = threading.Lock()
_MAX_KINDS = 4096  # bound the memory even if kinds are unbounded (e.g. model names)


def _first_time(kind: Hashable) -> bool:
    with _lock:
        if kind in _seen or len(_seen) >= _MAX_KINDS:
            return False
        _seen.add(kind)
        return True


def warn_once(logger: logging.Logger, kind: Hashable, message: str, *args: object) -> None:
    if _first_time(("warn", kind)):
        logger.warning(message, *args)


def exception_once(logger: logging.Logger, kind: Hashable, message: str, *args: object) -> None:
    """Call from an `except` block: logs the traceback the first time this kind fails."""
    if _first_time(("exc", kind)):
        logger.exception(message, *args)


def reset_for_tests() -> None:
    with _lock:
        _seen.clear()

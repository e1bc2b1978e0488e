"""One SQLite connection per thread, set up for several processes sharing the file: WAL (readers go on
while one process writes), NORMAL sync (durable at each checkpoint, fast), and a long busy timeout.
Used by the budget store and the usage ledger.

A connection never crosses a fork (SQLite forbids using one in two processes): a forked child starts
with no connection and opens its own. The parent's stay referenced in the child, so the child never
finalises them either."""

from __future__ import annotations

import sqlite3
import threading
import os
import time
import weakref
from pathlib import Path
from typing import Any

_every: weakref.WeakSet[ThreadConnections] = weakref.WeakSet()
_inherited: list[Any] = []


class ThreadConnections:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        _every.add(self)

    def _forget_after_fork(self) -> None:
        _inherited.append(self._local)
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA busy_timeout=30000")
                _switch_to_wal(connection)
                connection.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                connection.close()
                raise
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection (the next `get` opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _switch_to_wal(connection: sqlite3.Connection, patience: float = 30.0) -> None:
    """Processes opening a new file together race to switch it to WAL; the loser is told "database is
    locked" at once, whatever the busy timeout. Wait for the winner instead."""
    deadline = time.monotonic() + patience
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _after_fork_in_child() -> None:
    for connections in list(_every):
        connections._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

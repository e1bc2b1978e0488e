"""The usage ledger: every LLM call the processor counts, as one row of `llm_calls`. The book of record
that outlives the process: "what did user X cost last week", "which task costs most".

Fed by the processor as a listener, never by the wrappers. Rows are written off the call path, as
`BatchSpanProcessor` exports spans: a bounded queue and a background writer that writes batches in one
transaction. What it promises (the README's "usage ledger" section):

- every call that returned is written before `flush()` returns, so a report sees it;
- a worker forked from a configured process (gunicorn `--preload`, `multiprocessing`, Celery prefork)
  gets its own writer, and flushes when it ends through `sys.exit` (atexit) or `multiprocessing`'s own
  exit (which skips atexit);
- a database that is down is retried; at exit the writer waits `exit_timeout` seconds, then spools the
  rows to a file that the next process opening the ledger (or `otel-llm-cost ledger replay`) writes;
- writes are idempotent by `id`, so a batch sent again after a lost commit reply never duplicates;
- one row the database cannot store is isolated, dropped, counted and logged: it never blocks the rest.

The honest limit: a process killed without a chance to run code (SIGKILL, or SIGTERM with its default
action, as `multiprocessing.Pool.terminate()` sends) loses the rows it recorded since the writer last
woke: at most `interval` seconds of calls (1 s by default), never more than the queue holds.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from otel_llm_cost._process import at_multiprocessing_exit
from otel_llm_cost._log import Incident
from otel_llm_cost.ledger.rows import COLUMNS, Row, encode_tags, row_from, storable, storable_row, uuid7
from otel_llm_cost.ledger.spool import Spool, Unreadable

__all__ = ["Ledger", "Row", "LedgerBackend", "LedgerOpenError", "open_backend", "uuid7", "COLUMNS", "row_from",
           "storable", "encode_tags", "redacted"]

_logger = logging.getLogger(__name__)

_LOGGED_REJECTS = 100
"""Rows the database refused are logged one by one up to this many; after that, one line per 1,000."""


class LedgerOpenError(ValueError):
    """The ledger URL cannot be used: bad scheme, unreachable server, unwritable file, missing package."""


class LedgerBackend(Protocol):
    """SQLite or PostgreSQL: the same table, the same contract suite."""

    url: str

    def write(self, rows: Sequence[Row], fresh: bool = False) -> None:
        """Append rows in one transaction (all or none), and what they add to the rollup; a row whose `id`
        is already there is skipped. `fresh`: the rows were never tried before (the backend may skip
        looking for them)."""

    def is_row_error(self, error: BaseException) -> bool:
        """True when `error` was caused by the rows' contents (retrying cannot help), not by the database."""

    def summarize(self, since: datetime | None, until: datetime | None, by: str) -> list[tuple[Any, ...]]:
        """Per group: key, calls, input, output, cache read, cache write, reasoning, cost, unpriced calls,
        errors, blocked calls, priced tokens. Costs are exact `Decimal`s."""

    def rows(self, since: datetime | None, until: datetime | None) -> Iterator[Row]:
        """Every row in the range, oldest first."""

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections (never close them: they are the parent's)."""

    def close(self) -> None: ...


def open_backend(url: str, *, create: bool = True) -> LedgerBackend:
    """`sqlite:///path/usage.db` or `postgresql://...`; creates and migrates the schema. `create=False`
    (reports, exports): a SQLite file that does not exist is an error, not a new empty ledger."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from otel_llm_cost.ledger.sqlite import SqliteLedger

        return SqliteLedger(url, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from otel_llm_cost.ledger.postgres import PostgresLedger

        return PostgresLedger(url)
    raise LedgerOpenError(f"{url!r} is not a ledger URL; use sqlite:///path/usage.db or postgresql://...")


def redacted(url: str) -> str:
    """The URL as logs may show it: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


_live: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for ledger in list(_live):
        ledger.shutdown()


def _rearm_in_child() -> None:
    for ledger in list(_live):
        ledger._rearm_after_fork()


os.register_at_fork(after_in_child=_rearm_in_child)


class Ledger:
    """The writer: `record` (the processor's listener) enqueues, a daemon thread writes batches."""

    def __init__(self, backend: LedgerBackend, *, max_queue: int = 20_000, batch_size: int = 500,
                 interval: float = 1.0, exit_timeout: float = 5.0, spool_dir: Path | None = None) -> None:
        self.backend = backend
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = interval
        self._exit_timeout = exit_timeout
        self.spool = Spool(backend.url, spool_dir)
        self._arm()
        _live.add(self)
        at_multiprocessing_exit(self, "shutdown")

    def _arm(self) -> None:
        """Everything that lives in one process: counters, queue, writer thread."""
        self.dropped = 0
        """Rows lost: the queue was full, or the database refused the row itself."""
        self.written = 0
        self.spooled = 0
        self.replayed = 0
        self.unreadable: list[Unreadable] = []
        """Spool files set aside because they could not be read whole (`ledger replay` names them)."""
        self._queue: queue.Queue[Row] = queue.Queue(maxsize=self._max_queue)
        self._retry: list[Row] = []
        self._inflight: list[Row] = []
        self._passes = 0
        self._last_pass_ok = True
        self._replay_due = bool(self.spool.files())  # rows an earlier process spooled: written on the first pass
        self._replay_lock = threading.Lock()
        self._stopped = False
        self._wake = threading.Event()
        self._incident = Incident(_logger, "usage ledger")
        self._thread = threading.Thread(target=self._run, name="otel-llm-cost-ledger", daemon=True)
        self._thread.start()

    def _rearm_after_fork(self) -> None:
        """In a forked worker: the parent's queued rows are the parent's to write; this process gets its
        own queue, writer thread and connections."""
        if self._stopped:
            return
        self.backend.after_fork()
        self._arm()
        at_multiprocessing_exit(self, "shutdown")

    @property
    def url(self) -> str:
        return self.backend.url

    # --- the processor's listener: never blocks, never raises ---
    def record(self, record: Any, span: Any, ours: bool) -> None:
        if self._stopped:
            return
        try:
            self._queue.put_nowait(row_from(record, span))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                _logger.warning("otel-llm-cost: usage ledger queue is full; %d rows dropped so far", self.dropped)
        if self._queue.qsize() >= self._batch_size:
            self._wake.set()

    # --- writing (the writer thread) ---
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if not self._stopped:
                self._write_pending()

    def _write_pending(self) -> None:
        """Write everything queued now, batch by batch, then any spool waiting; stop at an outage."""
        ok = True
        while True:
            fresh = not self._retry  # a batch tried before may have been written (a lost COMMIT reply)
            batch = self._retry or self._take()
            self._retry = []
            if not batch:
                break
            self._inflight = batch
            left = self._settle(batch, fresh)
            self._inflight = []
            self._done(len(batch) - len(left))
            if left:
                self._retry = left
                self._spool_overflow()
                ok = False
                break
        if ok and self._replay_due:
            ok = self._replay_spool()
        self._last_pass_ok = ok
        with self._queue.all_tasks_done:
            self._passes += 1
            self._queue.all_tasks_done.notify_all()

    def _take(self, *, every: bool = False) -> list[Row]:
        """A batch of queued rows (or `every` one), made storable."""
        limit = None if every else self._batch_size
        rows: list[Row] = []
        while limit is None or len(rows) < limit:
            try:
                rows.append(storable_row(self._queue.get_nowait()))
            except queue.Empty:
                break
        return rows

    def _done(self, count: int) -> None:
        """`count` rows taken from the queue are settled: written, spooled or dropped."""
        if count:
            done = self._queue.all_tasks_done
            with done:
                self._queue.unfinished_tasks -= count
                done.notify_all()

    def _settle(self, rows: list[Row], fresh: bool = False) -> list[Row]:
        """Write `rows`; return those left for a later try because the database is down. A batch the
        database refuses for its contents is halved until the refused row stands alone, and dropped.
        `fresh`: never tried before, so none of them can be in the ledger (ids are new, and one process
        writes a row), and the backend need not look."""
        try:
            self.backend.write(rows, fresh=fresh)
        except Exception as error:
            if not self.backend.is_row_error(error):
                self._incident.failed(error, f"rows are kept in memory (up to {self._max_queue:,}, spooled to "
                                             f"{self.spool.directory} beyond half that) and written when it is back")
                return rows
            if len(rows) == 1:
                self._reject(rows[0], error)
                return []
            middle = len(rows) // 2
            left = self._settle(rows[:middle], fresh)  # the refused transaction wrote nothing
            return left + rows[middle:] if left else self._settle(rows[middle:], fresh)
        self.written += len(rows)
        if self._incident.ongoing:
            self._incident.recovered(f"{len(rows):,} waiting rows written")
            self._replay_due = True
        return []

    def _reject(self, row: Row, error: BaseException) -> None:
        self.dropped += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.dropped <= _LOGGED_REJECTS or self.dropped % 1_000 == 0:
            _logger.warning("otel-llm-cost: usage ledger refused row %s (%s: %s); it is dropped and counted in "
                            "llm_cost.ledger.dropped (%d so far)", row.id, type(error).__name__, reason, self.dropped)

    def _spool_overflow(self) -> None:
        """A long outage: beyond half the queue, rows go to a spool file rather than being dropped later."""
        if len(self._retry) + self._queue.qsize() < self._max_queue // 2:
            return
        rows, self._retry = self._retry, []
        rows.extend(self._take(every=True))
        self._spool(rows, "the usage ledger is still unreachable")

    def _spool(self, rows: list[Row], why: str) -> None:
        """Write `rows` (all taken from the queue) to a spool file, and settle them."""
        try:
            path = self.spool.write(rows)
        except OSError as error:
            self.dropped += len(rows)
            _logger.error("otel-llm-cost: %s and %d rows could not be spooled either (%s); they are lost "
                          "(llm_cost.ledger.dropped)", why, len(rows), error)
        else:
            self.spooled += len(rows)
            _logger.warning("otel-llm-cost: %s; %d rows spooled to %s. The next process that opens this ledger, "
                            "or `otel-llm-cost ledger replay --ledger %s`, writes them", why, len(rows), path,
                            redacted(self.url))
        self._done(len(rows))

    def replay_now(self) -> None:
        """Write the spooled rows now, in the calling thread (`otel-llm-cost ledger replay`)."""
        self._replay_spool()

    def _replay_spool(self) -> bool:
        """Write rows that this or an earlier process spooled, now that the database answers; False when
        it went down again (the files stay for the next try)."""
        with self._replay_lock:
            self._replay_due = False
            try:
                rows, files, unreadable = self.spool.replay(self._replay_batch, self._batch_size)
            except Exception as error:
                self._incident.failed(error, "spooled rows stay in their files until it is back")
                self._replay_due = True
                return False
            self.replayed += rows
            self.unreadable += unreadable
        if files:
            _logger.warning("otel-llm-cost: usage ledger: %d spooled rows written from %d file(s) (%s)",
                            rows, len(files), ", ".join(str(f) for f in files))
        for aside in unreadable:  # once each: the file is set aside, never read again
            _logger.warning("otel-llm-cost: usage ledger spool file could not be read (%s); the %d rows read from "
                            "it were written, and it is set aside as %s", aside.reason, aside.rows, aside.path)
        return True

    def _replay_batch(self, rows: Sequence[Row]) -> None:
        left = self._settle([storable_row(r) for r in rows])
        if left:
            raise ConnectionError("the usage ledger became unreachable during the replay")

    # --- waiting for the writer ---
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row recorded before this call is written (or spooled, or dropped); True when
        nothing is left. Returns early, False, when the writer finds the database down."""
        return self._wait(timeout, patient=False)

    def _wait(self, timeout: float, *, patient: bool) -> bool:
        """Wake the writer until nothing is pending. `patient`: keep retrying through an outage until the
        deadline (at exit); otherwise give up after the first pass that fails."""
        if not self._thread.is_alive() or self._thread is threading.current_thread():
            return not self._queue.unfinished_tasks
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            start = self._passes
            while self._queue.unfinished_tasks or self._replay_due:
                left = deadline - time.monotonic()
                if left <= 0 or (not patient and self._passes > start and not self._last_pass_ok):
                    break
                self._wake.set()
                done.wait(min(0.25, left))
            return not self._queue.unfinished_tasks

    def shutdown(self, timeout: float | None = None) -> None:
        """Write what is left, waiting up to `timeout` (default: the exit timeout) for a database that is
        down; then spool what still could not be written, and stop."""
        if self._stopped:
            return
        timeout = self._exit_timeout if timeout is None else timeout
        started = time.monotonic()
        written = self._wait(timeout, patient=True)
        self._stopped = True
        self._wake.set()
        self._thread.join(max(1.0, timeout))
        if not written:
            # the writer has stopped (or is stuck in a write: a row spooled twice is written once)
            rows = self._inflight + self._retry + self._take(every=True)
            self._retry = self._inflight = []
            if rows:
                self._spool(rows, f"the usage ledger {redacted(self.url)} was still unreachable at exit after "
                                     f"{time.monotonic() - started:.1f} s")
        try:
            self.backend.close()
        except Exception:
            pass
        _live.discard(self)

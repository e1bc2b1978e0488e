"""The usage ledger: every LLM call the processor counts, as one row of `llm_calls`. The book of record
that outlives the process: "what did user X cost last week", "which task costs most".

Fed by the processor as a listener, never by the wrappers. Rows are written off the call path, as
`BatchSpanProcessor` exports spans: a bounded queue, a background writer that writes batches in one
transaction, and a flush at shutdown (`atexit` and the tracer provider's shutdown). A full queue drops
rows and counts them (`llm_cost.ledger.dropped`); a ledger that cannot be written is logged when the
problem starts and when it ends, its batch kept for the next try, and never breaks the app. A ledger
URL that cannot be opened stops start-up.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from otel_llm_cost import attributes as attr
from otel_llm_cost._log import Incident

__all__ = ["Ledger", "Row", "LedgerBackend", "LedgerOpenError", "open_backend", "uuid7", "COLUMNS"]

_logger = logging.getLogger(__name__)


class LedgerOpenError(ValueError):
    """The ledger URL cannot be used: bad scheme, unreachable server, unwritable file, missing package."""


@dataclass(slots=True)
class Row:
    """One row of `llm_calls`, in the contract's column order."""

    id: str
    ts: datetime
    trace_id: str | None
    span_id: str | None
    service_name: str | None
    provider: str | None
    operation: str | None
    request_model: str | None
    response_model: str | None
    response_id: str | None
    session_id: str | None
    conversation_id: str | None
    user_id: str | None
    tags: dict[str, str]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    cost_source: str | None
    pricing_source: str | None
    estimated: bool
    outcome: str
    service_tier: str | None
    batch: bool
    job: str | None
    duration_s: float | None

    def to_json(self) -> dict[str, Any]:
        """The row as export writes it: ISO time, money as a decimal string, tags as an object."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ts"] = self.ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
        out["cost_usd"] = None if self.cost_usd is None else f"{self.cost_usd:f}"
        return out


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))


_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # the millisecond and the 12-bit counter last used


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7): rows sort by id as they were made, within a millisecond
    too (the 12 `rand_a` bits are a counter, RFC 9562 section 6.2 method 1)."""
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _uuid_last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:  # 4,096 ids in one millisecond: borrow the next one
                ms, counter = ms + 1, 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _uuid_last[:] = [ms, counter]
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0x2 << 62 | tail
    return str(uuid.UUID(int=value))


def row_from(record: Any, span: Any) -> Row:
    """The row of one counted call: the exact record the processor counted, and its span's context."""
    a = span.attributes or {}
    usage = record.usage
    context = span.get_span_context() if hasattr(span, "get_span_context") else span.context
    resource = getattr(span, "resource", None)
    start, end = span.start_time, span.end_time or time.time_ns()
    tier = a.get(attr.service_tier_keys(str(a.get(attr.GEN_AI_PROVIDER_NAME, "")))[1])
    return Row(
        id=uuid7(),
        ts=datetime.fromtimestamp(end / 1e9, UTC),
        trace_id=f"{context.trace_id:032x}" if context else None,
        span_id=f"{context.span_id:016x}" if context else None,
        service_name=_text(resource.attributes.get("service.name")) if resource is not None else None,
        provider=record.provider,
        operation=_text(a.get(attr.GEN_AI_OPERATION_NAME)),
        request_model=_text(a.get(attr.GEN_AI_REQUEST_MODEL)),
        response_model=_text(a.get(attr.GEN_AI_RESPONSE_MODEL)) or (record.model if record.model != "unknown" else None),
        response_id=_text(a.get(attr.GEN_AI_RESPONSE_ID)),
        session_id=record.session_id,
        conversation_id=_text(a.get(attr.GEN_AI_CONVERSATION_ID)),
        user_id=record.user_id,
        tags=dict(record.tags),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=record.cost,
        cost_source=_text(a.get(attr.GEN_AI_USAGE_COST_SOURCE)) or ("local" if record.cost is not None else None),
        pricing_source=_text(a.get(attr.LLM_COST_PRICING_SOURCE)),
        estimated=a.get(attr.LLM_COST_USAGE_ESTIMATED) is True,
        outcome=record.outcome,
        service_tier=_text(tier),
        batch=a.get(attr.LLM_COST_BATCH) is True,
        job=_text(a.get(attr.LLM_COST_JOB)) or record.tags.get("job"),
        duration_s=(end - start) / 1e9 if start and end else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class LedgerBackend(Protocol):
    """SQLite or PostgreSQL: the same table, the same contract suite."""

    url: str

    def write(self, rows: Sequence[Row]) -> None:
        """Append rows in one transaction (all or none)."""

    def summarize(self, since: datetime | None, until: datetime | None, by: str) -> list[tuple[Any, ...]]:
        """Per group: key, calls, input, output, cache read, cache write, reasoning, cost, unpriced calls,
        errors, blocked calls, priced tokens. Costs are exact `Decimal`s."""

    def rows(self, since: datetime | None, until: datetime | None) -> Iterator[Row]:
        """Every row in the range, oldest first."""

    def close(self) -> None: ...


def open_backend(url: str) -> LedgerBackend:
    """`sqlite:///path/usage.db` or `postgresql://...`; creates and migrates the schema."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from otel_llm_cost.ledger.sqlite import SqliteLedger

        return SqliteLedger(url)
    if url.startswith(("postgresql://", "postgres://")):
        from otel_llm_cost.ledger.postgres import PostgresLedger

        return PostgresLedger(url)
    raise LedgerOpenError(f"{url!r} is not a ledger URL; use sqlite:///path/usage.db or postgresql://...")


_live: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for ledger in list(_live):
        ledger.shutdown(timeout=5.0)


class Ledger:
    """The writer: `record` (the processor's listener) enqueues, a daemon thread writes batches."""

    def __init__(self, backend: LedgerBackend, *, max_queue: int = 20_000, batch_size: int = 500,
                 interval: float = 1.0) -> None:
        self.backend = backend
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Row] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._interval = interval
        self._retry: list[Row] = []
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._stopped = False
        self._incident = Incident(_logger, "usage ledger")
        self._thread = threading.Thread(target=self._run, name="otel-llm-cost-ledger", daemon=True)
        self._thread.start()
        _live.add(self)

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

    # --- writing ---
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> bool:
        """Write everything queued now, batch by batch; False when the backend failed."""
        ok = True
        while True:
            batch, self._retry = self._retry, []
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                break
            try:
                self.backend.write(batch)
            except Exception as error:  # a full disk, a database gone away: keep the batch, try later
                self._incident.failed(error, "rows are kept in memory (bounded) and written when it is back")
                self._retry = batch
                ok = False
                break
            self.written += len(batch)
            self._incident.recovered()
        with self._idle:
            self._idle.notify_all()
        return ok

    def flush(self, timeout: float = 10.0) -> bool:
        """Write what is queued; True when nothing is left (reports call it to see the latest calls)."""
        deadline = time.monotonic() + timeout
        while (self._queue.qsize() or self._retry) and time.monotonic() < deadline:
            self._wake.set()
            with self._idle:
                self._idle.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        return not self._queue.qsize() and not self._retry

    def shutdown(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self.flush(timeout)
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout)
        try:
            self.backend.close()
        except Exception:
            pass
        _live.discard(self)


def encode_tags(tags: dict[str, str]) -> str:
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


"""One row of `llm_calls`: what it holds, how it is made from a counted call, and how its text is made
storable before it leaves for a database or a spool file."""

from __future__ import annotations

import decimal
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from otel_llm_cost import attributes as attr

__all__ = ["Row", "COLUMNS", "uuid7", "row_from", "storable", "storable_row", "encode_tags", "COST_UNIT",
           "stored_cost"]

COST_UNIT: Final = Decimal("1e-10")
"""The ledger keeps a call's cost to 1e-10 USD (rounded half to even): the unit SQLite's integer column
holds and PostgreSQL's NUMERIC stores, so every report, rollup and export adds the same stored values."""
_MONEY: Final = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999, Emax=999999)


def stored_cost(cost: Decimal) -> Decimal:
    """`cost` as the ledger stores it (see `COST_UNIT`); a value too large to hold stays as it is, for
    the database to refuse as a bad row."""
    try:
        return cost.quantize(COST_UNIT, context=_MONEY).normalize(_MONEY)
    except decimal.InvalidOperation:
        return cost


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

    def __post_init__(self) -> None:
        if self.cost_usd is not None:
            self.cost_usd = stored_cost(self.cost_usd)

    def to_json(self) -> dict[str, Any]:
        """The row as export writes it: ISO time, money as a decimal string, tags as an object."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ts"] = self.ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
        out["cost_usd"] = None if self.cost_usd is None else f"{self.cost_usd:f}"
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """The inverse of `to_json` (a spool file's line)."""
        values = {name: data.get(name) for name in COLUMNS}
        values["ts"] = datetime.fromisoformat(str(values["ts"]).replace("Z", "+00:00"))
        values["cost_usd"] = None if values["cost_usd"] is None else Decimal(values["cost_usd"])
        values["tags"] = dict(values["tags"] or {})
        return cls(**values)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))
_TEXT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row) if f.type == "str | None")


def storable(text: str) -> str:
    """`text` as every database can hold it: a NUL becomes the four characters `\\x00` and a lone
    surrogate (what `os.fsdecode` makes of a byte that is not UTF-8) its `\\udcXX` escape. Two ids that
    differ stay different; ordinary text is returned as it is."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def storable_row(row: Row) -> Row:
    """`row` with every text value, tag keys and values included, made `storable`."""
    changes: dict[str, Any] = {}
    for name in _TEXT_COLUMNS:
        value = getattr(row, name)
        if value is not None and storable(value) is not value:
            changes[name] = storable(value)
    if any(storable(k) is not k or storable(v) is not v for k, v in row.tags.items()):
        changes["tags"] = {storable(k): storable(v) for k, v in row.tags.items()}
    return replace(row, **changes) if changes else row


_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # the millisecond and the 12-bit counter last used


def _new_uuid_lock() -> None:
    """A fork can happen while another thread holds the lock: the child starts with a fresh one."""
    global _uuid_lock
    _uuid_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_uuid_lock)


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


def encode_tags(tags: dict[str, str]) -> str:
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))

"""Running totals per session, user and tag, in bounded memory, and `SessionSummary` to read them.

Sessions and users are unbounded in production (one per chat), so each is an LRU of
`max_sessions` entries; the global totals are exact whatever is evicted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from otel_llm_cost._money import column_usd, usd
from otel_llm_cost.usage import Usage

__all__ = ["CallRecord", "SessionSummary", "SessionTotals", "LastUsage", "last_usage", "publish_exact_record",
           "take_exact_record"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One LLM call as the totals see it. `cost` is None when the price is unknown."""

    provider: str
    model: str
    usage: Usage
    cost: Decimal | None
    session_id: str | None = None
    user_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "ok"


@dataclass(frozen=True, slots=True)
class LastUsage:
    """The last call in this context: `llm_cost.last_usage()`."""

    provider: str
    model: str
    usage: Usage
    cost: Decimal | None
    estimated: bool = False

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens


_last: ContextVar[LastUsage | None] = ContextVar("otel_llm_cost_last_usage", default=None)


_exact: OrderedDict[int, CallRecord] = OrderedDict()
_exact_lock = threading.Lock()
_EXACT_LIMIT = 16_384


def publish_exact_record(span_id: int, record: CallRecord) -> None:
    """Hand the processor the exact Decimal cost of our span (attributes only hold a float)."""
    with _exact_lock:
        _exact[span_id] = record
        if len(_exact) > _EXACT_LIMIT:  # no processor attached: forget the oldest
            _exact.popitem(last=False)


def take_exact_record(span_id: int) -> CallRecord | None:
    with _exact_lock:
        return _exact.pop(span_id, None)


def last_usage() -> LastUsage | None:
    return _last.get()


def set_last_usage(value: LastUsage) -> None:
    _last.set(value)


class _Totals:
    """Mutable accumulator; guarded by the owner's lock."""

    __slots__ = ("calls", "input", "output", "cache_read", "cache_write", "reasoning", "cost", "unpriced",
                 "priced_tokens", "errors", "first", "last", "by_model", "by_provider")

    def __init__(self, nested: bool = True) -> None:
        self.calls = 0
        self.input = self.output = self.cache_read = self.cache_write = self.reasoning = 0
        self.cost = ZERO
        self.unpriced = 0
        self.priced_tokens = 0
        self.errors = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.by_model: dict[str, _Totals] | None = {} if nested else None
        self.by_provider: dict[str, _Totals] | None = {} if nested else None

    def add(self, record: CallRecord, now: datetime) -> None:
        self.add_delta(_delta(record), record, now)

    def add_delta(self, delta: tuple[int, int, int, int, int], record: CallRecord, now: datetime) -> None:
        """`delta` is computed once per record and applied to every bucket it belongs to."""
        self.calls += 1
        self.input += delta[0]
        self.output += delta[1]
        self.cache_read += delta[2]
        self.cache_write += delta[3]
        self.reasoning += delta[4]
        if record.cost is None:
            self.unpriced += 1
        else:
            self.priced_tokens += delta[0] + delta[1]
            if record.cost:
                self.cost += record.cost
        if record.outcome == "error":
            self.errors += 1
        if self.first is None:
            self.first = now
        self.last = now
        if self.by_model is not None and self.by_provider is not None:
            _child(self.by_model, record.model).add_delta(delta, record, now)
            _child(self.by_provider, record.provider).add_delta(delta, record, now)

    def summary(self, session_id: str | None) -> SessionSummary:
        return SessionSummary(
            session_id=session_id,
            calls=self.calls,
            input_tokens=self.input,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            reasoning_tokens=self.reasoning,
            cost=self.cost,
            unpriced_calls=self.unpriced,
            errors=self.errors,
            priced_tokens=self.priced_tokens,
            started_at=self.first,
            last_call_at=self.last,
            _models={k: v.summary(None) for k, v in (self.by_model or {}).items()},
            _providers={k: v.summary(None) for k, v in (self.by_provider or {}).items()},
        )


def _delta(record: CallRecord) -> tuple[int, int, int, int, int]:
    u = record.usage
    return (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            u.reasoning_tokens)


def _child(children: dict[str, _Totals], key: str) -> _Totals:
    child = children.get(key)
    if child is None:
        child = children[key] = _Totals(nested=False)
    return child


@dataclass(frozen=True)
class SessionSummary:
    """Totals of a session (or user, tag, or everything). `cost` counts priced calls only."""

    session_id: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = ZERO
    unpriced_calls: int = 0
    errors: int = 0
    started_at: datetime | None = None
    last_call_at: datetime | None = None
    priced_tokens: int = 0
    """Input and output tokens of the priced calls: what `cost` is spread over."""
    _models: Mapping[str, SessionSummary] = field(default_factory=dict, repr=False)
    _providers: Mapping[str, SessionSummary] = field(default_factory=dict, repr=False)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def priced_calls(self) -> int:
        return self.calls - self.unpriced_calls

    @property
    def avg_cost_per_call(self) -> Decimal:
        """Average over priced calls: an unpriced call is unknown, not free."""
        return self.cost / self.priced_calls if self.priced_calls else ZERO

    @property
    def cost_per_1k_tokens(self) -> Decimal:
        """Over the tokens of priced calls only: an unpriced call's tokens would dilute it."""
        return self.cost * 1000 / self.priced_tokens if self.priced_tokens else ZERO

    @property
    def cache_hit_ratio(self) -> float:
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    def by_model(self) -> dict[str, SessionSummary]:
        """Per-model totals, highest cost first."""
        return dict(sorted(self._models.items(), key=lambda kv: (-kv[1].cost, kv[0])))

    def by_provider(self) -> dict[str, SessionSummary]:
        return dict(sorted(self._providers.items(), key=lambda kv: (-kv[1].cost, kv[0])))

    def to_dict(self) -> dict[str, Any]:
        def plain(s: SessionSummary) -> dict[str, Any]:
            return {
                "calls": s.calls, "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
                "cache_read_tokens": s.cache_read_tokens, "cache_write_tokens": s.cache_write_tokens,
                "reasoning_tokens": s.reasoning_tokens, "cost_usd": usd(s.cost), "unpriced_calls": s.unpriced_calls,
                "avg_cost_per_call_usd": usd(s.avg_cost_per_call), "cost_per_1k_tokens_usd": usd(s.cost_per_1k_tokens),
            }

        return {
            "session_id": self.session_id,
            **plain(self),
            "errors": self.errors,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_call_at": self.last_call_at.isoformat() if self.last_call_at else None,
            "by_model": {k: plain(v) for k, v in self.by_model().items()},
            "by_provider": {k: plain(v) for k, v in self.by_provider().items()},
        }

    def format(self, style: str = "detailed") -> str:
        """`detailed` (multi-line report), `compact` (one line) or `table` (per model, aligned)."""
        if style == "compact":
            unpriced = f", {self.unpriced_calls} unpriced" if self.unpriced_calls else ""
            return (f"{self.session_id or 'all'}: {self._cost_text()} over {_count(self.calls, 'call')}{unpriced}, "
                    f"{self.input_tokens:,} in / {self.output_tokens:,} out tokens")
        if style == "table":
            return self._table()
        if style != "detailed":
            raise ValueError(f"format style must be 'detailed', 'compact' or 'table', not {style!r}")
        lines = [
            f"Session {self.session_id or '(all)'}",
            f"  cost            {self._cost_text()}" + (
                f"  (+{_count(self.unpriced_calls, 'call')} with unknown price)"
                if self.unpriced_calls and self.priced_calls else ""),
            f"  calls           {self.calls} ({_count(self.errors, 'error')})",
            f"  tokens          {self.input_tokens:,} in ({self.cache_read_tokens:,} cache read, "
            f"{self.cache_write_tokens:,} cache write) / {self.output_tokens:,} out ({self.reasoning_tokens:,} reasoning)",
            f"  per call        {self._rate_text(self.avg_cost_per_call)}",
            f"  per 1k tokens   {self._rate_text(self.cost_per_1k_tokens)}",
        ]
        if self.started_at and self.last_call_at:
            lines.append(f"  duration        {(self.last_call_at - self.started_at).total_seconds():.1f} s")
        for title, parts in (("by provider", self.by_provider()), ("by model", self.by_model())):
            lines.append(f"  {title}:")
            width = max([28, *(len(name) for name in parts)])
            lines.extend(f"    {name:{width}} {s._cost_text():>13}  {_count(s.calls, 'call', 5):>11}  "
                         f"{s.total_tokens:>10,} tokens" for name, s in parts.items())
        return "\n".join(lines)

    def _cost_text(self) -> str:
        """The cost, or `unknown` when no call of it had a price (never a made-up $0)."""
        if self.calls and not self.priced_calls:
            return "unknown"
        return f"${column_usd(self.cost)}"

    def _rate_text(self, value: Decimal) -> str:
        return f"${usd(value)}" if self.priced_calls else "unknown"

    def _table(self) -> str:
        by_model = self.by_model()
        width = max([30, *(len(name) for name in by_model)])  # long ids (Bedrock's) keep the columns aligned
        header = f"{'model':{width}} {'calls':>6} {'input':>10} {'cache rd':>10} {'output':>9} {'cost USD':>12}"
        rows = [header, "-" * len(header)]
        for name, s in by_model.items():
            cost = column_usd(s.cost) if s.priced_calls else "unknown"
            rows.append(f"{name:{width}} {s.calls:>6} {s.input_tokens:>10,} {s.cache_read_tokens:>10,} "
                        f"{s.output_tokens:>9,} {cost:>12}")
        rows.append("-" * len(header))
        rows.append(f"{'total':{width}} {self.calls:>6} {self.input_tokens:>10,} {self.cache_read_tokens:>10,} "
                    f"{self.output_tokens:>9,} {column_usd(self.cost):>12}")
        return "\n".join(rows)


def _count(n: int, noun: str, width: int = 0) -> str:
    """`1 call`, `2 calls`: a number and its noun, singular or plural."""
    return f"{n:>{width}} {noun}{'' if n == 1 else 's'}"


class SessionTotals:
    """Totals per session, user and tag value (each an LRU of `max_keys`), plus exact global totals."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._global = _Totals()
        self._sessions: OrderedDict[str, _Totals] = OrderedDict()
        self._users: OrderedDict[str, _Totals] = OrderedDict()
        self._tags: OrderedDict[str, _Totals] = OrderedDict()
        self.evicted = 0

    def add(self, record: CallRecord, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        delta = _delta(record)
        with self._lock:
            self._global.add_delta(delta, record, now)
            if record.session_id is not None:
                self._bucket(self._sessions, record.session_id).add_delta(delta, record, now)
            if record.user_id is not None:
                self._bucket(self._users, record.user_id).add_delta(delta, record, now)
            for key, value in record.tags.items():
                self._bucket(self._tags, f"{key}={value}").add_delta(delta, record, now)

    def _bucket(self, lru: OrderedDict[str, _Totals], key: str) -> _Totals:
        totals = lru.get(key)
        if totals is None:
            totals = lru[key] = _Totals()
            if len(lru) > self.max_keys:
                lru.popitem(last=False)
                self.evicted += 1
        else:
            lru.move_to_end(key)
        return totals

    def session(self, session_id: str | None) -> SessionSummary:
        with self._lock:
            if session_id is None:
                return self._global.summary(None)
            totals = self._sessions.get(session_id)
            return totals.summary(session_id) if totals else SessionSummary(session_id)

    def user(self, user_id: str) -> SessionSummary:
        with self._lock:
            totals = self._users.get(user_id)
            return totals.summary(user_id) if totals else SessionSummary(user_id)

    def tag(self, key: str, value: str) -> SessionSummary:
        with self._lock:
            totals = self._tags.get(f"{key}={value}")
            return totals.summary(f"{key}={value}") if totals else SessionSummary(f"{key}={value}")

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def reset(self) -> None:
        with self._lock:
            self._global = _Totals()
            self._sessions.clear()
            self._users.clear()
            self._tags.clear()

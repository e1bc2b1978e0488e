"""`CostSpanProcessor`: counts every LLM call exactly once, ours or another instrumentation's.

`on_end` only reads: it cannot write the cost onto a foreign span (attributes are immutable by then,
opentelemetry-python #5614), but it prices it for totals, budgets and metrics.

Counting once, however spans nest or end: our spans are always counted (they carry the exact cost).
Only inference spans are calls (chat, completions, embeddings...): a framework's chain, agent, tool or
workflow span is never one, whatever usage it sums. A foreign inference span is skipped when it
started below one of our spans (any depth: `on_start` tracks the descendants of our spans in flight),
when a counted call ended below it (every GenAI span that ends marks its parent, so an outer wrapper
of a counted call is skipped too), or when it is the same call as one of ours however the trees are
arranged (a run tree rebuilt after the fact, as LangSmith's OpenTelemetry export does): same model,
same token counts, overlapping in time. Each of our calls stands for one such span per instrumentation.

Roll-up: every span still open in this process is remembered (bounded; forgotten when it ends), so a
counted call adds its cost to each open ancestor in O(depth): an HTTP request, an agent's span, a job.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm_cost import attributes as attr
from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import exception_once
from otel_llm_cost.instrumentation._call import SCOPE_NAME
from otel_llm_cost.pricing import PriceBook, default_price_book
from otel_llm_cost.sessions import CallRecord, SessionTotals, _Totals, take_exact_record
from otel_llm_cost.usage import Usage

__all__ = ["CostSpanProcessor", "RecordListener"]

_logger = logging.getLogger(__name__)

RecordListener = Callable[[CallRecord, ReadableSpan, bool], None]
"""Called for each counted call: (record, span, is_ours). Metrics subscribe here."""

_SEEN_LIMIT = 65_536
_OPEN_LIMIT = 100_000
"""Open spans remembered for the roll-up; beyond this (a leak of never-ended spans) new ones are not."""
_MAX_DEPTH = 128


class _Open:
    """An open span and what the calls below it cost so far. `totals`, for a watched span (a job), keeps
    the whole breakdown; every other span keeps three numbers."""

    __slots__ = ("span", "parent_id", "cost", "calls", "unpriced", "totals")

    def __init__(self, span: Span, parent_id: int | None) -> None:
        self.span = span
        self.parent_id = parent_id
        self.cost = Decimal(0)
        self.calls = 0
        self.unpriced = 0
        self.totals: Any = None


class _BoundedSet(Bounded[int, None]):
    """Recently seen span ids, oldest forgotten first, so memory stays bounded on a busy process."""

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        super().__init__(limit)

    def add(self, item: int) -> None:
        self.put(item, None)

    def discard(self, item: int) -> None:
        self.pop(item, None)


_INFERENCE_OPERATIONS = frozenset({
    "chat", "text_completion", "generate_content", "embeddings", "completion", "completions", "generate",
    "embedding", "responses", "image_generation", "transcription", "translation", "speech", "rerank",
})
"""`gen_ai.operation.name` values of a model call (semconv's and the older names peers still send)."""
_NOT_CALLS = frozenset({"workflow", "task", "agent", "tool"})
"""OpenLLMetry's `traceloop.span.kind` values of spans that wrap calls rather than make one."""
_OVERLAP_SLACK_NS = 1_000_000_000
"""How far apart in time two spans of one call may be recorded (a run tree rebuilt from callbacks)."""
_RECENT_PER_KEY = 64


class _OurCall:
    """One of our calls, as a foreign span of the same call would show it."""

    __slots__ = ("models", "start", "end", "matched")

    def __init__(self, models: frozenset[str], start: int, end: int) -> None:
        self.models, self.start, self.end = models, start, end
        self.matched: set[str] = set()


def _model_key(model: Any) -> str:
    """`openai/gpt-4o` and `gpt-4o` alike: the part after any provider prefix, lower case."""
    return str(model).rsplit("/", 1)[-1].lower() if model else ""


class CostSpanProcessor(SpanProcessor):
    def __init__(
        self,
        totals: SessionTotals | None = None,
        *,
        guard: Any = None,
        price_book: PriceBook | None = None,
    ) -> None:
        self.totals = totals or SessionTotals()
        self.guard = guard
        self.price_book = price_book or default_price_book()
        self._listeners: list[RecordListener] = []
        self._on_shutdown: list[Callable[[], Any]] = []
        self._on_flush: list[Callable[[], Any]] = []
        self._lock = threading.Lock()
        self._ours_open = _BoundedSet()
        self._ours_ended = _BoundedSet()
        self._below_ours = _BoundedSet()
        self._has_counted_child = _BoundedSet()
        self._open: dict[int, _Open] = {}
        self._recent_calls: Bounded[tuple[int, int], list[_OurCall]] = Bounded(8192)
        self.foreign_counted = 0
        self.foreign_skipped = 0

    def add_listener(self, listener: RecordListener, *, flush: Callable[[], Any] | None = None,
                     shutdown: Callable[[], Any] | None = None) -> None:
        """Call `listener` for each counted call; `flush` and `shutdown` run with the processor's own
        (the ledger writes its queue when the tracer provider shuts down)."""
        self._listeners.append(listener)
        if flush is not None:
            self._on_flush.append(flush)
        if shutdown is not None:
            self._on_shutdown.append(shutdown)

    # --- SpanProcessor ---
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._on_start(span)
        except Exception:
            exception_once(_logger, "processor-on-start", "otel-llm-cost: CostSpanProcessor.on_start failed")

    def _on_start(self, span: Span) -> None:
        parent = span.parent
        scope = span.instrumentation_scope
        ours = scope is not None and scope.name == SCOPE_NAME
        if ours:
            with self._lock:
                self._ours_open.add(span.context.span_id)
            if attr.GEN_AI_OPERATION_NAME in span.attributes:  # a call: nothing is ever rolled up into it
                return
        if len(self._open) < _OPEN_LIMIT:
            self._open[span.context.span_id] = _Open(span, parent.span_id if parent is not None else None)
        if ours:
            return
        if parent is not None and (parent.span_id in self._ours_open or parent.span_id in self._below_ours):
            with self._lock:
                self._below_ours.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._open.pop(span.context.span_id, None)
            scope = span.instrumentation_scope
            if scope is not None and scope.name == SCOPE_NAME:
                self._on_our_span(span)
            elif _is_genai_call(span.attributes):
                self._on_foreign_span(span)
        except Exception:
            exception_once(_logger, "processor-on-end", "otel-llm-cost: CostSpanProcessor.on_end failed")

    def shutdown(self) -> None:
        for hook in self._on_shutdown:
            try:
                hook()
            except Exception:
                exception_once(_logger, ("shutdown", hook), "otel-llm-cost: a shutdown hook failed")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        done = True
        for hook in self._on_flush:
            try:
                done = hook() is not False and done
            except Exception:
                exception_once(_logger, ("flush", hook), "otel-llm-cost: a flush hook failed")
                done = False
        return done

    # --- ours ---
    def _on_our_span(self, span: ReadableSpan) -> None:
        span_id = span.context.span_id
        with self._lock:
            self._ours_open.discard(span_id)
            self._ours_ended.add(span_id)
            if span.parent is not None:
                self._has_counted_child.add(span.parent.span_id)
        record = take_exact_record(span_id)
        if record is None:
            attributes = span.attributes
            if not attributes or attr.GEN_AI_OPERATION_NAME not in attributes:
                return  # one of ours that is not a call: a batch_results span
            record = _record_from_attributes(attributes, self.price_book, ours=True)
        if record is None:
            return
        if record.outcome != "blocked":
            self.totals.add(record)
            self._remember_call(record, span)
        self._notify(record, span, True)

    def _remember_call(self, record: CallRecord, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        models = frozenset(_model_key(m) for m in (record.model, attributes.get(attr.GEN_AI_REQUEST_MODEL)) if m)
        key = (record.usage.input_tokens, record.usage.output_tokens)
        with self._lock:
            calls = self._recent_calls.get(key)
            if calls is None:
                calls = []
                self._recent_calls.put(key, calls)
            calls.append(_OurCall(models, span.start_time or 0, span.end_time or 0))
            del calls[:-_RECENT_PER_KEY]

    def _same_as_ours(self, span: ReadableSpan, record: CallRecord) -> bool:
        """A foreign span of a call we counted, wherever its tree put it (see the module docstring)."""
        calls = self._recent_calls.get((record.usage.input_tokens, record.usage.output_tokens))
        if not calls:
            return False
        attributes = span.attributes or {}
        models = {_model_key(m) for m in (record.model, attributes.get(attr.GEN_AI_REQUEST_MODEL)) if m}
        scope = span.instrumentation_scope.name if span.instrumentation_scope is not None else ""
        start, end = span.start_time or 0, span.end_time or 0
        with self._lock:
            for call in reversed(calls):
                if scope in call.matched or not _models_match(models, call.models):
                    continue
                if start <= call.end + _OVERLAP_SLACK_NS and end >= call.start - _OVERLAP_SLACK_NS:
                    call.matched.add(scope)
                    return True
        return False

    # --- foreign ---
    def _on_foreign_span(self, span: ReadableSpan) -> None:
        span_id = span.context.span_id
        parent_id = span.parent.span_id if span.parent is not None else None
        with self._lock:
            duplicate = (
                span_id in self._below_ours
                or span_id in self._has_counted_child
                or (parent_id is not None and (parent_id in self._ours_open or parent_id in self._ours_ended))
            )
            if parent_id is not None:
                self._has_counted_child.add(parent_id)
        if duplicate:
            self.foreign_skipped += 1
            return
        record = _record_from_attributes(span.attributes, self.price_book, ours=False)
        if record is None:
            return
        if self._same_as_ours(span, record):
            self.foreign_skipped += 1
            return
        self.foreign_counted += 1
        self.totals.add(record)
        if self.guard is not None and record.cost:
            from otel_llm_cost.context import SessionContext

            session = SessionContext(record.session_id, record.user_id, record.tags)
            self.guard.record_unreserved(record.cost, session)
        self._notify(record, span, False)

    def watch(self, span: Span) -> Any:
        """Keep the whole breakdown (a `_Totals`) of the calls below this open span: a job's summary."""
        entry = self._open.get(span.get_span_context().span_id)
        if entry is None:
            return None
        entry.totals = _Totals()
        return entry.totals

    def _roll_up(self, record: CallRecord, span: ReadableSpan) -> None:
        """Add the call to every ancestor still open, and write the sums onto each."""
        if record.outcome == "blocked" or span.parent is None:
            return
        cost, unpriced = record.cost, record.cost is None
        now = None
        with self._lock:
            entry, depth = self._open.get(span.parent.span_id), 0
            while entry is not None and depth < _MAX_DEPTH:
                entry.calls += 1
                if unpriced:
                    entry.unpriced += 1
                elif cost:
                    entry.cost += cost
                if entry.totals is not None:
                    now = now or datetime.now(UTC)
                    entry.totals.add(record, now)
                entry.span.set_attributes({attr.LLM_COST_ROLLUP_COST: float(entry.cost),
                                           attr.LLM_COST_ROLLUP_CALLS: entry.calls,
                                           attr.LLM_COST_ROLLUP_UNPRICED_CALLS: entry.unpriced})
                entry = self._open.get(entry.parent_id) if entry.parent_id is not None else None
                depth += 1

    def _notify(self, record: CallRecord, span: ReadableSpan, ours: bool) -> None:
        try:
            self._roll_up(record, span)
        except Exception:
            exception_once(_logger, "roll-up", "otel-llm-cost: could not roll a call's cost up its parents")
        for listener in self._listeners:
            try:
                listener(record, span, ours)
            except Exception:
                exception_once(_logger, ("listener", listener), "otel-llm-cost: a record listener failed")


def _is_genai_call(attributes: Mapping[str, Any] | None) -> bool:
    if not attributes:
        return False
    has_system = attr.GEN_AI_PROVIDER_NAME in attributes or attr.GEN_AI_SYSTEM in attributes
    has_usage = (
        attr.GEN_AI_USAGE_INPUT_TOKENS in attributes
        or attr.GEN_AI_USAGE_OUTPUT_TOKENS in attributes
        or attr.GEN_AI_USAGE_PROMPT_TOKENS in attributes
    )
    if not (has_system and has_usage):
        return False
    operation = attributes.get(attr.GEN_AI_OPERATION_NAME)
    if operation is not None and operation not in _INFERENCE_OPERATIONS:
        return False  # a chain, agent, tool or workflow span: it sums calls, it is not one
    return attributes.get("traceloop.span.kind") not in _NOT_CALLS


def _models_match(theirs: set[str], ours: frozenset[str]) -> bool:
    """The same model, as two instrumentations name it (`gpt-4o` and `gpt-4o-2024-08-06`)."""
    return any(a == b or a.startswith(b) or b.startswith(a) for a in theirs for b in ours if a and b)


def _int(attributes: Mapping[str, Any], *names: str) -> int:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _usage_from_attributes(a: Mapping[str, Any]) -> Usage:
    """gen_ai.usage.* as the semantic conventions define them: input tokens include cached ones."""
    cache_write = _int(a, attr.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                       "gen_ai.usage.cache_creation_input_tokens")
    write_1h = min(cache_write, _int(a, "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"))
    return Usage(
        input_tokens=_int(a, attr.GEN_AI_USAGE_INPUT_TOKENS, attr.GEN_AI_USAGE_PROMPT_TOKENS),
        output_tokens=_int(a, attr.GEN_AI_USAGE_OUTPUT_TOKENS, attr.GEN_AI_USAGE_COMPLETION_TOKENS),
        cache_read_tokens=_int(a, attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "gen_ai.usage.cache_read_input_tokens"),
        cache_write_5m_tokens=cache_write - write_1h,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=_int(a, attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
    ).checked()


def _record_from_attributes(a: Mapping[str, Any] | None, book: PriceBook, *, ours: bool) -> CallRecord | None:
    if a is None:
        return None
    provider = str(a.get(attr.GEN_AI_PROVIDER_NAME) or a.get(attr.GEN_AI_SYSTEM) or "unknown")
    model = str(a.get(attr.GEN_AI_RESPONSE_MODEL) or a.get(attr.GEN_AI_REQUEST_MODEL) or "unknown")
    usage = _usage_from_attributes(a)
    outcome = "blocked" if a.get(attr.LLM_COST_BUDGET_OUTCOME) == "blocked" else (
        "error" if attr.ERROR_TYPE in a else "ok")
    cost: Decimal | None
    if ours:
        amount = a.get(attr.GEN_AI_USAGE_COST_AMOUNT)
        cost = Decimal(repr(amount)) if isinstance(amount, float) else None
    else:
        tier = a.get(attr.GEN_AI_RESPONSE_SERVICE_TIER) or a.get(attr.OPENAI_RESPONSE_SERVICE_TIER)
        priced = book.compute_cost(provider, model, usage, service_tier=tier if isinstance(tier, str) else None)
        cost = priced.total if priced is not None else None
    if cost is None and (outcome != "ok" and usage.total_tokens == 0):
        cost = Decimal(0)  # nothing was billed: a known zero, not an unknown price
    tags = {k[len(attr.LLM_COST_TAG_PREFIX):]: str(v) for k, v in a.items() if k.startswith(attr.LLM_COST_TAG_PREFIX)}
    session_id, user_id = a.get(attr.SESSION_ID), a.get(attr.USER_ID)
    return CallRecord(provider, model, usage, cost, str(session_id) if session_id is not None else None,
                      str(user_id) if user_id is not None else None, tags, outcome)

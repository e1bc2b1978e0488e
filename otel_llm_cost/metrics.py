"""The instruments of the public contract (names in `attributes.py`), fed by the processor once per counted call.

Labels are bounded: provider, operation, request and response model, plus only the context tags the
user lists in OTEL_LLM_COST_METRIC_TAGS. Session and user ids are never labels. Budgets are
observable gauges with one series per budget; a per-session or per-user budget shows its worst key
and its count of exhausted keys, never a series per key.

Cost per call: the OTel SDK (1.45) copies, validates and hashes the attributes of every measurement,
about 8 µs each, and a call makes seven or eight. So attribute sets are built once per series and
reused, and counter increments (`llm_cost.calls`, `llm_cost.tokens`) are summed here per series and
handed to the SDK just before each collection: a counter exports its sum, which is the same either
way, for one SDK measurement per series per collection instead of one per call. Histograms are
recorded per call, as their buckets need every value.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_cost import attributes as attr
from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import exception_once
from otel_llm_cost.sessions import CallRecord

_logger = logging.getLogger(__name__)

__all__ = ["CostMetrics", "TOKEN_BUCKETS", "DURATION_BUCKETS", "COST_BUCKETS"]

# GenAI semantic conventions' advice for gen_ai.client.token.usage and gen_ai.client.operation.duration
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# USD per call from one millionth of a dollar to $100: 1-2-5 steps, so p50/p95 interpolate well
COST_BUCKETS = tuple(m * 10.0**e for e in range(-6, 2) for m in (1, 2, 5)) + (100.0,)

_COMMON = (_PROVIDER, _OPERATION, _REQUEST_MODEL, _RESPONSE_MODEL) = (
    attr.GEN_AI_PROVIDER_NAME, attr.GEN_AI_OPERATION_NAME, attr.GEN_AI_REQUEST_MODEL, attr.GEN_AI_RESPONSE_MODEL)
_MAX_SERIES = 10_000
"""Attribute sets kept for reuse; beyond this (a cardinality the SDK itself caps at 2,000 a metric) the
oldest are rebuilt when next needed rather than the cache growing."""


class _PendingSums:
    """Counter increments per attribute set, summed until the next collection. An attribute set is one
    cached dict, so its identity is the key (the entry holds the dict, so the id cannot be reused)."""

    __slots__ = ("_lock", "_sums")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[tuple[int, int], list[Any]] = {}

    def add(self, increments: list[tuple[Counter, dict[str, Any], int]]) -> None:
        with self._lock:
            sums = self._sums
            for counter, attributes, amount in increments:
                key = (id(counter), id(attributes))
                entry = sums.get(key)
                if entry is None:
                    sums[key] = [counter, attributes, amount]
                else:
                    entry[2] += amount

    def flush(self, options: CallbackOptions) -> Iterable[Observation]:
        """An observable instrument's first callback: the SDK runs every callback before it reads the
        synchronous instruments, so what is flushed here is in this very collection."""
        with self._lock:
            sums, self._sums = self._sums, {}
        for counter, attributes, amount in sums.values():
            counter.add(amount, attributes)
        return ()


class CostMetrics:
    def __init__(self, meter_provider: MeterProvider, guard: Any = None, metric_tags: Sequence[str] = (),
                 ledger: Any = None) -> None:
        from otel_llm_cost import __version__

        meter = meter_provider.get_meter("otel_llm_cost", __version__)
        self._guard = guard
        self._tags = tuple(metric_tags)
        self._attribute_sets: Bounded[tuple[Any, ...], dict[str, Any]] = Bounded(_MAX_SERIES)
        self._pending = _PendingSums()
        self.token_usage = meter.create_histogram(
            attr.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per call, by input and output.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS))
        self.duration = meter.create_histogram(
            attr.METRIC_OPERATION_DURATION, unit="s", description="Duration of LLM calls.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))
        self.cost = meter.create_histogram(
            attr.METRIC_OPERATION_COST, unit="USD", description="Cost of each priced LLM call in US dollars.",
            explicit_bucket_boundaries_advisory=list(COST_BUCKETS))
        self.tokens = meter.create_counter(
            attr.METRIC_TOKENS, unit="{token}", description="Tokens by type: input, cache_read, cache_write, "
            "output, reasoning (cache and reasoning are subsets of input and output).")
        self.calls = meter.create_counter(
            attr.METRIC_CALLS, unit="{call}", description="LLM calls by outcome and whether their price is known.")
        self.blocked = meter.create_counter(
            attr.METRIC_BUDGET_BLOCKED, unit="{call}", description="Calls refused by a budget before being sent.")
        if ledger is not None:
            meter.create_observable_counter(
                attr.METRIC_LEDGER_DROPPED, [lambda options: [Observation(ledger.dropped)]], unit="{row}",
                description="Usage ledger rows lost: the writer's queue was full, or the database refused the row.")
            meter.create_observable_counter(
                attr.METRIC_LEDGER_SPOOLED, [lambda options: [Observation(ledger.spooled)]], unit="{row}",
                description="Usage ledger rows written to a spool file because the database was down.")
        meter.create_observable_gauge(attr.METRIC_BUDGET_LIMIT, [self._pending.flush, self._observe("limit")], unit="USD",
                                      description="Budget limit.")
        meter.create_observable_gauge(attr.METRIC_BUDGET_SPENT, [self._observe("spent")], unit="USD",
                                      description="Budget spent in the current window (worst key for per-key budgets).")
        meter.create_observable_gauge(attr.METRIC_BUDGET_REMAINING, [self._observe("remaining")], unit="USD",
                                      description="Budget remaining in the current window.")
        meter.create_observable_gauge(attr.METRIC_BUDGET_UTILIZATION, [self._observe("utilization")], unit="1",
                                      description="Spent and reserved over limit (worst key for per-key budgets).")
        meter.create_observable_gauge(attr.METRIC_BUDGET_EXHAUSTED_KEYS, [self._observe("exhausted_keys")],
                                      unit="{key}", description="Keys of a per-session/user/tag budget at or over "
                                      "their limit.")

    # --- per call (a processor listener) ---
    def record(self, record: CallRecord, span: ReadableSpan, ours: bool) -> None:
        a = span.attributes or {}
        series = (a.get(_PROVIDER), a.get(_OPERATION), a.get(_REQUEST_MODEL), a.get(_RESPONSE_MODEL))
        if not ours and series[0] is None:
            series = (record.provider, *series[1:])
        if self._tags:
            series += tuple(record.tags.get(tag) for tag in self._tags)
        labels = self._attributes(series)
        known = record.cost is not None
        if record.outcome == "blocked":
            budget = str(a.get(attr.LLM_COST_BUDGET_NAME, "unknown"))
            self.blocked.add(1, {**labels, attr.LLM_COST_BUDGET_NAME: budget})
            self._pending.add([(self.calls, self._attributes(series, (attr.LLM_COST_OUTCOME, "blocked"),
                                                             (attr.LLM_COST_PRICING_KNOWN, known)), 1)])
            return
        counts = [(self.calls, self._attributes(series, (attr.LLM_COST_OUTCOME, record.outcome),
                                                (attr.LLM_COST_PRICING_KNOWN, known)), 1)]
        if span.end_time is not None and span.start_time is not None:
            duration_labels = labels if record.outcome == "ok" else {**labels, attr.ERROR_TYPE: str(a.get(attr.ERROR_TYPE))}
            self.duration.record((span.end_time - span.start_time) / 1e9, duration_labels)
        usage = record.usage
        if usage.total_tokens:
            self.token_usage.record(usage.input_tokens, self._attributes(series, (attr.GEN_AI_TOKEN_TYPE, "input")))
            self.token_usage.record(usage.output_tokens, self._attributes(series, (attr.GEN_AI_TOKEN_TYPE, "output")))
            for token_type, count in (("input", usage.input_tokens), ("cache_read", usage.cache_read_tokens),
                                      ("cache_write", usage.cache_write_tokens), ("output", usage.output_tokens),
                                      ("reasoning", usage.reasoning_tokens)):
                if count:
                    counts.append((self.tokens, self._attributes(series, (attr.LLM_COST_TOKEN_TYPE, token_type)), count))
        self._pending.add(counts)
        if known and (usage.total_tokens or record.cost):
            self.cost.record(float(record.cost), labels)  # type: ignore[arg-type]

    def _attributes(self, series: tuple[Any, ...], *extra: tuple[str, Any] | None) -> dict[str, Any]:
        """The attribute set of a series (common labels, listed tags, then `extra` pairs), built once.
        The SDK copies what it is given, so one dict serves every call of the series."""
        key = (series, *extra)
        found = self._attribute_sets.get(key)
        if found is None:
            found = {name: str(value) for name, value in zip(_COMMON, series) if value is not None}
            for tag, value in zip(self._tags, series[len(_COMMON):]):
                if value is not None:
                    found[attr.LLM_COST_TAG_PREFIX + tag] = value
            found.update(pair for pair in extra if pair is not None)
            self._attribute_sets.put(key, found)
        return found

    # --- budgets (observed at each collection) ---
    def _observe(self, field: str) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            guard = self._guard
            if guard is None:
                return []
            observations = []
            try:
                for status in guard.statuses():
                    labels = {attr.LLM_COST_BUDGET_NAME: status.name, attr.LLM_COST_BUDGET_WINDOW: status.window}
                    value: Any = getattr(status, field)
                    observations.append(Observation(float(value), labels))
            except Exception:  # a shared store that cannot be reached: no budget series this scrape
                exception_once(_logger, "budget-gauges", "otel-llm-cost: could not read the budgets for metrics")
                return []
            return observations

        return callback

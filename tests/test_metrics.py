"""Metric names, units, buckets and labels of ARCHITECTURE section 3, checked with InMemoryMetricReader
and through the real Prometheus exporter's exposition."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm_cost.budget import Budget, BudgetExceededError
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.stores import MemoryStore
from otel_llm_cost.context import session
from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.metrics import COST_BUCKETS, CostMetrics
from otel_llm_cost.processor import CostSpanProcessor

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def wired(tracer_provider, settings):
    from otel_llm_cost import _state

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    guard = BudgetGuard(MemoryStore())
    _state.set_budget_hook(guard)
    processor = CostSpanProcessor(guard=guard)
    processor.add_listener(CostMetrics(meter_provider, guard, metric_tags=("feature",)).record)
    tracer_provider.add_span_processor(processor)
    instrument(tracer_provider=tracer_provider)
    yield reader, guard, meter_provider
    uninstrument()
    _state.set_budget_hook(None)


def _metrics(reader) -> dict:
    data = reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def _points(metric) -> list:
    return list(metric.data.data_points)


def test_instruments_names_units_and_values(wired, openai_client, fake):
    reader, guard, _ = wired
    fake.set_model("gpt-4o", input_tokens=10_000, cache_read_tokens=8_000, output_tokens=500, reasoning_tokens=0)
    with session("s1", user_id="alice", feature="summarize", team="search"):
        for _ in range(2):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    m = _metrics(reader)
    assert {name: m[name].unit for name in (
        "gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.client.operation.cost",
        "llm_cost.tokens", "llm_cost.calls")} == {
        "gen_ai.client.token.usage": "{token}", "gen_ai.client.operation.duration": "s",
        "gen_ai.client.operation.cost": "USD", "llm_cost.tokens": "{token}", "llm_cost.calls": "{call}"}
    cost = _points(m["gen_ai.client.operation.cost"])[0]
    assert cost.count == 2 and cost.sum == pytest.approx(0.04)  # 0.005 + 0.01 + 0.005 per call
    assert list(cost.explicit_bounds) == list(COST_BUCKETS) and cost.explicit_bounds[0] == 1e-6
    assert cost.explicit_bounds[-1] == 100
    tokens = {p.attributes["llm_cost.token.type"]: p.value for p in _points(m["llm_cost.tokens"])}
    assert tokens == {"input": 20_000, "cache_read": 16_000, "output": 1_000}
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in _points(m["gen_ai.client.token.usage"])}
    assert usage == {"input": 20_000, "output": 1_000}
    calls = _points(m["llm_cost.calls"])[0]
    assert calls.value == 2
    # bounded labels: common attributes plus the opted-in tag; never session or user ids
    assert dict(calls.attributes) == {
        "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o", "llm_cost.tag.feature": "summarize",
        "llm_cost.outcome": "ok", "llm_cost.pricing.known": True}


def test_unknown_price_counts_the_call_and_records_no_cost(wired, openai_client):
    reader, _, _ = wired
    openai_client.chat.completions.create(model="no-price-model", messages=MESSAGES)
    m = _metrics(reader)
    calls = _points(m["llm_cost.calls"])[0]
    assert calls.attributes["llm_cost.pricing.known"] is False and calls.value == 1
    assert "gen_ai.client.operation.cost" not in m


def test_budget_gauges_one_series_per_budget_and_blocked_counter(wired, openai_client, fake):
    reader, guard, _ = wired
    guard.set(Budget.create("0.001", name="per-session", scope="session"))
    guard.set(Budget.create("10", name="monthly", window="month"))
    fake.set_model("gpt-4o", output_tokens=50)
    for s in range(20):  # 20 sessions: still one series per budget
        with session(f"s{s}"):
            try:
                for _ in range(10):
                    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
            except BudgetExceededError:
                pass
    m = _metrics(reader)
    for name in ("llm_cost.budget.limit", "llm_cost.budget.spent", "llm_cost.budget.remaining",
                 "llm_cost.budget.utilization", "llm_cost.budget.exhausted_keys"):
        points = _points(m[name])
        assert sorted(p.attributes["llm_cost.budget.name"] for p in points) == ["monthly", "per-session"], name
        assert all(set(p.attributes) == {"llm_cost.budget.name", "llm_cost.budget.window"} for p in points)
    limits = {p.attributes["llm_cost.budget.name"]: p.value for p in _points(m["llm_cost.budget.limit"])}
    assert limits == {"per-session": 0.001, "monthly": 10.0}
    spent = {p.attributes["llm_cost.budget.name"]: p.value for p in _points(m["llm_cost.budget.spent"])}
    assert spent["monthly"] == pytest.approx(float(guard.status("monthly").spent))
    blocked = _points(m["llm_cost.budget.blocked"])
    assert sum(p.value for p in blocked) == 20 and blocked[0].attributes["llm_cost.budget.name"] == "per-session"
    outcomes = {p.attributes["llm_cost.outcome"]: p.value for p in _points(m["llm_cost.calls"])}
    assert outcomes["blocked"] == 20


def test_prometheus_exposition_names(wired, tracer_provider, openai_client, fake):
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, generate_latest

    _, guard, _ = wired
    guard.set(Budget.create("5", name="global-day", window="day"))
    guard.set(Budget.create(0, name="frozen-session", scope="session"))
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    try:
        processor = CostSpanProcessor(guard=guard)
        processor.add_listener(CostMetrics(meter_provider, guard).record)
        tracer_provider.add_span_processor(processor)
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with session("blocked"), pytest.raises(BudgetExceededError):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        exposition = generate_latest(REGISTRY).decode()
    finally:
        meter_provider.shutdown()  # unregisters the exporter's collector
    names = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}
    for expected in (
        "gen_ai_client_operation_cost_USD_bucket", "gen_ai_client_operation_cost_USD_sum",
        "gen_ai_client_operation_cost_USD_count", "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_token_usage_bucket", "llm_cost_tokens_total", "llm_cost_calls_total",
        "llm_cost_budget_limit_USD", "llm_cost_budget_spent_USD", "llm_cost_budget_remaining_USD",
        "llm_cost_budget_utilization", "llm_cost_budget_blocked_total", "llm_cost_budget_exhausted_keys",
    ):
        assert expected in names, expected
    assert 'session_id' not in exposition and 'user_id' not in exposition


def test_metrics_come_out_once_per_call_with_peers_active(tracer_provider, settings, openai_client, fake):
    reader = InMemoryMetricReader()
    processor = CostSpanProcessor()
    processor.add_listener(CostMetrics(MeterProvider(metric_readers=[reader])).record)
    tracer_provider.add_span_processor(processor)
    other = pytest.importorskip("opentelemetry.instrumentation.genai.openai").OpenAIInstrumentor()
    instrument(tracer_provider=tracer_provider)
    other.instrument(tracer_provider=tracer_provider)
    try:
        for _ in range(4):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        other.uninstrument()
        uninstrument()
    calls = _points(_metrics(reader)["llm_cost.calls"])
    assert sum(p.value for p in calls) == 4


def test_decimal_costs_sum_exactly_in_totals(wired, openai_client, fake):
    reader, _, _ = wired
    fake.set_model("gpt-4o-mini", input_tokens=333, output_tokens=77)
    for _ in range(3):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    cost = _points(_metrics(reader)["gen_ai.client.operation.cost"])[0]
    per_call = Decimal(333) * Decimal("0.15") / 10**6 + Decimal(77) * Decimal("0.6") / 10**6
    assert cost.sum == pytest.approx(float(per_call * 3), rel=1e-12)


def test_summed_counters_reach_every_reader_exactly_and_in_the_same_collection(tracer_provider, settings,
                                                                              openai_client, fake):
    """Counter increments are summed between collections (one SDK measurement per series): every call is
    still counted, in the first collection after it, by each reader, from any number of threads."""
    import threading

    from otel_llm_cost import _state

    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    processor = CostSpanProcessor(guard=None)
    processor.add_listener(CostMetrics(MeterProvider(metric_readers=[first, second])).record)
    tracer_provider.add_span_processor(processor)
    instrument(tracer_provider=tracer_provider)
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    try:
        def calls(n: int) -> None:
            for _ in range(n):
                openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        threads = [threading.Thread(target=calls, args=(10,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        def totals(reader) -> tuple[int, dict]:
            m = _metrics(reader)
            tokens = {p.attributes["llm_cost.token.type"]: p.value for p in _points(m["llm_cost.tokens"])}
            return sum(p.value for p in _points(m["llm_cost.calls"])), tokens

        assert totals(first) == (40, {"input": 40_000, "output": 4_000})  # flushed by this very collection
        calls(2)
        assert totals(second) == (42, {"input": 42_000, "output": 4_200})  # the other reader, cumulative
        assert totals(first) == (42, {"input": 42_000, "output": 4_200})
    finally:
        uninstrument()
        _state.set_budget_hook(None)

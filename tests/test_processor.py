"""The processor counts each call exactly once, prices foreign spans, and keeps bounded totals."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import pytest

from otel_llm_cost import _state
from otel_llm_cost.context import session
from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.processor import CostSpanProcessor
from otel_llm_cost.sessions import CallRecord, SessionTotals, last_usage
from otel_llm_cost.usage import Usage

D = Decimal
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def processor(tracer_provider, settings):
    processor = CostSpanProcessor()
    tracer_provider.add_span_processor(processor)
    return processor


@pytest.fixture(autouse=True)
def _restore_sdk_methods():
    from otel_llm_cost.instrumentation._instrumentor import _resolve
    from otel_llm_cost.instrumentation.openai import OpenAIInstrumentor

    methods = [(_resolve(t), t.name.rsplit(".", 1)[-1]) for t in OpenAIInstrumentor.targets]
    before = [(owner, name, owner.__dict__[name]) for owner, name in methods]
    yield
    for owner, name, original in before:
        setattr(owner, name, original)


def test_anthropic_native_spans_on_each_call_counted_once(tracer_provider, processor, fake):
    fake.set_model("claude-haiku-4-5", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=500)
    client = anthropic.Anthropic(base_url=fake.anthropic_url, api_key="k", max_retries=0,
                                 open_telemetry={"tracer_provider": tracer_provider})
    instrument(tracer_provider=tracer_provider)
    try:
        with session("native"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=600, messages=MESSAGES)
            list(client.messages.create(model="claude-haiku-4-5", max_tokens=600, messages=MESSAGES, stream=True))
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=600, messages=MESSAGES) as s:
                s.get_final_message()
    finally:
        uninstrument()
    summary = processor.totals.session("native")
    # Claude Haiku 4.5: $1 in, $0.10 cache read, $5 out per 1M: 0.006 + 0.0004 + 0.0025 per call
    assert summary.calls == 3 and summary.cost == 3 * D("0.0089")
    assert processor.foreign_skipped == 3 and processor.foreign_counted == 0


def test_foreign_spans_alone_are_priced_from_gen_ai_usage(tracer_provider, processor, fake):
    fake.set_model("claude-haiku-4-5", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=500)
    client = anthropic.Anthropic(base_url=fake.anthropic_url, api_key="k", max_retries=0,
                                 open_telemetry={"tracer_provider": tracer_provider})
    client.messages.create(model="claude-haiku-4-5", max_tokens=600, messages=MESSAGES)  # not instrumented by us
    total = processor.totals.session(None)
    assert (total.calls, total.cost, total.cache_read_tokens) == (1, D("0.0089"), 4_000)
    assert processor.foreign_counted == 1


@pytest.mark.parametrize("module", ["opentelemetry.instrumentation.genai.openai", "opentelemetry.instrumentation.openai"])
@pytest.mark.parametrize("ours_first", [True, False])
def test_other_openai_instrumentation_each_call_counted_once(tracer_provider, processor, openai_client, fake, module,
                                                             ours_first):
    other = pytest.importorskip(module).OpenAIInstrumentor()
    fake.set_model("gpt-4o-mini", input_tokens=10_000, output_tokens=1_000)
    steps = [lambda: instrument(tracer_provider=tracer_provider), lambda: other.instrument(tracer_provider=tracer_provider)]
    for step in steps if ours_first else reversed(steps):
        step()
    try:
        with session("mixed"):
            for _ in range(3):
                openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        other.uninstrument()
        uninstrument()
    summary = processor.totals.session("mixed")
    assert summary.calls == 3 and summary.cost == 3 * D("0.0021")
    assert processor.totals.session(None).calls == 3


def test_summary_by_model_provider_and_formats(tracer_provider, processor, openai_client, anthropic_client, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    fake.set_model("claude-haiku-4-5", input_tokens=2_000, output_tokens=200)
    instrument(tracer_provider=tracer_provider)
    try:
        with session("chat-42", user_id="alice", feature="summarize"):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=MESSAGES)
            openai_client.chat.completions.create(model="unpriced-model", messages=MESSAGES)
            assert last_usage().model == "unpriced-model" and last_usage().cost is None
    finally:
        uninstrument()
    s = processor.totals.session("chat-42")
    # gpt-4o: 0.0025 + 0.001 each; haiku: 0.002 + 0.001
    assert (s.calls, s.unpriced_calls, s.cost) == (4, 1, D("0.01"))
    assert s.avg_cost_per_call == D("0.01") / 3  # over priced calls: an unknown price is not free
    unpriced_tokens = s.by_model()["unpriced-model"].total_tokens
    assert s.cost_per_1k_tokens == D("0.01") * 1000 / (s.total_tokens - unpriced_tokens)  # priced calls only
    assert list(s.by_model()) == ["gpt-4o", "claude-haiku-4-5", "unpriced-model"]
    assert {k: v.calls for k, v in s.by_provider().items()} == {"openai": 3, "anthropic": 1}
    assert processor.totals.user("alice").cost == D("0.01")
    assert processor.totals.tag("feature", "summarize").calls == 4
    table = s.format("table")
    assert "gpt-4o" in table and "unknown" in table and "0.010000" in table
    assert s.format("compact").startswith("chat-42: $0.010000 over 4 calls, 1 unpriced")
    detailed = s.format("detailed")
    assert "by model:" in detailed and "  calls           4 (0 errors)" in detailed
    unpriced_row = next(line for line in detailed.splitlines() if "unpriced-model" in line)
    assert unpriced_row.split()[1:3] == ["unknown", "1"] and "call " in unpriced_row  # never $0, and "1 call"
    assert "(+1 call with unknown price)" in detailed
    as_dict = s.to_dict()
    assert as_dict["by_model"]["gpt-4o"]["cost_usd"] == "0.007"
    # $0.01 over 4,400 priced tokens (2 x 1,100 gpt-4o + 2,200 haiku), ten decimals at most
    assert as_dict["cost_per_1k_tokens_usd"] == "0.0022727273" and as_dict["avg_cost_per_call_usd"] == "0.0033333333"
    assert processor.totals.session("no-such").format("compact") == "no-such: $0.000000 over 0 calls, 0 in / 0 out tokens"
    with pytest.raises(ValueError, match="format style"):
        s.format("fancy")


def test_lru_keeps_memory_bounded_and_global_totals_exact():
    totals = SessionTotals(max_keys=100)
    for i in range(5_000):
        totals.add(CallRecord("openai", "gpt-4o", Usage(input_tokens=10, output_tokens=1), D("0.001"),
                              session_id=f"s{i}", user_id=f"u{i}"), datetime.now(UTC))
    assert totals.session_count() == 100 and totals.evicted == 4_900 * 2
    everything = totals.session(None)
    assert (everything.calls, everything.cost) == (5_000, D("5.000"))
    assert totals.session("s4999").calls == 1 and totals.session("s0").calls == 0


def test_processor_errors_are_logged_once_and_swallowed(processor, caplog):
    class Broken:
        instrumentation_scope = None

        @property
        def attributes(self):
            raise RuntimeError("broken span")

    with caplog.at_level(logging.ERROR):
        processor.on_end(Broken())
        processor.on_end(Broken())
    assert sum("on_end failed" in r.getMessage() for r in caplog.records) == 1
    assert processor.force_flush() is True and processor.shutdown() is None


def test_public_api_end_to_end(tracer_provider, openai_client, fake):
    import otel_llm_cost as llm_cost
    from otel_llm_cost import _setup

    _setup.reset_for_tests()
    previous = _state._settings
    try:
        processor = llm_cost.configure(tracer_provider=tracer_provider, budget_usd="0.002", instrument=True)
        assert llm_cost.configure(tracer_provider=tracer_provider) is processor  # once
        fake.set_model("gpt-4o", output_tokens=10)
        blocked = 0
        with llm_cost.session("api"):
            for _ in range(100):
                try:
                    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
                except llm_cost.BudgetExceededError:
                    blocked += 1
        status = llm_cost.budget_remaining()
        assert blocked > 0 and status.spent <= D("0.002") and status.remaining == D("0.002") - status.spent
        assert llm_cost.session_usage("api").cost == status.spent
        llm_cost.clear_budget()
        assert llm_cost.budget_remaining() is None
        llm_cost.reset_usage()
        assert llm_cost.session_usage("api").calls == 0
        assert llm_cost.pricing_status().source in ("bundled", "custom")
    finally:
        uninstrument()
        _setup.reset_for_tests()
        _state._settings = previous

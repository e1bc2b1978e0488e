"""Real OpenAI clients over HTTP against the fake provider: every call's span carries the exact cost."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, only_span, our_spans

from otel_llm_cost.context import session

D = Decimal
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]



def test_chat_completion_span_has_usage_and_exact_cost(instrumented, openai_client, span_exporter, fake):
    fake.set_model("gpt-4o", input_tokens=10_000, cache_read_tokens=8_000, output_tokens=500)
    response = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=600)
    span = only_span(span_exporter)
    a = span.attributes
    assert span.name == "chat gpt-4o"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("chat", "openai", "gpt-4o")
    assert a["gen_ai.request.max_tokens"] == 600 and a["gen_ai.request.stream"] is False
    assert a["gen_ai.response.model"] == "gpt-4o" and a["gen_ai.response.id"] == response.id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10_000, 500)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 8_000
    # gpt-4o, https://openai.com/api/pricing (read 2024-10): $2.50 in, $1.25 cached, $10 out per 1M
    assert cost_of(span) == D("0.005") + D("0.01") + D("0.005")
    assert a["gen_ai.usage.cost"] == a["gen_ai.usage.cost.amount"]
    assert (a["gen_ai.usage.cost.currency"], a["gen_ai.usage.cost.source"]) == ("USD", "local")
    assert D(repr(a["llm_cost.cost.input"])) == D("0.015") and D(repr(a["llm_cost.cost.output"])) == D("0.005")
    assert (a["llm_cost.pricing.source"], a["llm_cost.pricing.model"]) == ("bundled", "gpt-4o")


def test_reasoning_tokens_and_reported_service_tier(instrumented, openai_client, span_exporter, fake):
    # The app asks for "auto"; the response reports "flex": the response's tier is billed.
    fake.set_model("gpt-5", input_tokens=1_000_000, output_tokens=100_000, reasoning_tokens=80_000, service_tier="flex")
    openai_client.chat.completions.create(model="gpt-5", messages=MESSAGES, service_tier="auto")
    a = only_span(span_exporter).attributes
    assert a["gen_ai.usage.reasoning.output_tokens"] == 80_000
    assert a["gen_ai.openai.request.service_tier"] == "auto"
    assert a["gen_ai.openai.response.service_tier"] == "flex"
    # gpt-5 flex, https://platform.openai.com/docs/pricing (read 2025-09): $0.625 in / $5 out per 1M
    assert cost_of(only_span(span_exporter)) == D("0.625") + D("0.5")


def test_streamed_call_is_billed_at_the_tier_the_stream_reports(instrumented, openai_client, span_exporter, fake):
    fake.set_model("gpt-5", input_tokens=1_000_000, output_tokens=100_000, service_tier="flex", chunks=5)
    chunks = list(openai_client.chat.completions.create(model="gpt-5", messages=MESSAGES, stream=True,
                                                        service_tier="auto"))
    assert all(c.service_tier == "flex" for c in chunks)
    a = only_span(span_exporter).attributes
    assert (a["gen_ai.openai.request.service_tier"], a["gen_ai.openai.response.service_tier"]) == ("auto", "flex")
    # gpt-5 flex, https://platform.openai.com/docs/pricing (read 2025-09): $0.625 in / $5 out per 1M
    assert cost_of(only_span(span_exporter)) == D("0.625") + D("0.5")


def test_async_chat_completion(instrumented, async_openai_client, span_exporter, fake):
    fake.set_model("gpt-4o-mini", input_tokens=2_000, output_tokens=1_000)
    asyncio.run(async_openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    # gpt-4o-mini $0.15 / $0.60 per 1M: 0.0003 + 0.0006
    assert cost_of(only_span(span_exporter)) == D("0.0009")


def test_responses_api_sync_async_and_stream(instrumented, openai_client, async_openai_client, span_exporter, fake):
    fake.set_model("gpt-4.1", input_tokens=4_000, cache_read_tokens=2_000, output_tokens=300)
    openai_client.responses.create(model="gpt-4.1", input="Summarise the news", max_output_tokens=400)
    asyncio.run(async_openai_client.responses.create(model="gpt-4.1", input="Summarise"))
    events = [e.type for e in openai_client.responses.create(model="gpt-4.1", input="Summarise", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    spans = our_spans(span_exporter)
    assert len(spans) == 3
    # gpt-4.1, https://openai.com/api/pricing (2025-04-14): $2 in, $0.50 cached, $8 out per 1M
    for span in spans:
        assert cost_of(span) == D("0.004") + D("0.001") + D("0.0024")
        assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 2_000
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, False, True]


def test_embeddings(instrumented, openai_client, span_exporter, fake):
    fake.set_model("text-embedding-3-small", input_tokens=5_000)
    openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    span = only_span(span_exporter)
    assert span.name == "embeddings text-embedding-3-small"
    # text-embedding-3-small $0.02 per 1M: https://openai.com/api/pricing (read 2024-10)
    assert cost_of(span) == D("0.0001")


def test_unknown_model_has_no_cost_and_is_flagged(instrumented, openai_client, span_exporter, fake):
    openai_client.chat.completions.create(model="acme-private-llm", messages=MESSAGES)
    a = only_span(span_exporter).attributes
    assert a["llm_cost.pricing.source"] == "unknown"
    assert "gen_ai.usage.cost.amount" not in a and "gen_ai.usage.cost" not in a and "llm_cost.cost.input" not in a
    assert a["gen_ai.usage.input_tokens"] > 0


def test_session_user_and_tags_come_from_the_context(instrumented, openai_client, span_exporter):
    with session("chat-42", user_id="alice", feature="summarize"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    a = only_span(span_exporter).attributes
    assert (a["session.id"], a["gen_ai.conversation.id"], a["user.id"]) == ("chat-42", "chat-42", "alice")
    assert a["llm_cost.tag.feature"] == "summarize"


def test_compat_cost_attribute_can_be_switched_off(instrumented, openai_client, span_exporter):
    from otel_llm_cost import _state

    _state.set_settings(_state.settings().with_overrides(compat_cost_attribute=False))
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    a = only_span(span_exporter).attributes
    assert "gen_ai.usage.cost" not in a and "gen_ai.usage.cost.amount" in a


def test_errors_are_recorded_and_propagate_unchanged(instrumented, openai_client, span_exporter, fake):
    import openai

    from otel_llm_cost.testing.fake import Fault

    fake.inject(Fault(status=429))
    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["error.type"] == "RateLimitError"
    assert span.status.status_code.name == "ERROR"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_disabled_by_setting_leaves_the_sdk_untouched(tracer_provider, settings, openai_client, span_exporter):
    from openai.resources.chat.completions.completions import Completions

    from otel_llm_cost import _state
    from otel_llm_cost.instrumentation import instrument, uninstrument

    _state.set_settings(settings.with_overrides(enabled=False))
    original = Completions.__dict__["create"]
    instrument(tracer_provider=tracer_provider)
    try:
        assert Completions.__dict__["create"] is original
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert our_spans(span_exporter) == []
    finally:
        uninstrument()

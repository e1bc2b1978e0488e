"""Real Anthropic clients against the fake provider: cache arithmetic and both TTLs, in every call style."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, only_span, our_spans

D = Decimal
MESSAGES = [{"role": "user", "content": "Summarise the attached contract."}]

# Claude Sonnet 4.5, https://docs.anthropic.com/en/docs/about-claude/pricing (read 2025-10):
# $3 in, $3.75 5m cache write, $6 1h cache write, $0.30 cache read, $15 out per 1M tokens.
# 20,000 input = 2,000 uncached + 12,000 read + 4,000 5m write + 2,000 1h write; 800 out.
EXPECTED = D("0.006") + D("0.0036") + D("0.015") + D("0.012") + D("0.012")


@pytest.fixture
def cached_conversation(fake):
    fake.set_model("claude-sonnet-4-5", input_tokens=20_000, cache_read_tokens=12_000, cache_write_tokens=4_000,
                   cache_write_1h_tokens=2_000, output_tokens=800)



def check(span) -> None:
    a = span.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (20_000, 800)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 12_000
    assert a["gen_ai.usage.cache_write.input_tokens"] == a["gen_ai.usage.cache_creation.input_tokens"] == 6_000
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.request.max_tokens"] == 1_000
    assert cost_of(span) == EXPECTED
    assert "llm_cost.usage.estimated" not in a


def test_create(instrumented, anthropic_client, span_exporter, cached_conversation):
    message = anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES)
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.response.id"] == message.id
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_async_create(instrumented, async_anthropic_client, span_exporter, cached_conversation):
    asyncio.run(async_anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES))
    check(only_span(span_exporter))


def test_stream_true_does_not_add_message_delta_to_message_start(instrumented, anthropic_client, span_exporter,
                                                                 cached_conversation):
    events = list(anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES,
                                                   stream=True))
    assert [e.type for e in events][0] == "message_start" and events[-1].type == "message_stop"
    check(only_span(span_exporter))


def test_async_stream_true(instrumented, async_anthropic_client, span_exporter, cached_conversation):
    async def consume():
        stream = await async_anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000,
                                                              messages=MESSAGES, stream=True)
        return [event async for event in stream]

    assert len(asyncio.run(consume())) == 9
    check(only_span(span_exporter))


def test_stream_helper_with_get_final_message(instrumented, anthropic_client, span_exporter, cached_conversation):
    with anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 12_000
    check(only_span(span_exporter))


def test_stream_helper_text_stream(instrumented, anthropic_client, span_exporter, cached_conversation):
    with anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text == "Hello from the fake provider."
    check(only_span(span_exporter))


def test_async_stream_helper(instrumented, async_anthropic_client, span_exporter, cached_conversation):
    async def consume():
        async with async_anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=1_000,
                                                          messages=MESSAGES) as stream:
            return await stream.get_final_message()

    assert asyncio.run(consume()).usage.output_tokens == 800
    check(only_span(span_exporter))


def test_stream_helper_never_entered_sends_nothing_and_makes_no_span(instrumented, anthropic_client, span_exporter,
                                                                    fake):
    anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES)
    assert fake.request_count("/v1/messages") == 0
    assert our_spans(span_exporter) == []


def test_web_search_fee_on_the_span(instrumented, anthropic_client, span_exporter, fake, monkeypatch):
    """The fake reports no searches; a real response's server_tool_use would. Checked through the parser."""
    from otel_llm_cost.pricing import compute_cost

    cost = compute_cost("anthropic", "claude-sonnet-4-5",
                        {"input_tokens": 0, "output_tokens": 0, "server_tool_use": {"web_search_requests": 2}})
    assert cost.total == D("0.02")  # $10 per 1,000 searches

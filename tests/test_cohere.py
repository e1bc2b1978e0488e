"""The real cohere v2 client against the fake provider: billed units (never `tokens`), sync, async and
streamed, including the async generator `chat_stream` that sends only when iterated."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import cohere
import pytest
from conftest import cost_of, only_span

from otel_llm_cost.budget import BudgetExceededError
from otel_llm_cost.testing.fake import Fault

D = Decimal
MODEL = "command-a-03-2025"
MESSAGES = [{"role": "user", "content": "Summarise the incident report."}]
# Command A, https://cohere.com/pricing (read 2025-10): $2.50 in, $10 out per 1M billed tokens.
# 10,000 billed in (the fake's `tokens` says 10,200: the template is not billed), 1,000 out.
EXPECTED = D("0.025") + D("0.01")


@pytest.fixture
def command_a(fake):
    fake.set_model(MODEL, input_tokens=10_000, output_tokens=1_000, chunks=4)


def check(span) -> None:
    a = span.attributes
    assert span.name == f"chat {MODEL}"
    assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("cohere", MODEL)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10_000, 1_000)
    assert a["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert cost_of(span) == EXPECTED and "llm_cost.usage.estimated" not in a


def test_chat_bills_billed_units(instrumented, fake, span_exporter, command_a):
    client = cohere.ClientV2(api_key="offline-key", base_url=fake.url)
    response = client.chat(model=MODEL, messages=MESSAGES, max_tokens=2_000)
    assert response.usage.tokens.input_tokens == 10_200  # what a naive reader would bill
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.response.id"] == response.id


def test_async_chat(instrumented, fake, span_exporter, command_a):
    client = cohere.AsyncClientV2(api_key="offline-key", base_url=fake.url)
    asyncio.run(client.chat(model=MODEL, messages=MESSAGES))
    check(only_span(span_exporter))


def test_chat_stream_yields_the_same_events(tracer_provider, settings, fake, span_exporter, command_a):
    from otel_llm_cost.instrumentation.cohere import CohereInstrumentor

    def events() -> list[str]:
        # a new client each time: ClientV2 binds `chat` and `chat_stream` on the instance when built
        client = cohere.ClientV2(api_key="offline-key", base_url=fake.url)
        return [event.type for event in client.chat_stream(model=MODEL, messages=MESSAGES)]

    plain = events()
    instrumentor = CohereInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        seen = events()
    finally:
        instrumentor.uninstrument()
    assert seen == plain and seen[-1] == "message-end"
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.stream"] is True


def test_async_chat_stream(instrumented, fake, span_exporter, command_a):
    client = cohere.AsyncClientV2(api_key="offline-key", base_url=fake.url)

    async def consume() -> list[str]:
        return [event.type async for event in client.chat_stream(model=MODEL, messages=MESSAGES)]

    assert asyncio.run(consume())[-1] == "message-end"
    check(only_span(span_exporter))


def test_error_propagates_unchanged(instrumented, fake, span_exporter):
    from cohere.errors import TooManyRequestsError

    fake.inject(Fault(status=429))
    client = cohere.ClientV2(api_key="offline-key", base_url=fake.url)
    with pytest.raises(TooManyRequestsError):
        client.chat(model=MODEL, messages=MESSAGES, request_options={"max_retries": 0})
    span = only_span(span_exporter)
    assert span.attributes["error.type"] == "TooManyRequestsError"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_budget_refuses_a_stream_before_it_is_sent(frozen_budget, fake, span_exporter):
    client = cohere.ClientV2(api_key="offline-key", base_url=fake.url)
    with pytest.raises(BudgetExceededError):
        client.chat_stream(model=MODEL, messages=MESSAGES, max_tokens=100)
    assert fake.request_count() == 0
    assert only_span(span_exporter).attributes["llm_cost.budget.outcome"] == "blocked"

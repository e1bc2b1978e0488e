"""The real mistralai client against the fake provider: complete and stream, sync and async."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, only_span
from mistralai.client import Mistral

from otel_llm_cost.budget import BudgetExceededError
from otel_llm_cost.testing.fake import Fault

D = Decimal
MODEL = "mistral-small-2603"
MESSAGES = [{"role": "user", "content": "Summarise the incident report."}]
# Mistral Small 4 (mistral-small-2603), https://mistral.ai/pricing as reported at its launch (2026-03-16):
# $0.15 in, $0.60 out per 1M tokens. 10,000 in, 1,000 out.
EXPECTED = D("0.0015") + D("0.0006")


@pytest.fixture
def client(fake) -> Mistral:
    return Mistral(api_key="offline-key", server_url=fake.url)


@pytest.fixture
def small(fake):
    fake.set_model(MODEL, input_tokens=10_000, output_tokens=1_000, chunks=4)


def check(span) -> None:
    a = span.attributes
    assert span.name == f"chat {MODEL}"
    assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("mistral_ai", MODEL)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10_000, 1_000)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["llm_cost.response.service_tier"] == "standard"
    assert cost_of(span) == EXPECTED and "llm_cost.usage.estimated" not in a


def test_complete(instrumented, client, span_exporter, small):
    response = client.chat.complete(model=MODEL, messages=MESSAGES, max_tokens=2_000)
    assert response.choices[0].message.content == "Hello from the fake provider."
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.max_tokens"] == 2_000
    assert span.attributes["gen_ai.response.id"] == response.id


def test_complete_async(instrumented, client, span_exporter, small):
    asyncio.run(client.chat.complete_async(model=MODEL, messages=MESSAGES))
    check(only_span(span_exporter))


def test_stream_yields_the_same_events_and_is_priced_from_the_last_chunk(tracer_provider, settings, client,
                                                                         span_exporter, small):
    from otel_llm_cost.instrumentation.mistral import MistralInstrumentor

    def texts() -> list[str]:
        return [event.data.model_dump_json(exclude={"id", "created"})
                for event in client.chat.stream(model=MODEL, messages=MESSAGES)]

    plain = texts()
    instrumentor = MistralInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        seen = texts()
    finally:
        instrumentor.uninstrument()
    assert seen == plain and len(seen) == 5
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.stream"] is True


def test_stream_async_in_a_context_manager(instrumented, client, span_exporter, small):
    async def consume() -> int:
        async with await client.chat.stream_async(model=MODEL, messages=MESSAGES) as events:
            return len([event async for event in events])

    assert asyncio.run(consume()) == 5
    check(only_span(span_exporter))


def test_error_propagates_unchanged(instrumented, client, span_exporter, fake):
    from mistralai.client import errors

    fake.inject(Fault(status=429))
    with pytest.raises(errors.SDKError) as excinfo:
        client.chat.complete(model=MODEL, messages=MESSAGES)
    assert excinfo.value.status_code == 429
    span = only_span(span_exporter)
    assert span.attributes["error.type"] == "SDKError" and "gen_ai.usage.cost.amount" not in span.attributes


def test_stream_cut_mid_way_is_estimated(instrumented, client, span_exporter, small, fake):
    fake.inject(Fault(cut_after_chunks=2))
    seen = []
    with pytest.raises(Exception):
        for event in client.chat.stream(model=MODEL, messages=MESSAGES):
            seen.append(event)
    assert len(seen) == 2
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True and a["gen_ai.usage.cost.amount"] > 0


def test_budget_refuses_before_the_request_is_sent(frozen_budget, client, span_exporter, fake):
    with pytest.raises(BudgetExceededError):
        client.chat.complete(model=MODEL, messages=MESSAGES, max_tokens=100)
    assert fake.request_count() == 0
    assert only_span(span_exporter).attributes["llm_cost.budget.outcome"] == "blocked"

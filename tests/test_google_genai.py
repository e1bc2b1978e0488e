"""The real google-genai client against the fake provider: thoughts, cache, long-context tiers, streams,
automatic function calling, and the app sees exactly what it would see uninstrumented."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, only_span, our_spans
from google import genai
from google.genai import errors, types

from otel_llm_cost.budget import BudgetExceededError
from otel_llm_cost.testing.fake import Fault

D = Decimal
MODEL = "gemini-2.5-flash"

# Gemini 2.5 Flash, https://ai.google.dev/gemini-api/docs/pricing (read 2025-11): $0.30 in, $0.03 cached,
# $2.50 out, thinking included. 100,000 in of which 60,000 cached; 1,000 candidates + 3,000 thoughts.
EXPECTED = D("0.012") + D("0.0018") + D("0.01")


@pytest.fixture
def client(fake) -> genai.Client:
    return genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))


@pytest.fixture
def thinking(fake):
    fake.set_model(MODEL, input_tokens=100_000, cache_read_tokens=60_000, output_tokens=1_000, reasoning_tokens=3_000,
                   chunks=3)



def check(span) -> None:
    a = span.attributes
    assert span.name == f"chat {MODEL}"
    assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("gcp.gemini", MODEL)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (100_000, 4_000)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 60_000
    assert a["gen_ai.usage.reasoning.output_tokens"] == 3_000
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert cost_of(span) == EXPECTED
    assert "llm_cost.usage.estimated" not in a


def test_generate_content(instrumented, client, span_exporter, thinking):
    response = client.models.generate_content(model=MODEL, contents="Summarise the report.",
                                              config=types.GenerateContentConfig(max_output_tokens=5_000))
    assert response.text == "Hello from the fake provider."
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.max_tokens"] == 5_000
    assert span.attributes["gen_ai.response.id"] == response.response_id


def test_async_generate_content_with_a_dict_config(instrumented, client, span_exporter, thinking):
    asyncio.run(client.aio.models.generate_content(model=f"models/{MODEL}", contents="Hi",
                                                   config={"max_output_tokens": 5_000}))
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.max_tokens"] == 5_000


def test_stream_yields_the_same_chunks_and_is_priced_from_the_last_usage(tracer_provider, settings, client,
                                                                         span_exporter, thinking):
    from otel_llm_cost.instrumentation.google_genai import GoogleGenAIInstrumentor

    plain = [c.text for c in client.models.generate_content_stream(model=MODEL, contents="Hi")]
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        seen = [c.text for c in client.models.generate_content_stream(model=MODEL, contents="Hi")]
    finally:
        instrumentor.uninstrument()
    assert seen == plain and len(seen) == 3
    check(only_span(span_exporter))


def test_async_stream(instrumented, client, span_exporter, thinking):
    async def consume() -> list[str]:
        return [c.text async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="Hi")]

    assert len(asyncio.run(consume())) == 3
    check(only_span(span_exporter))


def test_prompt_above_200k_tokens_is_priced_at_the_long_context_rate(instrumented, client, span_exporter, fake):
    # Gemini 2.5 Pro, same page (read 2025-11): prompts over 200k tokens cost $2.50 in and $15 out
    # (instead of $1.25 and $10).
    fake.set_model("gemini-2.5-pro", input_tokens=250_000, output_tokens=1_000)
    client.models.generate_content(model="gemini-2.5-pro", contents="The whole codebase ...")
    assert cost_of(only_span(span_exporter)) == D("0.625") + D("0.015")


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_automatic_function_calling_prices_every_request_it_sends(instrumented, client, span_exporter, fake):
    """One `generate_content` call with a Python tool sends two requests; the response it returns
    carries the usage of the last one only. Each request gets its own priced span."""
    fake.set_model(MODEL, input_tokens=2_000, output_tokens=100)
    response = client.models.generate_content(model=MODEL, contents="Weather in Paris?",
                                              config=types.GenerateContentConfig(tools=[get_weather]))
    assert response.text == "Hello from the fake provider." and fake.request_count(":generateContent") == 2
    spans = our_spans(span_exporter)
    assert len(spans) == 2
    # $0.30 / 1M in, $2.50 / 1M out: 2,000 in + 100 out = $0.00085 a request
    assert [cost_of(s) for s in spans] == [D("0.00085"), D("0.00085")]


def test_vertex_ai_client_is_its_own_provider(instrumented, fake, span_exporter):
    fake.set_model(MODEL, input_tokens=1_000, output_tokens=100)
    client = genai.Client(vertexai=True, api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))
    client.models.generate_content(model=MODEL, contents="Hi")
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["gen_ai.request.model"] == MODEL  # not `publishers/google/models/...`
    assert "gen_ai.usage.cost.amount" in span.attributes


def test_sdk_error_propagates_unchanged_and_marks_the_span(instrumented, client, span_exporter, fake):
    fake.inject(Fault(status=429))
    with pytest.raises(errors.ClientError) as excinfo:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert excinfo.value.code == 429
    span = only_span(span_exporter)
    assert span.attributes["error.type"] == "ClientError"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_stream_cut_mid_way_keeps_the_exact_prompt_and_estimates_the_output(instrumented, client, span_exporter,
                                                                           fake):
    fake.set_model(MODEL, input_tokens=1_000, output_tokens=100, chunks=5)
    fake.inject(Fault(cut_after_chunks=2))
    seen = []
    with pytest.raises(Exception):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            seen.append(chunk)
    assert len(seen) == 2
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True
    assert a["gen_ai.usage.input_tokens"] == 1_000 and a["gen_ai.usage.output_tokens"] >= 2
    assert a["gen_ai.usage.cost.amount"] > 0


def test_budget_refuses_before_the_request_is_sent(frozen_budget, client, span_exporter, fake):
    with pytest.raises(BudgetExceededError):
        client.models.generate_content(model=MODEL, contents="Hi", config={"max_output_tokens": 100})
    assert fake.request_count() == 0
    assert only_span(span_exporter).attributes["llm_cost.budget.outcome"] == "blocked"


def test_chats_are_priced_message_by_message(instrumented, client, span_exporter, thinking):
    chat = client.chats.create(model=MODEL)
    assert chat.send_message("Summarise the report.").text == "Hello from the fake provider."
    assert len(list(chat.send_message_stream("And the appendix?"))) == 3
    spans = our_spans(span_exporter)
    assert len(spans) == 2
    for span in spans:
        check(span)

"""The groq and ollama SDKs, real clients against the fake provider.

Prices: Groq llama-3.3-70b-versatile $0.59 input / $0.79 output per 1M tokens (groq.com/pricing,
2026-11-25). Ollama runs models locally: no price unless the user sets one.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import groq
import ollama
import pytest
from conftest import cost_of, only_span, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost import _state
from otel_llm_cost.pricing import default_price_book

LLAMA = "llama-3.3-70b-versatile"
MESSAGES = [{"role": "user", "content": "Hi"}]
# 1,000 in x $0.59/M + 500 out x $0.79/M
GROQ_COST = Decimal("0.00059") + Decimal("0.000395")


@pytest.fixture
def groq_client(fake, settings, instrumented):
    """The loopback port plays api.groq.com (as OTEL_LLM_COST_PROVIDERS maps a real host)."""
    _state.set_settings(replace(settings, providers=((fake.url.split("//", 1)[1], "groq"),)))
    fake.set_model(LLAMA, input_tokens=1_000, output_tokens=500)
    return groq.Groq(base_url=fake.url + "/openai", api_key="gsk-test", max_retries=0)


def test_groq_call_is_priced_at_groq_rates(groq_client, span_exporter):
    reply = groq_client.chat.completions.create(model=LLAMA, messages=MESSAGES)
    assert reply.usage.prompt_tokens == 1_000
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "groq" and cost_of(span) == GROQ_COST


def test_groq_stream_usage_is_read_from_x_groq_without_asking(groq_client, fake, span_exporter):
    fake.set_model(LLAMA, input_tokens=1_000, output_tokens=500, groq_stream_usage=True)
    chunks = list(groq_client.chat.completions.create(model=LLAMA, messages=MESSAGES, stream=True))
    assert chunks[-1].x_groq.usage.completion_tokens == 500  # as the SDK parses it
    assert "stream_options" not in fake.bodies[-1]["body"]  # nothing added to the request
    span = only_span(span_exporter)
    assert cost_of(span) == GROQ_COST and "llm_cost.usage.estimated" not in span.attributes


def test_groq_async_stream(groq_client, fake, span_exporter):
    fake.set_model(LLAMA, input_tokens=1_000, output_tokens=500, groq_stream_usage=True)
    client = groq.AsyncGroq(base_url=fake.url + "/openai", api_key="gsk-test", max_retries=0)

    async def main() -> int:
        stream = await client.chat.completions.create(model=LLAMA, messages=MESSAGES, stream=True)
        return len([chunk async for chunk in stream])

    assert asyncio.run(main()) > 1
    assert cost_of(only_span(span_exporter)) == GROQ_COST


@pytest.fixture
def ollama_client(fake, instrumented):
    fake.set_model("llama3.2", input_tokens=300, output_tokens=40)
    return ollama.Client(host=fake.url)


def test_a_local_model_has_no_price_until_the_user_says_it_is_free(ollama_client, span_exporter):
    reply = ollama_client.chat(model="llama3.2", messages=MESSAGES)
    assert reply.message.content == "Hello from the fake provider."
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "ollama"
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (300, 40)
    assert "gen_ai.usage.cost.amount" not in span.attributes
    assert span.attributes["llm_cost.pricing.source"] == "unknown"

    llm_cost.set_pricing("llama3.2", 0, 0)
    try:
        ollama_client.chat(model="llama3.2", messages=MESSAGES)
        assert cost_of(our_spans(span_exporter)[-1]) == 0
    finally:
        default_price_book().clear_custom()


@pytest.mark.parametrize("method", ["chat", "generate"])
def test_ollama_streams_sync_and_async(ollama_client, fake, span_exporter, method):
    argument = {"messages": MESSAGES} if method == "chat" else {"prompt": "Hi"}
    parts = list(getattr(ollama_client, method)(model="llama3.2", stream=True, **argument))
    assert parts[-1].done is True and parts[-1].eval_count == 40

    async def main() -> int:
        client = ollama.AsyncClient(host=fake.url)
        return len([part async for part in await getattr(client, method)(model="llama3.2", stream=True, **argument)])

    assert asyncio.run(main()) == len(parts)
    spans = our_spans(span_exporter)
    assert [(s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) for s in spans] \
        == [(300, 40)] * 2
    assert spans[0].attributes["gen_ai.operation.name"] == ("chat" if method == "chat" else "text_completion")


def test_ollama_embed_and_the_module_level_helpers(ollama_client, fake, span_exporter, monkeypatch):
    ollama_client.embed(model="llama3.2", input=["a", "b"])
    default = ollama.chat.__self__  # the Client that `import ollama` made for the module helpers
    monkeypatch.setattr(default._client, "base_url", fake.url)
    ollama.chat("llama3.2", MESSAGES)  # positional model and messages, as the docs write them
    embed, chat = our_spans(span_exporter)
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    assert embed.attributes["gen_ai.usage.input_tokens"] == 300
    assert chat.attributes["gen_ai.request.model"] == "llama3.2" and chat.attributes["gen_ai.usage.output_tokens"] == 40


def test_a_fully_cached_ollama_prompt_reports_no_prompt_tokens(ollama_client, fake, span_exporter):
    fake.set_model("llama3.2", input_tokens=300, cache_read_tokens=300, output_tokens=40)
    reply = ollama_client.chat(model="llama3.2", messages=MESSAGES)
    assert reply.prompt_eval_count is None  # Ollama leaves it out
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.usage.input_tokens"] == 0 and "llm_cost.usage.incomplete" not in span.attributes


def test_num_predict_is_the_reservation_bound(ollama_client, guard):
    from otel_llm_cost.budget import Budget

    llm_cost.set_pricing("llama3.2", 1, 2)
    try:
        guard.set(Budget.create(1, name="b"))
        ollama_client.chat(model="llama3.2", messages=MESSAGES, options={"num_predict": 10})
        assert guard.status("b").spent == Decimal(300) / 10**6 + Decimal(10 * 2) / 10**6
    finally:
        default_price_book().clear_custom()

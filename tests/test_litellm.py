"""LiteLLM, against the fake provider: one span per call (the openai SDK it sends through passes through),
named for the provider LiteLLM routes to, priced with our prices; LiteLLM's own cost only when we know none.

Prices (per 1M tokens, read 2026-11-25): gpt-4o $2.50 / $10 (openai.com/api/pricing); Groq
llama-3.3-70b-versatile $0.59 / $0.79 (groq.com/pricing); text-embedding-3-small $0.02 (OpenAI).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, only_span, our_spans

litellm = pytest.importorskip("litellm")

MESSAGES = [{"role": "user", "content": "Hi"}]
GPT_4O = Decimal("0.0025") + Decimal("0.001")  # 1,000 in + 100 out


@pytest.fixture
def gpt(fake, instrumented):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    return {"model": "openai/gpt-4o", "api_base": fake.openai_url, "api_key": "sk-test"}


def test_one_span_per_call_priced_by_us(gpt, fake, span_exporter):
    reply = litellm.completion(messages=MESSAGES, **gpt)
    assert reply.usage.prompt_tokens == 1_000
    assert fake.request_count("/chat/completions") == 1
    span = only_span(span_exporter)  # LiteLLM's call to the openai SDK is part of this one
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert cost_of(span) == GPT_4O and span.attributes["llm_cost.pricing.source"] == "bundled"


def test_the_stream_the_app_sees_is_unchanged_and_priced_exactly(gpt, fake, span_exporter, tracer_provider):
    from otel_llm_cost.instrumentation import uninstrument

    chunks = [(len(c.choices), c.choices[0].finish_reason if c.choices else None)
              for c in litellm.completion(messages=MESSAGES, stream=True, **gpt)]
    span = only_span(span_exporter)
    assert cost_of(span) == GPT_4O and span.attributes["llm_cost.pricing.source"] == "bundled"
    uninstrument()
    bare = [(len(c.choices), c.choices[0].finish_reason if c.choices else None)
            for c in litellm.completion(messages=MESSAGES, stream=True, **gpt)]
    assert chunks == bare


def test_groq_through_litellm_is_groq(fake, instrumented, span_exporter):
    fake.set_model("llama-3.3-70b-versatile", input_tokens=1_000, output_tokens=500)
    litellm.completion(model="groq/llama-3.3-70b-versatile", messages=MESSAGES, api_base=f"{fake.url}/openai/v1",
                       api_key="gsk-test")
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "groq"
    assert span.attributes["gen_ai.request.model"] == "llama-3.3-70b-versatile"
    assert cost_of(span) == Decimal("0.00059") + Decimal("0.000395")


def test_async_completion_stream_and_embedding(gpt, fake, span_exporter):
    fake.set_model("text-embedding-3-small", input_tokens=5_000)

    async def main() -> None:
        await litellm.acompletion(messages=MESSAGES, **gpt)
        async for _ in await litellm.acompletion(messages=MESSAGES, stream=True, **gpt):
            pass
        await litellm.aembedding(model="openai/text-embedding-3-small", input=["a", "b"], api_base=fake.openai_url,
                                 api_key="sk-test")

    asyncio.run(main())
    litellm.embedding(model="openai/text-embedding-3-small", input=["a"], api_base=fake.openai_url, api_key="sk-test")
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["chat", "chat", "embeddings", "embeddings"]
    assert [cost_of(s) for s in spans] == [GPT_4O, GPT_4O, Decimal("0.0001"), Decimal("0.0001")]
    assert fake.request_count() == 4  # each call sent once, counted once


def test_litellms_cost_is_used_only_when_we_know_no_price(fake, instrumented, span_exporter):
    fake.set_model("acme-internal-llm", input_tokens=1_000, output_tokens=100)
    litellm.completion(model="openai/acme-internal-llm", messages=MESSAGES, api_base=fake.openai_url,
                       api_key="sk-test", input_cost_per_token=0.000001, output_cost_per_token=0.000002)
    span = only_span(span_exporter)
    # LiteLLM's figure from the prices given to it, computed as LiteLLM does, in floats
    assert cost_of(span) == Decimal(repr(1_000 * 0.000001 + 100 * 0.000002))
    assert span.attributes["llm_cost.pricing.source"] == "litellm"
    assert "llm_cost.cost.input" not in span.attributes  # no split of ours to give


def test_a_litellm_call_that_would_pass_the_budget_is_never_sent(gpt, fake, guard):
    from otel_llm_cost.budget import Budget, BudgetExceededError

    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(BudgetExceededError):
        litellm.completion(messages=MESSAGES, max_tokens=10, **gpt)
    assert fake.request_count() == 0

"""azure-ai-inference's ChatCompletionsClient and EmbeddingsClient, sync (requests) and async (aiohttp),
driven for real over HTTP against the fake provider, which serves Azure's Chat Completions dialect at
`{endpoint}/chat/completions?api-version=...` with the stream's usage on its final update, unasked.

Prices: genai-prices' `azure` entries, which follow Azure's list (gpt-4o $2.50 / $10 per 1M tokens,
text-embedding-3-small $0.02, read 2026-12-03)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

pytest.importorskip("azure.ai.inference")
from azure.ai.inference import ChatCompletionsClient, EmbeddingsClient  # noqa: E402
from azure.ai.inference import aio  # noqa: E402
from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.exceptions import AzureError  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hi"}]
GPT_4O = 1_000 * Decimal("2.5") / 10**6 + 100 * Decimal(10) / 10**6


@pytest.fixture
def azure(fake, instrumented):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100, final_chunk_usage=True)
    fake.set_model("text-embedding-3-small", input_tokens=500)
    return fake


def _chat(fake, cls=ChatCompletionsClient, **kwargs):
    return cls(endpoint=f"{fake.url}/models", credential=AzureKeyCredential("offline"), **kwargs)


def test_chat_sync_stream_and_async_are_each_one_priced_span(azure, span_exporter):
    client = _chat(azure)
    reply = client.complete(messages=MESSAGES, model="gpt-4o")
    assert reply.choices[0].message.content == "Hello from the fake provider."
    updates = list(client.complete(messages=MESSAGES, model="gpt-4o", stream=True))
    assert updates[-1].usage.prompt_tokens == 1_000  # sent unasked: nothing was added to the request
    assert "stream_options" not in azure.bodies[-1]["body"]

    async def run_async():
        async with _chat(azure, aio.ChatCompletionsClient) as aclient:
            await aclient.complete(messages=MESSAGES, model="gpt-4o")
            stream = await aclient.complete(messages=MESSAGES, model="gpt-4o", stream=True)
            return [update async for update in stream]

    assert asyncio.run(run_async())[-1].usage.completion_tokens == 100
    spans = our_spans(span_exporter)
    assert azure.request_count("/models/chat/completions") == 4
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, True, False, True]
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"azure.ai.inference"}
    assert [cost_of(s) for s in spans] == [GPT_4O] * 4
    assert not any(s.attributes.get("llm_cost.usage.estimated") for s in spans)


def test_the_clients_own_model_and_a_whole_body_are_read(azure, span_exporter):
    _chat(azure, model="gpt-4o").complete(messages=MESSAGES)  # the model given to the constructor
    _chat(azure).complete({"messages": MESSAGES, "model": "gpt-4o", "max_tokens": 50})  # complete(body)
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.request.model"] for s in spans] == ["gpt-4o", "gpt-4o"]
    assert spans[1].attributes["gen_ai.request.max_tokens"] == 50


def test_an_azure_openai_deployment_is_azure_ai_openai_and_a_model_without_a_price_is_unknown(azure, span_exporter):
    client = _chat(azure)
    client.complete(messages=MESSAGES, model="my-fine-tune-7")
    span = our_spans(span_exporter)[0]
    assert "gen_ai.usage.cost.amount" not in span.attributes and span.attributes["llm_cost.pricing.source"] == "unknown"
    from otel_llm_cost.instrumentation.azure_ai_inference import CHAT

    deployment = _chat(azure)
    deployment._config.endpoint = "https://contoso.openai.azure.com/openai/deployments/gpt-4o"
    assert CHAT.read_request(deployment, (), {"messages": MESSAGES}).provider == "azure.ai.openai"


def test_embeddings_read_the_reported_tokens(azure, span_exporter):
    EmbeddingsClient(endpoint=f"{azure.url}/models", credential=AzureKeyCredential("offline")).embed(
        input=["one", "two"], model="text-embedding-3-small")

    async def run_async():
        async with aio.EmbeddingsClient(endpoint=f"{azure.url}/models",
                                        credential=AzureKeyCredential("offline")) as client:
            await client.embed(input=["one"], model="text-embedding-3-small")

    asyncio.run(run_async())
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["embeddings"] * 2
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [500, 500]
    assert [cost_of(s) for s in spans] == [500 * Decimal("0.02") / 10**6] * 2


def test_a_refusal_is_an_azure_error_and_sends_nothing(azure, guard):
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(AzureError) as raised:
        _chat(azure).complete(messages=MESSAGES, model="gpt-4o", max_tokens=10)
    assert isinstance(raised.value, llm_cost.BudgetExceededError) and "zero" in raised.value.message
    assert azure.request_count("") == 0

"""The SDKs of OpenAI-compatible providers (together, cerebras-cloud-sdk, fireworks-ai), driven for real
over HTTP against the fake provider: each names its calls by its vendor whatever host it is pointed at,
prices them at genai-prices' rates for that vendor, and behaves as every other SDK does (streams with
the usage chunk hidden, budgets before sending, the SDK's own error on a refusal)."""

from __future__ import annotations

import asyncio
import importlib
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

MESSAGES = [{"role": "user", "content": "Hi"}]

# sdk: (client factory, async client factory, provider, model, base error)
VENDORS = {
    "together": ("together:Together", "together:AsyncTogether", "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                 "together:TogetherError"),
    "cerebras": ("cerebras.cloud.sdk:Cerebras", "cerebras.cloud.sdk:AsyncCerebras", "cerebras", "llama-3.3-70b",
                 "cerebras.cloud.sdk:CerebrasError"),
    "fireworks": ("fireworks:Fireworks", "fireworks:AsyncFireworks", "fireworks",
                  "accounts/fireworks/models/deepseek-v3p2", "fireworks:FireworksError"),
}


def _class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(pytest.importorskip(module).__name__), name)


def _client(path: str, fake):
    return _class(path)(base_url=fake.openai_url, api_key="offline", max_retries=0)


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_a_vendor_sdk_is_named_and_priced_as_its_vendor(instrumented, fake, span_exporter, vendor):
    sync_path, async_path, provider, model, _ = VENDORS[vendor]
    fake.set_model(model, input_tokens=1_000, output_tokens=100, final_chunk_usage=True)
    client = _client(sync_path, fake)
    reply = client.chat.completions.create(model=model, messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from the fake provider."
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert chunks[-1].usage.prompt_tokens == 1_000  # sent unasked on the final chunk, and read from there
    assert "stream_options" not in fake.bodies[-1]["body"]  # nothing added: these SDKs would refuse it

    async def run_async():
        aclient = _client(async_path, fake)
        await aclient.chat.completions.create(model=model, messages=MESSAGES)

    asyncio.run(run_async())
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == [provider] * 3
    expected = llm_cost.compute_cost(provider, model, {"prompt_tokens": 1_000, "completion_tokens": 100},
                                     api="openai.chat")
    assert expected is not None, f"genai-prices has no {provider} price for {model}"
    assert {cost_of(s) for s in spans} == {Decimal(repr(float(expected.total)))}
    assert not any(s.attributes.get("llm_cost.usage.estimated") for s in spans)


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_a_vendor_sdk_refusal_is_its_own_error_and_sends_nothing(instrumented, fake, guard, vendor):
    sync_path, _, _, model, error = VENDORS[vendor]
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(_class(error)) as raised:
        _client(sync_path, fake).chat.completions.create(model=model, messages=MESSAGES, max_tokens=10)
    assert isinstance(raised.value, llm_cost.BudgetExceededError) and fake.request_count("chat/completions") == 0


def test_voyage_embeddings_and_rerank_are_priced_by_the_tokens_they_report(instrumented, fake, span_exporter):
    """voyage-3.5 $0.06 and rerank-2.5 $0.05 per 1M tokens (docs.voyageai.com/docs/pricing, read 2026-12-03;
    the first from genai-prices, the second from our corrections file)."""
    voyageai = pytest.importorskip("voyageai")
    fake.set_model("voyage-3.5", input_tokens=1_200)
    fake.set_model("rerank-2.5", input_tokens=3_000)
    client = voyageai.Client(api_key="offline", base_url=fake.openai_url)
    assert len(client.embed(["incident one", "incident two"], model="voyage-3.5").embeddings) == 2
    ranked = client.rerank("what failed?", ["the backup", "the export", "the lock"], model="rerank-2.5", top_k=2)
    assert len(ranked.results) == 2

    async def run_async():
        aclient = voyageai.AsyncClient(api_key="offline", base_url=fake.openai_url)
        await aclient.embed(["incident one"], model="voyage-3.5")

    asyncio.run(run_async())
    embed, rerank, aembed = our_spans(span_exporter)
    assert [s.attributes["gen_ai.operation.name"] for s in (embed, rerank, aembed)] == ["embeddings", "rerank",
                                                                                          "embeddings"]
    assert {s.attributes["gen_ai.provider.name"] for s in (embed, rerank, aembed)} == {"voyageai"}
    assert cost_of(embed) == cost_of(aembed) == 1_200 * Decimal("0.06") / 10**6
    assert cost_of(rerank) == 3_000 * Decimal("0.05") / 10**6


def test_a_voyage_refusal_is_its_own_error(instrumented, fake, guard):
    voyageai = pytest.importorskip("voyageai")
    from voyageai.error import VoyageError

    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(VoyageError):
        voyageai.Client(api_key="offline", base_url=fake.openai_url).embed(["a long text " * 50], model="voyage-3.5")
    assert fake.request_count("") == 0

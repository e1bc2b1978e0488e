"""huggingface_hub's InferenceClient and AsyncInferenceClient, driven for real over HTTP: the router's
URL template and the Hub's model-to-provider mapping are pointed at the fake provider with the SDK's own
local-testing hooks (`INFERENCE_PROXY_TEMPLATE`, `HARDCODED_MODEL_INFERENCE_MAPPING`), so no request
leaves the machine. Prices: genai-prices' `huggingface_together` entry for Llama 3.3 70B (the Hub
model id), $1.04 per 1M input and output tokens (huggingface.co/inference/models, read 2026-12-03)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import AsyncInferenceClient, InferenceClient  # noqa: E402
from huggingface_hub.hf_api import InferenceProviderMapping  # noqa: E402
from huggingface_hub.inference._providers._common import HARDCODED_MODEL_INFERENCE_MAPPING  # noqa: E402

HUB_MODEL = "meta-llama/Llama-3.3-70B-Instruct"
SERVED_AS = "meta-llama/Llama-3.3-70B-Instruct-Turbo"  # the provider's own id for it
MESSAGES = [{"role": "user", "content": "Hi"}]
PER_CALL = 1_000 * Decimal("1.04") / 10**6 + 100 * Decimal("1.04") / 10**6


@pytest.fixture
def hub(fake, instrumented, monkeypatch):
    """The router and the Hub's provider mapping, as the SDK's local tests set them, on the fake."""
    monkeypatch.setattr(huggingface_hub.constants, "INFERENCE_PROXY_TEMPLATE", fake.url + "/{provider}")
    for provider in ("together", "hf-inference"):
        monkeypatch.setitem(HARDCODED_MODEL_INFERENCE_MAPPING, provider, {HUB_MODEL: InferenceProviderMapping(
            provider=provider, hf_model_id=HUB_MODEL, providerId=SERVED_AS, status="live", task="conversational")})
    fake.set_model(SERVED_AS, input_tokens=1_000, output_tokens=100)
    return fake


def test_a_call_through_a_provider_is_named_and_priced_by_it_with_the_hub_model_id(hub, span_exporter):
    client = InferenceClient(provider="together", api_key="hf_offline")
    reply = client.chat_completion(MESSAGES, model=HUB_MODEL)
    assert reply.choices[0].message.content == "Hello from the fake provider."
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.provider.name"] == "huggingface_together"
    assert span.attributes["gen_ai.request.model"] == HUB_MODEL
    assert span.attributes["gen_ai.response.model"] == SERVED_AS
    expected = llm_cost.compute_cost("huggingface_together", HUB_MODEL, {"prompt_tokens": 1_000,
                                                                        "completion_tokens": 100}, api="openai.chat")
    assert cost_of(span) == Decimal(repr(float(expected.total))) and abs(expected.total - PER_CALL) < Decimal("1e-15")


def test_the_openai_style_alias_sync_async_and_streams_are_each_one_span(hub, span_exporter):
    client = InferenceClient(provider="together", api_key="hf_offline")
    client.chat.completions.create(model=HUB_MODEL, messages=MESSAGES)
    chunks = list(client.chat_completion(MESSAGES, model=HUB_MODEL, stream=True))
    assert all(chunk.choices for chunk in chunks)  # the usage chunk we asked for is hidden from the app

    async def run_async():
        aclient = AsyncInferenceClient(provider="together", api_key="hf_offline")
        await aclient.chat_completion(MESSAGES, model=HUB_MODEL)
        stream = await aclient.chat_completion(MESSAGES, model=HUB_MODEL, stream=True)
        return [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in asyncio.run(run_async()))
    spans = our_spans(span_exporter)
    assert len(spans) == 4 and hub.request_count("/together/") == 4
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, True, False, True]
    assert {s.attributes["gen_ai.usage.input_tokens"] for s in spans} == {1_000}
    assert not any(s.attributes.get("llm_cost.usage.estimated") for s in spans)


@pytest.mark.parametrize("provider", ["hf-inference", None])
def test_hugging_faces_own_inference_and_auto_are_unknown_never_free(hub, span_exporter, provider, monkeypatch):
    if provider is None:  # `auto`: the Hub picks the provider; here it has only together to pick
        monkeypatch.setitem(HARDCODED_MODEL_INFERENCE_MAPPING, "auto", HARDCODED_MODEL_INFERENCE_MAPPING["together"])
    client = InferenceClient(provider=provider, api_key="hf_offline") if provider else InferenceClient(
        api_key="hf_offline")
    try:
        client.chat_completion(MESSAGES, model=HUB_MODEL)
    except Exception:  # noqa: BLE001 - how `auto` resolves offline is the SDK's business; the span is ours
        pass
    spans = our_spans(span_exporter)
    assert len(spans) == 1 and spans[0].attributes["gen_ai.provider.name"] == "huggingface"
    assert "gen_ai.usage.cost.amount" not in spans[0].attributes


def test_a_budget_refuses_before_the_provider_is_called(hub, guard):
    guard.set(Budget.create(0, name="zero"))
    client = InferenceClient(provider="together", api_key="hf_offline")
    with pytest.raises(llm_cost.BudgetExceededError):
        client.chat_completion(MESSAGES, model=HUB_MODEL, max_tokens=100)
    assert hub.request_count("") == 0

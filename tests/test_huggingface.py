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
from otel_llm_cost.estimate import estimate_input_tokens, estimate_text_tokens

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
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", fake.url)  # the Hub's model info
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


@pytest.fixture
def tasks(hub, monkeypatch):
    """The Hub model mapped for text generation and feature extraction too, on both providers."""
    for task, model in (("text-generation", HUB_MODEL), ("feature-extraction", EMBEDDER)):
        for provider in ("together", "hf-inference"):
            HARDCODED_MODEL_INFERENCE_MAPPING[provider][model] = InferenceProviderMapping(
                provider=provider, hf_model_id=model, providerId=SERVED_AS if model == HUB_MODEL else model,
                status="live", task=task)
    from huggingface_hub.inference._providers import PROVIDERS

    for helper in PROVIDERS["hf-inference"].values():  # its base URL is read once, at import
        monkeypatch.setattr(helper, "base_url", hub.url + "/hf-inference")
    hub.add_hub_model(HUB_MODEL, "text-generation")
    hub.add_hub_model(EMBEDDER, "feature-extraction", tags=("feature-extraction",))
    for model in (SERVED_AS, HUB_MODEL):  # hf-inference serves the Hub id itself
        hub.set_model(model, input_tokens=1_000, output_tokens=10, chunks=10)
    return hub


EMBEDDER = "BAAI/bge-small-en-v1.5"
PROMPT = "The huggingface_hub library is " * 10  # 310 characters


def test_text_generation_on_tgi_reads_generated_tokens_and_estimates_the_prompt(tasks, span_exporter):
    client = InferenceClient(provider="hf-inference", api_key="hf_offline")
    assert client.text_generation(PROMPT, model=HUB_MODEL, max_new_tokens=20) == "Hello from the fake provider."
    detailed = client.text_generation(PROMPT, model=HUB_MODEL, max_new_tokens=20, details=True)
    assert detailed.details.generated_tokens == 10
    tokens = list(client.text_generation(PROMPT, model=HUB_MODEL, max_new_tokens=20, stream=True))
    assert "".join(tokens).startswith("Hello from") and len(tokens) == 10

    async def run_async():
        async with AsyncInferenceClient(provider="hf-inference", api_key="hf_offline") as aclient:
            return await aclient.text_generation(PROMPT, model=HUB_MODEL, details=True)

    assert asyncio.run(run_async()).generated_text == "Hello from the fake provider."
    spans = our_spans(span_exporter)
    assert len(spans) == 4 and tasks.request_count("/hf-inference/models/") == 4
    assert {s.attributes["gen_ai.operation.name"] for s in spans} == {"text_completion"}
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"huggingface"}
    # TGI never reports the prompt's count: estimated from the request (an upper bound), marked so
    prompt_estimate = estimate_input_tokens(PROMPT)
    assert {s.attributes["gen_ai.usage.input_tokens"] for s in spans} == {prompt_estimate}
    assert all(s.attributes["llm_cost.usage.estimated"] for s in spans)
    # the output: TGI's generated_tokens with details, one per streamed event, the text's count without
    outputs = [s.attributes["gen_ai.usage.output_tokens"] for s in spans]
    assert outputs[1] == outputs[2] == outputs[3] == 10
    assert outputs[0] == estimate_text_tokens("Hello from the fake provider.")
    assert not any("gen_ai.usage.cost.amount" in s.attributes for s in spans)  # hf-inference: unknown


def test_text_generation_through_a_provider_is_priced_by_it_and_marked_estimated(tasks, span_exporter):
    client = InferenceClient(provider="together", api_key="hf_offline")
    client.text_generation(PROMPT, model=HUB_MODEL, max_new_tokens=20)
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.provider.name"] == "huggingface_together"
    assert span.attributes["llm_cost.usage.estimated"] is True
    assert tasks.request_count("/together/v1/completions") == 1
    expected = llm_cost.compute_cost("huggingface_together", HUB_MODEL, {
        "prompt_tokens": span.attributes["gen_ai.usage.input_tokens"],
        "completion_tokens": span.attributes["gen_ai.usage.output_tokens"]}, api="openai.chat")
    assert cost_of(span) == Decimal(repr(float(expected.total))) and expected.total > 0


def test_feature_extraction_is_an_embeddings_span_with_an_estimated_input(tasks, span_exporter):
    client = InferenceClient(provider="hf-inference", api_key="hf_offline")
    vectors = client.feature_extraction(["one text", "another text"], model=EMBEDDER)
    assert vectors.shape == (2, 3)

    async def run_async():
        async with AsyncInferenceClient(provider="together", api_key="hf_offline") as aclient:
            return await aclient.feature_extraction("one text", model=EMBEDDER)

    asyncio.run(run_async())
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["embeddings", "embeddings"]
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == ["huggingface", "huggingface_together"]
    assert all(s.attributes["gen_ai.usage.input_tokens"] > 0 and s.attributes["llm_cost.usage.estimated"]
               for s in spans)


def test_a_budget_refuses_text_generation_before_it_is_sent(tasks, guard):
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(llm_cost.BudgetExceededError):
        InferenceClient(provider="together", api_key="hf_offline").text_generation(PROMPT, model=HUB_MODEL)
    assert tasks.request_count("") == 0


def test_the_hubs_model_lookup_before_a_first_call_is_not_charged_as_an_attempt(hub, span_exporter, monkeypatch):
    """In production the SDK asks the Hub which provider serves a model (a GET) inside the call, before
    the POST that bills: only the POST is an attempt, so the call costs one request, not two."""
    model = "meta-llama/Llama-3.1-8B-Instruct"
    monkeypatch.delitem(HARDCODED_MODEL_INFERENCE_MAPPING, "together")
    hub.add_hub_model(model, "text-generation", providers={"together": model + "-Turbo"})
    hub.set_model(model + "-Turbo", input_tokens=1_000, output_tokens=100)
    InferenceClient(provider="together", api_key="hf_offline").chat_completion(MESSAGES, model=model)
    span = our_spans(span_exporter)[0]
    assert hub.request_count(f"/api/models/{model}") == 1 and hub.request_count("/together/") == 1
    assert span.attributes["gen_ai.usage.input_tokens"] == 1_000 and span.attributes["gen_ai.usage.output_tokens"] == 100
    assert not span.attributes.get("llm_cost.usage.estimated")

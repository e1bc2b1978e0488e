"""xai-sdk, which speaks gRPC, driven for real against the fake provider's gRPC side (xAI's `Chat`
service, answered with the SDK's own protobuf messages: usage on every chunk, cumulative, and
`cost_in_usd_ticks` when the model is set to report a cost).

Prices: genai-prices' xAI entries; grok-4 (grok-4-0709) $3 input / $15 output per 1M tokens, $0.75
for cached input (docs.x.ai/docs/models, read 2026-12-03)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans
from pydantic import BaseModel

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

pytest.importorskip("xai_sdk")
from xai_sdk import AsyncClient, Client  # noqa: E402
from xai_sdk.chat import user  # noqa: E402

GROK_4 = 1_000 * Decimal(3) / 10**6 + 100 * Decimal(15) / 10**6


class Answer(BaseModel):
    text: str


@pytest.fixture
def xai(fake, instrumented):
    fake.set_model("grok-4", input_tokens=1_000, output_tokens=100, text='{"text": "hi"}')
    return fake


def _chat(fake, cls=Client, **kwargs):
    chat = cls(api_key="offline", api_host=fake.grpc_address, use_insecure_channel=True).chat.create(
        model="grok-4", **kwargs)
    chat.append(user("Hi"))
    return chat


def test_sample_stream_and_parse_sync_and_async_are_each_one_priced_span(xai, span_exporter):
    chat = _chat(xai)
    assert chat.sample().content == '{"text": "hi"}'
    pairs = list(chat.stream())
    assert len(pairs) == 4 and pairs[-1][0].usage.completion_tokens == 100
    assert chat.parse(Answer)[1].text == "hi"

    async def run_async():
        achat = _chat(xai, AsyncClient)
        await achat.sample()
        return [chunk.content async for _, chunk in achat.stream()]

    assert "".join(asyncio.run(run_async())) == '{"text": "hi"}'
    spans = our_spans(span_exporter)
    assert xai.request_count("xai_api.Chat/") == 5
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, True, False, False, True]
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"x_ai"}
    assert [cost_of(s) for s in spans] == [GROK_4] * 5
    assert all(s.attributes["gen_ai.response.finish_reasons"] == ("stop",) for s in spans)
    assert not any(s.attributes.get("llm_cost.usage.estimated") for s in spans)


def test_reasoning_is_output_cached_input_is_cheaper_and_max_tokens_is_read(xai, span_exporter):
    xai.set_model("grok-4", input_tokens=1_000, output_tokens=100, reasoning_tokens=300, cache_read_tokens=600)
    _chat(xai, max_tokens=500).sample()
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.request.max_tokens"] == 500
    assert span.attributes["gen_ai.usage.output_tokens"] == 400
    assert cost_of(span) == (400 * Decimal(3) + 600 * Decimal("0.75") + 400 * Decimal(15)) / 10**6


def test_the_cost_xai_reports_wins_and_is_marked_reported(xai, span_exporter):
    xai.set_model("grok-4", input_tokens=1_000, output_tokens=100, usage_cost=0.00452)
    _chat(xai).sample()
    span = our_spans(span_exporter)[0]
    assert cost_of(span) == Decimal("0.00452")
    assert span.attributes["gen_ai.usage.cost.source"] == "provider"


def test_a_refusal_sends_nothing_and_respond_answers_a_sample(xai, guard):
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(llm_cost.BudgetExceededError):
        _chat(xai).sample()
    with pytest.raises(llm_cost.BudgetExceededError):
        list(_chat(xai).stream())
    guard.set(Budget.create(0, name="zero", on_exceed="respond"))
    assert "budget" in _chat(xai).sample().content.lower()
    assert xai.request_count("") == 0

"""replicate driven for real against the fake provider, which serves Replicate's predictions API as
the real one behaves: `Prefer: wait` returns the prediction `processing` with its output and no
metrics; without it the prediction is `starting` and a GET finds it `succeeded` with its token counts.

genai-prices has no Replicate prices, so each test that checks a cost sets the model's price itself:
meta/meta-llama-3-70b-instruct, $0.65 input / $2.75 output per 1M tokens (replicate.com/pricing, read
2026-12-03)."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget
from otel_llm_cost.pricing import default_price_book

replicate = pytest.importorskip("replicate")

MODEL = "meta/meta-llama-3-70b-instruct"
PER_CALL = 1_000 * Decimal("0.65") / 10**6 + 20 * Decimal("2.75") / 10**6


@pytest.fixture
def hosted(fake, instrumented):
    fake.set_model(MODEL, input_tokens=1_000, output_tokens=20)
    llm_cost.set_pricing(MODEL, "0.65", "2.75", provider="replicate")
    yield fake
    default_price_book().clear_custom()


def _client(fake):
    client = replicate.Client(api_token="r8_offline", base_url=fake.url)
    client.poll_interval = 0.01
    return client


def test_a_prediction_waited_for_is_one_span_with_the_reported_counts(hosted, span_exporter):
    client = _client(hosted)
    prediction = client.predictions.create(model=MODEL, input={"prompt": "Hi", "max_tokens": 64})
    assert prediction.status == "starting" and not our_spans(span_exporter)  # still running: no span yet
    prediction.wait()
    assert prediction.status == "succeeded" and "".join(prediction.output).startswith("Hello")
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.provider.name"] == "replicate"
    assert span.attributes["gen_ai.request.model"] == MODEL and span.attributes["gen_ai.request.max_tokens"] == 64
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (1_000, 20)
    assert cost_of(span) == PER_CALL and not span.attributes.get("llm_cost.usage.estimated")
    assert hosted.request_count(f"/v1/models/{MODEL}/predictions") == 1


def test_replicate_run_returns_before_the_metrics_so_the_output_is_counted_and_marked_estimated(hosted, span_exporter):
    output = _client(hosted).run(MODEL, input={"prompt": "Hi"})
    assert "".join(output).startswith("Hello")
    gc.collect()
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.usage.output_tokens"] == 20  # one token per item of the output list
    assert span.attributes["gen_ai.usage.input_tokens"] > 0 and span.attributes["llm_cost.usage.estimated"]


def test_async_create_and_wait(hosted, span_exporter):
    async def main():
        prediction = await _client(hosted).predictions.async_create(model=MODEL, input={"prompt": "Hi"})
        await prediction.async_wait()
        return prediction

    assert asyncio.run(main()).status == "succeeded"
    assert [cost_of(s) for s in our_spans(span_exporter)] == [PER_CALL]


def test_without_a_price_the_cost_is_unknown_never_zero(fake, instrumented, span_exporter):
    fake.set_model("acme/house-model", input_tokens=10, output_tokens=5)
    prediction = _client(fake).predictions.create(model="acme/house-model", input={"prompt": "Hi"})
    prediction.wait()
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert "gen_ai.usage.cost.amount" not in span.attributes and span.attributes["llm_cost.pricing.source"] == "unknown"


def test_a_refusal_is_a_replicate_error_and_creates_nothing(hosted, guard):
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(replicate.exceptions.ReplicateException) as raised:
        _client(hosted).run(MODEL, input={"prompt": "Hi", "max_tokens": 10})
    assert isinstance(raised.value, llm_cost.BudgetExceededError)
    assert hosted.request_count("") == 0

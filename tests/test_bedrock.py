"""The real boto3 `bedrock-runtime` client against the fake provider: Converse and ConverseStream (AWS
binary event stream), both cache TTLs, the service tier the response reports, errors and budgets."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import cost_of, only_span, our_spans

from otel_llm_cost.budget import BudgetExceededError
from otel_llm_cost.testing.fake import Fault

D = Decimal
CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarise the attached contract."}]}]

# Claude Sonnet 4 on Bedrock, https://aws.amazon.com/bedrock/pricing/ (read 2025-10): $3 in, $3.75 5m cache
# write, $6 1h cache write, $0.30 cache read, $15 out per 1M tokens. 20,000 input = 2,000 uncached +
# 12,000 read + 4,000 5m write + 2,000 1h write; 500 out.
EXPECTED = D("0.006") + D("0.0036") + D("0.015") + D("0.012") + D("0.0075")


def _client(url: str, service: str = "bedrock-runtime"):
    return boto3.client(service, region_name="us-east-1", endpoint_url=url, aws_access_key_id="offline",
                        aws_secret_access_key="offline", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture
def bedrock(fake):
    return _client(fake.bedrock_url)


@pytest.fixture
def cached_conversation(fake):
    fake.set_model(CLAUDE, input_tokens=20_000, cache_read_tokens=12_000, cache_write_tokens=4_000,
                   cache_write_1h_tokens=2_000, output_tokens=500)



def check(span) -> None:
    a = span.attributes
    assert span.name == f"chat {CLAUDE}"
    assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("aws.bedrock", CLAUDE)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (20_000, 500)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 12_000
    assert a["gen_ai.usage.cache_write.input_tokens"] == 6_000
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert cost_of(span) == EXPECTED
    assert "llm_cost.usage.estimated" not in a


def test_converse(instrumented, bedrock, span_exporter, cached_conversation):
    response = bedrock.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 600})
    assert response["output"]["message"]["content"][0]["text"] == "Hello from the fake provider."
    span = only_span(span_exporter)
    check(span)
    assert span.attributes["gen_ai.request.max_tokens"] == 600
    assert span.attributes["gen_ai.response.id"] == response["ResponseMetadata"]["RequestId"]


def test_converse_stream_yields_the_same_events_and_is_priced_from_metadata(tracer_provider, settings, bedrock,
                                                                            span_exporter, cached_conversation):
    from otel_llm_cost.instrumentation.bedrock import BedrockInstrumentor

    plain = list(bedrock.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"])
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        response = bedrock.converse_stream(modelId=CLAUDE, messages=MESSAGES)
        seen = list(response["stream"])
    finally:
        instrumentor.uninstrument()
    assert seen == plain and list(seen[-1]) == ["metadata"]
    check(only_span(span_exporter))


def test_an_inference_profile_arn_is_priced_as_its_model(instrumented, bedrock, span_exporter, cached_conversation):
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{CLAUDE}"
    bedrock.converse(modelId=arn, messages=MESSAGES)
    assert cost_of(only_span(span_exporter)) == EXPECTED


def test_billed_at_the_tier_the_response_reports(instrumented, bedrock, span_exporter, fake):
    # Amazon Nova Pro, https://aws.amazon.com/bedrock/pricing/ (read 2025-10): $0.80 in, $3.20 out per 1M
    # (standard). Flex was asked for, the response says it was served at the default tier.
    fake.set_model("amazon.nova-pro-v1:0", input_tokens=10_000, output_tokens=1_000, service_tier="default")
    bedrock.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES, serviceTier={"type": "flex"})
    a = only_span(span_exporter).attributes
    assert (a["llm_cost.request.service_tier"], a["llm_cost.response.service_tier"]) == ("flex", "default")
    assert "gen_ai.openai.response.service_tier" not in a
    assert cost_of(only_span(span_exporter)) == D("0.008") + D("0.0032")


def test_other_aws_operations_pass_through_untouched(instrumented, fake, span_exporter):
    control_plane = _client(fake.url, service="bedrock")  # not bedrock-runtime
    with pytest.raises(ClientError):
        control_plane.list_foundation_models()
    assert our_spans(span_exporter) == []


def test_throttling_error_propagates_unchanged(instrumented, bedrock, span_exporter, fake):
    fake.inject(Fault(status=429))
    with pytest.raises(ClientError) as excinfo:
        bedrock.converse(modelId=CLAUDE, messages=MESSAGES)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    span = only_span(span_exporter)
    assert span.attributes["error.type"] == "ClientError"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_stream_cut_mid_way_is_estimated_and_the_app_sees_botocores_error(instrumented, bedrock, span_exporter,
                                                                         fake):
    fake.set_model(CLAUDE, input_tokens=1_000, output_tokens=100, chunks=5)
    fake.inject(Fault(cut_after_chunks=3))
    seen = []
    with pytest.raises(Exception) as excinfo:
        for event in bedrock.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]:
            seen.append(event)
    assert len(seen) == 3
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True and a["gen_ai.usage.cost.amount"] > 0
    assert a["error.type"] == type(excinfo.value).__qualname__


def test_stream_closed_early_ends_the_span_once(instrumented, bedrock, span_exporter, fake):
    fake.set_model(CLAUDE, input_tokens=1_000, output_tokens=100, chunks=5)
    stream = bedrock.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]
    next(iter(stream))
    stream.close()
    stream.close()
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True and "error.type" not in a


HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
# Claude 3.5 Haiku on Bedrock, https://aws.amazon.com/bedrock/pricing/ (read 2025-10): $0.80 in, $0.08 cache
# read, $4 out per 1M. 5,000 input = 2,000 uncached + 3,000 read; 50 out.
HAIKU_EXPECTED = D("0.0016") + D("0.00024") + D("0.0002")
INVOKE_BODY = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                          "messages": [{"role": "user", "content": "Summarise the attached contract."}]})


@pytest.fixture
def haiku(fake):
    fake.set_model(HAIKU, input_tokens=5_000, cache_read_tokens=3_000, output_tokens=50)


def test_invoke_model_is_priced_from_bedrocks_count_headers_and_leaves_the_body_unread(instrumented, bedrock,
                                                                                      span_exporter, haiku):
    response = bedrock.invoke_model(modelId=HAIKU, body=INVOKE_BODY)
    assert json.loads(response["body"].read())["content"][0]["text"] == "Hello from the fake provider."
    a = only_span(span_exporter).attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"]) == (5_000, 3_000)
    assert a["gen_ai.request.max_tokens"] == 100 and a["llm_cost.response.service_tier"] == "default"
    assert cost_of(only_span(span_exporter)) == HAIKU_EXPECTED


def test_invoke_model_with_response_stream_yields_the_same_chunks(tracer_provider, settings, bedrock, span_exporter,
                                                                  haiku):
    from otel_llm_cost.instrumentation.bedrock import BedrockInstrumentor

    def texts() -> list[str]:
        events = bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=INVOKE_BODY)["body"]
        return [json.loads(event["chunk"]["bytes"]).get("type") for event in events]

    plain = texts()
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        seen = texts()
    finally:
        instrumentor.uninstrument()
    assert seen == plain and seen[-1] == "message_stop"
    span = only_span(span_exporter)
    assert cost_of(span) == HAIKU_EXPECTED and "llm_cost.usage.estimated" not in span.attributes


def test_invoke_model_without_bedrocks_counts_leaves_the_cost_unknown_never_zero(instrumented, bedrock,
                                                                                 span_exporter, fake):
    fake.inject(Fault(body={"generations": [{"text": "a model family that reports no counts"}]}))
    response = bedrock.invoke_model(modelId="cohere.command-r-v1:0", body=json.dumps({"message": "Hi"}))
    assert json.loads(response["body"].read())["generations"][0]["text"].startswith("a model family")
    a = only_span(span_exporter).attributes
    assert a["llm_cost.pricing.source"] == "unknown" and "gen_ai.usage.cost.amount" not in a


def test_invoke_stream_cut_mid_way_is_estimated(instrumented, bedrock, span_exporter, haiku, fake):
    fake.inject(Fault(cut_after_chunks=4))
    seen = []
    with pytest.raises(Exception):
        for event in bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=INVOKE_BODY)["body"]:
            seen.append(event)
    assert len(seen) == 4
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True and a["gen_ai.usage.cost.amount"] > 0


@pytest.mark.parametrize("call", [
    lambda client: client.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 100}),
    lambda client: client.converse_stream(modelId=CLAUDE, messages=MESSAGES),
    lambda client: client.invoke_model(modelId=HAIKU, body=INVOKE_BODY),
    lambda client: client.invoke_model_with_response_stream(modelId=HAIKU, body=INVOKE_BODY),
], ids=["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"])
def test_budget_refuses_before_the_request_is_sent(frozen_budget, bedrock, span_exporter, fake, call):
    with pytest.raises(BudgetExceededError):
        call(bedrock)
    assert fake.request_count() == 0
    assert only_span(span_exporter).attributes["llm_cost.budget.outcome"] == "blocked"

"""Claude through `AnthropicBedrock` and `AnthropicVertex`: named `aws.bedrock` / `gcp.vertex_ai` and priced
at those clouds' rates, regional endpoints and inference profiles included. Real anthropic clients
against the fake provider, which speaks Bedrock's InvokeModel and Vertex's rawPredict.

Prices (per 1M tokens, read 2026-11-25):
- Claude Sonnet 4.5: $3 input / $15 output, global (anthropic.com/pricing; aws.amazon.com/bedrock/pricing).
- Bedrock regional and in-region profiles: +10%, $3.30 / $16.50 (aws.amazon.com/bedrock/pricing).
- Vertex AI regional endpoints: +10% from Sonnet 4.5 on
  (platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai); Claude 3.7 Sonnet has no premium.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import anthropic
import pytest
from conftest import cost_of, only_span, our_spans

MESSAGES = [{"role": "user", "content": "Hi"}]
SONNET_45_GLOBAL = 10_000 * Decimal(3) / 10**6 + 1_000 * Decimal(15) / 10**6  # $0.045
SONNET_45_REGIONAL = SONNET_45_GLOBAL * Decimal("1.1")  # $0.0495


def _bedrock(fake, cls=anthropic.AnthropicBedrock):
    return cls(base_url=fake.url, aws_access_key="AKIDTEST", aws_secret_key="secret", aws_region="us-east-1",
               max_retries=0)


def _vertex(fake, region: str, cls=anthropic.AnthropicVertex):
    return cls(base_url=f"{fake.url}/v1", project_id="p", region=region, access_token="ya29.test", max_retries=0)


@pytest.mark.parametrize(("model", "expected"), [
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_45_GLOBAL),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_45_REGIONAL),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_45_REGIONAL),
])
def test_anthropic_bedrock_is_priced_at_bedrock_rates_by_profile(instrumented, fake, span_exporter, model, expected):
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    _bedrock(fake).messages.create(model=model, max_tokens=1_000, messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert cost_of(span) == expected


def test_anthropic_bedrock_stream_and_async(instrumented, fake, span_exporter):
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    with _bedrock(fake).messages.stream(model=model, max_tokens=1_000, messages=MESSAGES) as stream:
        assert stream.get_final_message().usage.output_tokens == 1_000

    async def main() -> None:
        await _bedrock(fake, anthropic.AsyncAnthropicBedrock).messages.create(model=model, max_tokens=1_000,
                                                                             messages=MESSAGES)

    asyncio.run(main())
    assert [cost_of(s) for s in our_spans(span_exporter)] == [SONNET_45_REGIONAL] * 2


@pytest.mark.parametrize(("region", "model", "expected"), [
    ("global", "claude-sonnet-4-5@20250929", SONNET_45_GLOBAL),
    ("us-east5", "claude-sonnet-4-5@20250929", SONNET_45_REGIONAL),
    ("europe-west1", "claude-3-7-sonnet@20250219", SONNET_45_GLOBAL),  # $3 / $15, no premium before 4.5
])
def test_anthropic_vertex_global_and_regional(instrumented, fake, span_exporter, region, model, expected):
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    reply = _vertex(fake, region).messages.create(model=model, max_tokens=1_000, messages=MESSAGES)
    assert reply.model == model
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert cost_of(span) == expected


def test_anthropic_vertex_stream_and_async(instrumented, fake, span_exporter):
    model = "claude-sonnet-4-5@20250929"
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    for event in _vertex(fake, "us-east5").messages.create(model=model, max_tokens=1_000, messages=MESSAGES,
                                                           stream=True):
        pass

    async def main() -> None:
        client = _vertex(fake, "global", anthropic.AsyncAnthropicVertex)
        async with client.messages.stream(model=model, max_tokens=1_000, messages=MESSAGES) as stream:
            await stream.get_final_message()

    asyncio.run(main())
    assert [cost_of(s) for s in our_spans(span_exporter)] == [SONNET_45_REGIONAL, SONNET_45_GLOBAL]


def test_the_plain_client_stays_anthropic(instrumented, anthropic_client, fake, span_exporter):
    fake.set_model("claude-sonnet-4-5", input_tokens=10_000, output_tokens=1_000)
    anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "anthropic" and cost_of(span) == SONNET_45_GLOBAL
    assert span.attributes["server.address"] == "127.0.0.1"


@pytest.mark.parametrize(("model", "expected"), [
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_45_GLOBAL),
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_45_REGIONAL),
])
def test_bedrock_converse_prices_regional_profiles_the_same_way(instrumented, fake, span_exporter, model, expected):
    import boto3

    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    client = boto3.client("bedrock-runtime", region_name="eu-west-1", endpoint_url=fake.url,
                          aws_access_key_id="offline", aws_secret_access_key="offline")
    client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                    inferenceConfig={"maxTokens": 1_000})
    assert cost_of(only_span(span_exporter)) == expected


def test_anthropic_foundry_is_azure_and_priced_at_azures_claude_rates(instrumented, fake, span_exporter):
    """Claude in Microsoft Foundry: `https://{resource}.services.ai.azure.com/anthropic/`; Azure lists
    Sonnet 4.5 at $3 / $15 (genai-prices' `azure` entry), sync, async and streamed."""
    model = "claude-sonnet-4-5"
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    client = anthropic.AnthropicFoundry(base_url=f"{fake.url}/anthropic", api_key="foundry-key", max_retries=0)
    client.messages.create(model=model, max_tokens=1_000, messages=MESSAGES)
    with client.messages.stream(model=model, max_tokens=1_000, messages=MESSAGES) as stream:
        assert stream.get_final_message().usage.output_tokens == 1_000

    async def main() -> None:
        await anthropic.AsyncAnthropicFoundry(base_url=f"{fake.url}/anthropic", api_key="foundry-key",
                                              max_retries=0).messages.create(model=model, max_tokens=1_000,
                                                                             messages=MESSAGES)

    asyncio.run(main())
    spans = our_spans(span_exporter)
    assert fake.request_count("/anthropic/v1/messages") == 3
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == ["azure.ai.inference"] * 3
    assert [cost_of(s) for s in spans] == [SONNET_45_GLOBAL] * 3

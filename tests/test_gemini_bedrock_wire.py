"""The fake provider speaks Gemini and Bedrock Converse to the REAL google-genai and boto3 clients, and
our parsers read those clients' own response objects (the instrumentation is tested in test_google_genai.py and test_bedrock.py)."""

from __future__ import annotations

from decimal import Decimal

import boto3
from google import genai
from google.genai import types

from otel_llm_cost.pricing import compute_cost
from otel_llm_cost.usage import Usage, usage_from_bedrock_converse, usage_from_gemini


def test_google_genai_client_and_thoughts_tokens(fake):
    fake.set_model("gemini-2.5-flash", input_tokens=100_000, cache_read_tokens=60_000, output_tokens=1_000,
                   reasoning_tokens=3_000)
    client = genai.Client(api_key="offline", http_options=types.HttpOptions(base_url=fake.gemini_url))
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Summarise the report.")
    assert response.text == "Hello from the fake provider."
    usage = usage_from_gemini(response.usage_metadata)  # the SDK's snake_case object
    assert usage == Usage(input_tokens=100_000, cache_read_tokens=60_000, output_tokens=4_000, reasoning_tokens=3_000)
    # Gemini 2.5 Flash, https://ai.google.dev/gemini-api/docs/pricing (read 2025-11): $0.30 in, $0.03 cached,
    # $2.50 out (thinking included)
    cost = compute_cost("gcp.gemini", "gemini-2.5-flash", response.usage_metadata, api="gemini.generate_content")
    assert cost.total == Decimal("0.012") + Decimal("0.0018") + Decimal("0.01")


def test_google_genai_streaming(fake):
    fake.set_model("gemini-2.5-flash", input_tokens=1_000, output_tokens=100, chunks=3)
    client = genai.Client(api_key="offline", http_options=types.HttpOptions(base_url=fake.gemini_url))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    assert len(chunks) == 3
    assert usage_from_gemini(chunks[-1].usage_metadata) == Usage(input_tokens=1_000, output_tokens=100)


def test_boto3_bedrock_converse_with_both_cache_ttls(fake):
    fake.set_model("us.anthropic.claude-sonnet-4-20250514-v1:0", input_tokens=20_000, cache_read_tokens=12_000,
                   cache_write_tokens=4_000, output_tokens=500)
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                          aws_access_key_id="offline", aws_secret_access_key="offline")
    response = client.converse(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0",
                               messages=[{"role": "user", "content": [{"text": "Hello"}]}],
                               inferenceConfig={"maxTokens": 600})
    assert response["output"]["message"]["content"][0]["text"] == "Hello from the fake provider."
    usage = usage_from_bedrock_converse(response["usage"])
    assert usage == Usage(input_tokens=20_000, cache_read_tokens=12_000, cache_write_5m_tokens=4_000,
                          output_tokens=500)
    # Claude Sonnet 4 on Bedrock, https://aws.amazon.com/bedrock/pricing/ (read 2025-10): $3 in, $3.75 cache write,
    # $0.30 cache read, $15 out
    cost = compute_cost("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", response["usage"],
                        api="bedrock.converse")
    assert cost.total == Decimal("0.012") + Decimal("0.0036") + Decimal("0.015") + Decimal("0.0075")

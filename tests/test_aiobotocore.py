"""aiobotocore's async `bedrock-runtime` client (aiohttp underneath) against the fake provider: the same
operations, prices and guarantees as boto3 (tests/test_bedrock.py), awaited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from conftest import cost_of, only_span, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.testing.fake import Fault

D = Decimal
CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarise the attached contract."}]}]
# Claude Sonnet 4 on Bedrock (aws.amazon.com/bedrock/pricing, read 2025-10): $3 in, $15 out per 1M
PLAIN = D(10_000) * 3 / 10**6 + D(500) * 15 / 10**6


def run(fake, body: Callable[[Any], Awaitable[Any]], **config: Any) -> Any:
    """Run `body(client)` with a fresh aiobotocore client in a fresh event loop."""

    async def main() -> Any:
        session = get_session()
        async with session.create_client(
                "bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                aws_access_key_id="offline", aws_secret_access_key="offline",
                config=Config(retries={"total_max_attempts": 1}, **config)) as client:
            return await body(client)

    return asyncio.run(main())


@pytest.fixture
def plain_conversation(fake):
    fake.set_model(CLAUDE, input_tokens=10_000, output_tokens=500)


def test_converse(instrumented, fake, span_exporter, plain_conversation):
    response = run(fake, lambda c: c.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 600}))
    assert response["output"]["message"]["content"][0]["text"] == "Hello from the fake provider."
    span = only_span(span_exporter)
    assert cost_of(span) == PLAIN
    assert (span.attributes["gen_ai.provider.name"], span.attributes["gen_ai.request.max_tokens"]) == (
        "aws.bedrock", 600)


def test_converse_stream_yields_every_event_and_is_priced_from_metadata(instrumented, fake, span_exporter,
                                                                        plain_conversation):
    async def stream(client: Any) -> list[Any]:
        response = await client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
        return [event async for event in response["stream"]]

    events = run(fake, stream)
    assert list(events[0]) == ["messageStart"] and list(events[-1]) == ["metadata"]
    assert cost_of(only_span(span_exporter)) == PLAIN


def test_invoke_model_and_its_stream(instrumented, fake, span_exporter, plain_conversation):
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 600,
                       "messages": [{"role": "user", "content": "Hi"}]})

    async def both(client: Any) -> tuple[bytes, int]:
        response = await client.invoke_model(modelId=CLAUDE, body=body)
        plain = await response["body"].read()
        streamed = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)
        return plain, len([event async for event in streamed["body"]])

    plain, chunks = run(fake, both)
    assert json.loads(plain)["type"] == "message" and chunks > 2
    assert [cost_of(s) for s in our_spans(span_exporter)] == [PLAIN, PLAIN]


def test_embeddings_through_invoke_model(instrumented, fake, span_exporter):
    fake.set_model("amazon.titan-embed-text-v2:0", input_tokens=50_000)
    run(fake, lambda c: c.invoke_model(modelId="amazon.titan-embed-text-v2:0",
                                       body=json.dumps({"inputText": "a lighthouse"})))
    span = only_span(span_exporter)
    assert (span.attributes["gen_ai.operation.name"], cost_of(span)) == ("embeddings", D(50_000) * D("0.02") / 10**6)


def test_errors_propagate_unchanged_and_cost_nothing(instrumented, fake, span_exporter):
    fake.inject(Fault(status=429))
    with pytest.raises(ClientError) as caught:
        run(fake, lambda c: c.converse(modelId=CLAUDE, messages=MESSAGES))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    span = only_span(span_exporter)
    assert "gen_ai.usage.cost.amount" not in span.attributes
    assert span.attributes["error.type"] == "ClientError"


def test_a_read_timeout_after_sending_is_charged_its_worst_case(instrumented, fake, span_exporter):
    """The request left the client and was never answered: the provider may have processed it."""
    fake.set_delay(1.0)
    with pytest.raises(ReadTimeoutError):
        run(fake, lambda c: c.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 100}),
            read_timeout=0.2)
    span = only_span(span_exporter)
    assert span.attributes["llm_cost.usage.estimated"] is True
    assert span.attributes["gen_ai.usage.output_tokens"] == 100  # the reserved max_tokens
    assert cost_of(span) > 0


def test_a_budget_refuses_before_sending(guard, fake):
    guard.set(llm_cost.Budget.create("0.001", name="tight"))
    with pytest.raises(llm_cost.BudgetExceededError):
        run(fake, lambda c: c.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 4_000}))
    assert fake.request_count("converse") == 0


def test_other_aws_operations_pass_through(instrumented, fake, span_exporter):
    async def control_plane() -> None:
        async with get_session().create_client(
                "bedrock", region_name="us-east-1", endpoint_url=fake.url, aws_access_key_id="offline",
                aws_secret_access_key="offline") as client:
            await client.list_foundation_models()

    with pytest.raises(ClientError):
        asyncio.run(control_plane())
    assert our_spans(span_exporter) == []

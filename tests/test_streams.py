"""Streams look exactly the same to the app, and end their span exactly once however they end."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import openai
import pytest
from conftest import only_span, our_spans

from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.testing.fake import Fault

MESSAGES = [{"role": "user", "content": "Tell me a story."}]


def _dump(chunks):
    return [c.model_dump() for c in chunks]


def _stream_chunks(client, **kwargs):
    return list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **kwargs))


@pytest.mark.parametrize("stream_options", [None, {"include_usage": True}, {"include_usage": False}])
def test_app_sees_exactly_the_chunks_it_would_see_uninstrumented(tracer_provider, settings, openai_client,
                                                                 span_exporter, fake, stream_options):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=200, chunks=6)
    kwargs = {"stream_options": stream_options} if stream_options is not None else {}
    bare = _dump(_stream_chunks(openai_client, **kwargs))
    instrument(tracer_provider=tracer_provider)
    try:
        seen = _dump(_stream_chunks(openai_client, **kwargs))
    finally:
        uninstrument()
    for chunk in bare + seen:  # ids and timestamps differ between two calls
        chunk.pop("id"), chunk.pop("created")
    assert seen == bare
    span = only_span(span_exporter)
    # usage was injected and read even when the app did not ask: gpt-4o $2.50 / $10 per 1M
    assert Decimal(repr(span.attributes["gen_ai.usage.cost.amount"])) == Decimal("0.0045")
    assert "llm_cost.usage.estimated" not in span.attributes
    sent = fake.bodies[-1]["body"]
    assert sent["stream_options"]["include_usage"] is True


def test_without_stream_usage_the_request_is_unchanged_and_usage_is_estimated(tracer_provider, openai_client,
                                                                             span_exporter, fake):
    from otel_llm_cost import _state
    from otel_llm_cost.config import Settings

    _state.set_settings(Settings.from_env({"OTEL_LLM_COST_STREAM_USAGE": "false"}))
    instrument(tracer_provider=tracer_provider)
    try:
        _stream_chunks(openai_client)
    finally:
        uninstrument()
        _state._settings = None
    assert "stream_options" not in fake.bodies[-1]["body"]
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True
    assert a["gen_ai.usage.cost.amount"] > 0  # estimated, never 0


def test_chat_completions_stream_helper(instrumented, openai_client, span_exporter, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=200)
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from the fake provider."
    assert final.usage is None  # as without us: the helper's app did not ask for usage
    assert Decimal(repr(only_span(span_exporter).attributes["gen_ai.usage.cost.amount"])) == Decimal("0.0045")


def test_async_stream_and_context_manager(instrumented, async_openai_client, span_exporter, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=200)

    async def consume():
        stream = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async with stream:
            return [c async for c in stream]

    chunks = asyncio.run(consume())
    assert all(c.choices for c in chunks)  # the usage chunk is hidden
    assert len(our_spans(span_exporter)) == 1


def test_early_break_then_close_ends_the_span_once_with_an_estimate(instrumented, openai_client, span_exporter,
                                                                     fake):
    fake.set_model("gpt-4o", chunks=20)
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    stream.close()
    stream.close()
    a = only_span(span_exporter).attributes
    assert a["llm_cost.usage.estimated"] is True and a["gen_ai.usage.cost.amount"] > 0


def test_abandoned_stream_ends_its_span_when_collected(instrumented, openai_client, span_exporter, fake):
    fake.set_model("gpt-4o", chunks=20)
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    assert only_span(span_exporter).attributes["llm_cost.usage.estimated"] is True


def test_with_block_ends_the_span(instrumented, openai_client, span_exporter, fake):
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        assert isinstance(next(stream).id, str)
    assert len(our_spans(span_exporter)) == 1


def test_stream_cut_mid_way_raises_the_sdk_error_and_marks_usage_estimated(instrumented, openai_client,
                                                                           span_exporter, fake):
    fake.inject(Fault(cut_after_chunks=2))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            seen.append(chunk)
    assert len(seen) == 2
    a = only_span(span_exporter).attributes
    assert a["error.type"] == "APIConnectionError"
    assert a["llm_cost.usage.estimated"] is True and a["gen_ai.usage.cost.amount"] > 0


def test_anthropic_stream_cut_after_message_start_keeps_exact_input(instrumented, anthropic_client, span_exporter,
                                                                    fake):
    import anthropic
    import httpx2

    fake.set_model("claude-haiku-4-5", input_tokens=5_000, output_tokens=300)
    fake.inject(Fault(cut_after_chunks=3))
    # what the SDK raises for a stream cut mid-body, untouched: since anthropic 2.x, its own
    # APIConnectionError raised from the HTTP client's RemoteProtocolError
    with pytest.raises(anthropic.APIConnectionError) as raised:
        list(anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=MESSAGES,
                                              stream=True))
    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    a = only_span(span_exporter).attributes
    assert a["gen_ai.usage.input_tokens"] == 5_000  # from message_start, exact
    assert a["llm_cost.usage.estimated"] is True


def test_responses_stream_context_manager(instrumented, openai_client, span_exporter, fake):
    with openai_client.responses.create(model="gpt-4o", input="hi", stream=True) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed"
    assert "llm_cost.usage.estimated" not in only_span(span_exporter).attributes


def test_a_proxied_stream_is_still_an_instance_of_the_sdks_stream_types(instrumented, openai_client,
                                                                        async_openai_client, anthropic_client,
                                                                        async_anthropic_client):
    """Apps and frameworks branch on isinstance(stream, openai.Stream); so must our proxy pass it."""
    import asyncio

    import anthropic
    import openai

    messages = [{"role": "user", "content": "Hi"}]
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    assert isinstance(stream, openai.Stream) and type(stream) is not openai.Stream
    stream.close()
    stream = anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=messages,
                                              stream=True)
    assert isinstance(stream, anthropic.Stream) and type(stream) is not anthropic.Stream
    stream.close()

    async def both_async() -> None:
        chat = await async_openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        assert isinstance(chat, openai.AsyncStream)
        await chat.close()
        message = await async_anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                                               messages=messages, stream=True)
        assert isinstance(message, anthropic.AsyncStream)
        await message.close()

    asyncio.run(both_async())


_OPEN_AT_EXIT = r"""
import sys, openai
from opentelemetry.sdk.trace import TracerProvider
from otel_llm_cost.instrumentation import instrument
instrument(tracer_provider=TracerProvider())
client = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                        stream=True)
next(iter(stream))
print("left open")
"""


def test_a_stream_still_open_at_interpreter_exit_prints_nothing(fake):
    """Before: 'sys.meta_path is None' and an ERROR traceback at exit."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OPEN_AT_EXIT, fake.openai_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout == "left open\n"
    assert done.stderr == ""


def test_mistral_and_bedrock_stream_proxies_pass_isinstance_too(instrumented, fake):
    """cohere's and google-genai's streams are plain generators, so there is no type to check."""
    import asyncio

    import boto3
    from botocore.eventstream import EventStream
    from mistralai.client import Mistral
    from mistralai.client.utils.eventstreaming import EventStream as MistralStream
    from mistralai.client.utils.eventstreaming import EventStreamAsync

    mistral = Mistral(api_key="k", server_url=fake.url)
    stream = mistral.chat.stream(model="mistral-small-2603", messages=[{"role": "user", "content": "Hi"}])
    assert isinstance(stream, MistralStream) and type(stream) is not MistralStream
    list(stream)

    async def async_stream() -> None:
        events = await mistral.chat.stream_async(model="mistral-small-2603",
                                                 messages=[{"role": "user", "content": "Hi"}])
        assert isinstance(events, EventStreamAsync)
        async for _ in events:
            pass

    asyncio.run(async_stream())
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                           aws_access_key_id="offline", aws_secret_access_key="offline")
    response = bedrock.converse_stream(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0",
                                       messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert isinstance(response["stream"], EventStream) and type(response["stream"]) is not EventStream
    list(response["stream"])

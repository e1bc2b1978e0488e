"""The other ways apps call the same endpoints: structured outputs (`parse`), `with_raw_response`,
`with_streaming_response` and anthropic's `beta.messages`. Each call is priced once, and the app gets
exactly what it would get uninstrumented."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pydantic
import pytest
from conftest import cost_of, only_span, our_spans

D = Decimal
MESSAGES = [{"role": "user", "content": "What is the answer?"}]
ANSWER = '{"answer": "42"}'


class Answer(pydantic.BaseModel):
    answer: str


@pytest.fixture
def gpt_4o_mini(fake):
    # gpt-4o-mini, https://openai.com/api/pricing (read 2025-10): $0.15 in, $0.60 out per 1M.
    fake.set_model("gpt-4o-mini", input_tokens=10_000, output_tokens=1_000, text=ANSWER, chunks=3)
    return D("0.0015") + D("0.0006")


@pytest.fixture
def haiku(fake):
    # Claude Haiku 4.5, https://docs.anthropic.com/en/docs/about-claude/pricing (read 2025-10): $1 in, $5 out.
    fake.set_model("claude-haiku-4-5", input_tokens=10_000, output_tokens=1_000, text=ANSWER)
    return D("0.01") + D("0.005")


def test_openai_chat_parse(instrumented, openai_client, span_exporter, gpt_4o_mini):
    completion = openai_client.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Answer)
    assert completion.choices[0].message.parsed == Answer(answer="42")
    assert cost_of(only_span(span_exporter)) == gpt_4o_mini


def test_openai_async_responses_parse(instrumented, async_openai_client, span_exporter, gpt_4o_mini):
    response = asyncio.run(async_openai_client.responses.parse(model="gpt-4o-mini", input="Answer?", text_format=Answer))
    assert response.output_parsed == Answer(answer="42")
    assert cost_of(only_span(span_exporter)) == gpt_4o_mini


def test_openai_with_raw_response_is_priced_and_parses_to_the_same_object(instrumented, openai_client, span_exporter,
                                                                          gpt_4o_mini):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion is raw.parse() and completion.usage.prompt_tokens == 10_000
    span = only_span(span_exporter)
    assert cost_of(span) == gpt_4o_mini and span.attributes["gen_ai.response.id"] == completion.id


def test_openai_with_raw_response_stream_sees_the_same_chunks(tracer_provider, settings, fake, span_exporter,
                                                              gpt_4o_mini):
    import openai

    from otel_llm_cost.instrumentation import instrument, uninstrument

    def chunks() -> list[str]:
        # a new client each time: `with_raw_response` binds `create` once, when first used
        client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test-not-a-real-key", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        return [c.model_dump_json(exclude={"id", "created"}) for c in raw.parse()]

    plain = chunks()
    instrument(tracer_provider=tracer_provider)
    try:
        seen = chunks()
    finally:
        uninstrument()
    assert seen == plain  # our injected usage chunk stays hidden here too
    span = only_span(span_exporter)
    assert cost_of(span) == gpt_4o_mini and "llm_cost.usage.estimated" not in span.attributes


def test_openai_with_streaming_response_is_left_for_the_app_to_read(instrumented, openai_client, span_exporter,
                                                                    gpt_4o_mini):
    """Reading an unread body before the app would change what the app does, so the usage stays
    unobserved: the cost is unknown, never 0."""
    with openai_client.chat.completions.with_streaming_response.create(model="gpt-4o-mini",
                                                                       messages=MESSAGES) as response:
        assert response.parse().usage.prompt_tokens == 10_000
    a = only_span(span_exporter).attributes
    assert a["llm_cost.pricing.source"] == "unknown" and "gen_ai.usage.cost.amount" not in a


def test_anthropic_parse_and_beta_messages(instrumented, anthropic_client, span_exporter, haiku):
    parsed = anthropic_client.messages.parse(model="claude-haiku-4-5", max_tokens=2_000, messages=MESSAGES,
                                             output_format=Answer)
    assert parsed.parsed_output == Answer(answer="42")
    anthropic_client.beta.messages.create(model="claude-haiku-4-5", max_tokens=2_000, messages=MESSAGES)
    with anthropic_client.beta.messages.stream(model="claude-haiku-4-5", max_tokens=2_000,
                                               messages=MESSAGES) as stream:
        assert stream.get_final_message().usage.output_tokens == 1_000
    spans = our_spans(span_exporter)
    assert [cost_of(s) for s in spans] == [haiku] * 3
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, False, True]


def test_anthropic_async_beta_stream(instrumented, async_anthropic_client, span_exporter, haiku):
    async def run() -> int:
        async with async_anthropic_client.beta.messages.stream(model="claude-haiku-4-5", max_tokens=2_000,
                                                               messages=MESSAGES) as stream:
            return (await stream.get_final_message()).usage.output_tokens

    assert asyncio.run(run()) == 1_000
    assert cost_of(only_span(span_exporter)) == haiku


def test_anthropic_with_raw_response(instrumented, anthropic_client, span_exporter, haiku):
    raw = anthropic_client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=2_000,
                                                            messages=MESSAGES)
    message = raw.parse()
    assert message is raw.parse() and message.usage.input_tokens == 10_000
    assert cost_of(only_span(span_exporter)) == haiku


def test_anthropic_async_with_raw_response_stream_or_not(tracer_provider, settings, fake, span_exporter, haiku):
    import anthropic

    from otel_llm_cost.instrumentation import instrument, uninstrument

    async def run() -> tuple[int, list[str]]:
        client = anthropic.AsyncAnthropic(base_url=fake.anthropic_url, api_key="sk-ant-test-key", max_retries=0,
                                          open_telemetry=False)
        raw = await client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=2_000,
                                                             messages=MESSAGES)
        message = await raw.parse()
        assert message is await raw.parse()
        raw_stream = await client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=2_000,
                                                                    messages=MESSAGES, stream=True)
        events = [event.type async for event in await raw_stream.parse()]
        return message.usage.input_tokens, events

    plain = asyncio.run(run())
    instrument(tracer_provider=tracer_provider)
    try:
        seen = asyncio.run(run())
    finally:
        uninstrument()
    assert seen == plain and seen[0] == 10_000
    assert [cost_of(s) for s in our_spans(span_exporter)] == [haiku, haiku]

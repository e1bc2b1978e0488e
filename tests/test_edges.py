"""The budget promise at the edges: what a call that timed out, was cancelled, was cut, was retried or
came back with impossible usage is charged, what the server saw, and what the app sees.

Prices: gpt-4o-mini $0.15 input / $0.60 output per 1M tokens (openai.com/api/pricing, 2026-11-25).
A call's worst case is what its budget reserved: the upper bound of its input (`estimate_input_tokens`)
plus all of `max_tokens` as output.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import openai
import pytest
from conftest import only_span, our_spans

from otel_llm_cost.budget import Budget, BudgetExceededError
from otel_llm_cost.estimate import estimate_input_tokens
from otel_llm_cost.testing.fake import Fault

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Write one short sentence about budgets."}]
MAX_TOKENS = 200
INPUT_PER_TOKEN = Decimal("0.15") / 10**6
OUTPUT_PER_TOKEN = Decimal("0.60") / 10**6
WORST_INPUT = estimate_input_tokens(MESSAGES)
WORST = WORST_INPUT * INPUT_PER_TOKEN + MAX_TOKENS * OUTPUT_PER_TOKEN
"""$0.00012615 for 41 input tokens (bound) and 200 output tokens."""


def _client(fake, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", **{"max_retries": 0, **options})


def _create(client, **extra):
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **extra)


def _cost(span) -> Decimal:
    return Decimal(repr(span.attributes["gen_ai.usage.cost.amount"]))


def test_worst_case_is_what_the_budget_reserves(guard, fake):
    """The charge of an unanswered attempt and the reservation are one number."""
    assert WORST == Decimal("0.00012615")
    guard.set(Budget.create(1, name="b"))
    fake.set_delay(0.5)
    client = _client(fake, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        _create(client)
    assert guard.status("b").spent == WORST and guard.status("b").reserved == 0


def test_timed_out_calls_are_charged_until_the_budget_refuses_before_sending(guard, fake, span_exporter):
    """Before: 15 timed-out calls were charged $0 under any budget. Now each is charged its worst case,
    and the first call that could pass the budget is refused without reaching the server."""
    guard.set(Budget.create(WORST * 4 + WORST / 2, name="agent"))
    fake.set_delay(0.5)
    client = _client(fake, timeout=0.1)
    outcomes = []
    for _ in range(15):
        try:
            _create(client)
        except openai.APITimeoutError:
            outcomes.append("timeout")
        except BudgetExceededError:
            outcomes.append("blocked")
    assert outcomes == ["timeout"] * 4 + ["blocked"] * 11
    assert fake.request_count("/chat/completions") == 4
    assert guard.status("agent").spent == WORST * 4
    timed_out = [s for s in our_spans(span_exporter) if s.attributes.get("error.type") == "APITimeoutError"]
    assert [(_cost(s), s.attributes["llm_cost.usage.estimated"]) for s in timed_out] == [(WORST, True)] * 4
    assert timed_out[0].attributes["gen_ai.usage.input_tokens"] == WORST_INPUT
    assert timed_out[0].attributes["gen_ai.usage.output_tokens"] == MAX_TOKENS


def test_every_sdk_retry_that_left_the_client_is_charged(guard, fake, span_exporter):
    """A sync call with the SDK's default 2 retries sends 3 requests: 3 worst cases, not $0."""
    guard.set(Budget.create(1, name="b"))
    fake.set_delay(0.5)
    client = _client(fake, timeout=0.1, max_retries=2)
    with pytest.raises(openai.APITimeoutError):
        _create(client)
    assert fake.request_count("/chat/completions") == 3
    assert guard.status("b").spent == WORST * 3
    span = only_span(span_exporter)
    assert _cost(span) == WORST * 3 and span.attributes["llm_cost.attempts"] == 3
    assert span.attributes["gen_ai.usage.output_tokens"] == MAX_TOKENS * 3


def test_a_timeout_then_an_answer_charges_the_answer_plus_one_worst_case(guard, fake, span_exporter):
    guard.set(Budget.create(1, name="b"))
    fake.set_model(MODEL, input_tokens=30, output_tokens=12)
    fake.inject(Fault(delay=0.5))
    _create(_client(fake, timeout=0.2, max_retries=1))
    answered = 30 * INPUT_PER_TOKEN + 12 * OUTPUT_PER_TOKEN
    assert fake.request_count("/chat/completions") == 2
    assert guard.status("b").spent == answered + WORST
    span = only_span(span_exporter)
    assert _cost(span) == answered + WORST and span.attributes["llm_cost.usage.estimated"] is True


def test_error_answers_bill_nothing_and_a_retried_429_charges_only_the_answer(guard, fake, span_exporter):
    guard.set(Budget.create(1, name="b"))
    fake.set_model(MODEL, input_tokens=30, output_tokens=12)
    fake.inject(Fault(status=429))
    fake.inject(Fault(status=500))
    _create(_client(fake, max_retries=2))
    answered = 30 * INPUT_PER_TOKEN + 12 * OUTPUT_PER_TOKEN
    assert fake.request_count("/chat/completions") == 3
    assert guard.status("b").spent == answered
    span = only_span(span_exporter)
    assert _cost(span) == answered and "llm_cost.usage.estimated" not in span.attributes
    assert span.attributes["llm_cost.attempts"] == 3

    fake.inject(Fault(status=400))
    with pytest.raises(openai.BadRequestError):
        _create(_client(fake))
    assert guard.status("b").spent == answered  # a 400 bills nothing


def test_connection_refused_costs_nothing(guard, span_exporter):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    guard.set(Budget.create(1, name="b"))
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=1)
    with pytest.raises(openai.APIConnectionError):
        _create(client)
    status = guard.status("b")
    assert (status.spent, status.reserved) == (0, 0)
    span = only_span(span_exporter)
    assert "gen_ai.usage.cost.amount" not in span.attributes and "llm_cost.usage.estimated" not in span.attributes


def test_a_reset_mid_response_is_charged(guard, fake):
    guard.set(Budget.create(1, name="b"))
    fake.inject(Fault(reset_mid_body=True))
    with pytest.raises(openai.APIConnectionError):
        _create(_client(fake))
    assert fake.request_count("/chat/completions") == 1
    assert guard.status("b").spent == WORST


def test_a_stream_cut_mid_sse_is_charged_its_worst_case(guard, fake, span_exporter):
    guard.set(Budget.create(1, name="b"))
    fake.inject(Fault(cut_after_chunks=2))
    stream = _create(_client(fake), stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert guard.status("b").spent == WORST
    assert _cost(only_span(span_exporter)) == WORST


def test_cancelled_and_timed_out_asyncio_calls_are_charged(guard, fake):
    guard.set(Budget.create(1, name="b"))
    fake.set_delay(0.5)
    client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_create(client), 0.2)
        task = asyncio.ensure_future(_create(client))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert fake.request_count("/chat/completions") == 2
    assert guard.status("b").spent == WORST * 2


def test_cancelled_before_anything_was_sent_costs_nothing(guard, fake):
    """A call cancelled while it waits for the client's only connection never sent a byte: $0. The call
    holding that connection is charged what it reports."""
    import httpx2

    guard.set(Budget.create(1, name="b"))
    fake.set_model(MODEL, input_tokens=30, output_tokens=12)
    fake.inject(Fault(delay=0.6))
    pool_of_one = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_connections=1))
    client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0, http_client=pool_of_one)

    async def main() -> None:
        holder = asyncio.ensure_future(_create(client))
        await asyncio.sleep(0.1)
        waiter = asyncio.ensure_future(_create(client))
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holder

    asyncio.run(main())
    assert fake.request_count("/chat/completions") == 1
    assert guard.status("b").spent == 30 * INPUT_PER_TOKEN + 12 * OUTPUT_PER_TOKEN
    assert guard.status("b").reserved == 0


@pytest.mark.parametrize("prompt_tokens", [1e308, 10**12, -5, 3.5, "lots"])
def test_impossible_usage_is_charged_the_worst_case_not_believed(guard, fake, span_exporter, caplog, prompt_tokens):
    """Before: one response with prompt_tokens 1e308 charged $1e302 and the budget refused every
    call after it, for good."""
    guard.set(Budget.create("0.01", name="b"))
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": 0}}
    fake.inject(Fault(body=body, times=2))
    client = _client(fake)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        first, second = _create(client), _create(client)
    assert first.usage.prompt_tokens == prompt_tokens  # the app sees the response as sent
    assert second.choices[0].message.content == "hi"
    assert guard.status("b").spent == WORST * 2
    span = our_spans(span_exporter)[0]
    assert span.attributes["llm_cost.usage.incomplete"] is True and span.attributes["llm_cost.usage.estimated"] is True
    assert _cost(span) == WORST
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "reported usage that cannot be right" in warnings[0]


def test_a_surprising_but_plausible_count_is_charged_as_reported(guard, fake, span_exporter):
    """A server that ignores max_tokens bills the 5,000 tokens it wrote: that is what is charged."""
    guard.set(Budget.create(1, name="b"))
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "..."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5000, "total_tokens": 5020}}
    fake.inject(Fault(body=body))
    _create(_client(fake))
    reported = 20 * INPUT_PER_TOKEN + 5000 * OUTPUT_PER_TOKEN
    assert reported > WORST and guard.status("b").spent == reported
    assert "llm_cost.usage.estimated" not in only_span(span_exporter).attributes


@pytest.mark.parametrize("fault", [Fault(malformed=True), Fault(html=True)], ids=["truncated-json", "html-200"])
def test_a_garbled_answer_behaves_exactly_as_uninstrumented(tracer_provider, settings, fake, fault):
    from otel_llm_cost.instrumentation import instrument, uninstrument

    def outcome() -> tuple[str, str]:
        fake.inject(Fault(**vars(fault)))
        try:
            result = _create(_client(fake))
        except Exception as error:  # noqa: BLE001 - what the SDK raises is the point
            return "raised", f"{type(error).__name__}: {error}"
        return "returned", repr(result)

    bare = outcome()
    instrument(tracer_provider=tracer_provider)
    try:
        assert outcome() == bare
    finally:
        uninstrument()


@pytest.fixture
def rejecting_server(fake):
    """The fake refuses `stream_options`; the host we remember as refusing it is forgotten afterwards."""
    from otel_llm_cost.instrumentation import openai as instrumentation

    fake.reject_stream_options()
    yield fake
    instrumentation._REJECTS_STREAM_OPTIONS.clear()


def test_a_server_that_rejects_stream_options_still_streams_to_the_app(instrumented, rejecting_server, fake,
                                                                      span_exporter):
    client = _client(fake)
    chunks = [c.choices[0].delta.content for c in _create(client, stream=True) if c.choices]
    assert "".join(filter(None, chunks)) == "Hello from the fake provider."
    assert fake.request_count("/chat/completions") == 2  # rejected once, then sent as the app wrote it
    assert "stream_options" not in fake.bodies[-1]["body"]
    span = only_span(span_exporter)
    assert span.attributes["llm_cost.usage.estimated"] is True and "error.type" not in span.attributes
    list(_create(client, stream=True))
    assert fake.request_count("/chat/completions") == 3  # the host is remembered: no second rejection


def test_an_app_that_asked_for_stream_options_gets_the_servers_answer(instrumented, rejecting_server, fake):
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        _create(_client(fake), stream=True, stream_options={"include_usage": True})
    assert fake.request_count("/chat/completions") == 1


def test_the_usage_chunk_we_asked_for_is_hidden_even_when_its_usage_is_null(tracer_provider, settings, fake):
    from otel_llm_cost.instrumentation import instrument, uninstrument

    fake.set_model(MODEL, null_stream_usage=True)
    client = _client(fake)

    def chunks() -> list[str]:
        return [c.model_dump_json(exclude={"id", "created"}) for c in _create(client, stream=True)]

    bare = chunks()
    instrument(tracer_provider=tracer_provider)
    try:
        assert chunks() == bare
    finally:
        uninstrument()

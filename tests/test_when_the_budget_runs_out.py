"""When a budget refuses, the app keeps working (ARCHITECTURE.md section 9, "When a budget refuses"):
`respond` answers in the SDK's own types without sending, `fallback` sends a cheaper model that fits,
and `raise` raises an error the app's SDK handler already catches. Every SDK and call style is driven
for real against the fake provider: each case is run once without a budget (what the SDK returns) and
once refused, and the two must be of one type, with nothing sent the second time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anthropic
import boto3
import cohere
import groq
import ollama
import openai
import pydantic
import pytest
from conftest import our_spans
from google import genai
from google.genai import types as genai_types
from mistralai.client import Mistral

import otel_llm_cost as llm_cost
from otel_llm_cost.pricing import default_price_book
from otel_llm_cost.budget import Budget
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.stores import MemoryStore
from otel_llm_cost import _state

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REFUSAL = "Budget 'out' is exhausted: $0 of $0 spent. No model was called."
M = [{"role": "user", "content": "Hi"}]
CONVERSE = [{"role": "user", "content": [{"text": "Hi"}]}]


class Answer(pydantic.BaseModel):
    value: int


@pytest.fixture
def guarded(instrumented):
    guard = BudgetGuard(MemoryStore(), fallback_models={"gpt-4o": "gpt-4o-mini", "gpt-4o-mini": "gpt-4.1-nano"})
    _state.set_budget_hook(guard)
    llm_cost.set_pricing("llama3.2", 0.1, 0.1)
    llm_cost.set_pricing("llama-3.3-70b-versatile", 0.59, 0.79)
    yield guard
    _state.set_budget_hook(None)
    default_price_book().clear_custom()


def _clients(fake) -> dict[str, Any]:
    return {
        "openai": openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0),
        "aopenai": openai.AsyncOpenAI(base_url=fake.openai_url, api_key="k", max_retries=0),
        "anthropic": anthropic.Anthropic(base_url=fake.anthropic_url, api_key="k", max_retries=0, open_telemetry=False),
        "aanthropic": anthropic.AsyncAnthropic(base_url=fake.anthropic_url, api_key="k", max_retries=0,
                                               open_telemetry=False),
        "abedrock": anthropic.AnthropicBedrock(base_url=fake.url, aws_access_key="a", aws_secret_key="s",
                                               aws_region="us-east-1", max_retries=0),
        "avertex": anthropic.AnthropicVertex(base_url=f"{fake.url}/v1", project_id="p", region="global",
                                             access_token="t", max_retries=0),
        "gemini": genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=fake.gemini_url)),
        "bedrock": boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                                aws_access_key_id="a", aws_secret_access_key="s"),
        "mistral": Mistral(api_key="k", server_url=fake.url),
        "cohere": cohere.ClientV2(api_key="k", base_url=fake.url),
        "acohere": cohere.AsyncClientV2(api_key="k", base_url=fake.url),
        "groq": groq.Groq(base_url=fake.url + "/openai", api_key="k", max_retries=0),
        "agroq": groq.AsyncGroq(base_url=fake.url + "/openai", api_key="k", max_retries=0),
        "ollama": ollama.Client(host=fake.url),
        "aollama": ollama.AsyncClient(host=fake.url),
    }


def _text_of_chunks(chunks: list[Any], pick: Callable[[Any], Any]) -> str:
    return "".join(piece for chunk in chunks if isinstance(piece := pick(chunk), str))


def _chat_deltas(chunks):
    return _text_of_chunks(chunks, lambda c: c.choices[0].delta.content if c.choices else None)


class Collected:
    """An async stream, read to its end inside the event loop that made it: its class and its items."""

    def __init__(self, stream_class: type, items: list[Any]) -> None:
        self.stream_class, self.items = stream_class, items


async def _collected(make) -> Collected:
    stream = await make
    return Collected(stream.__class__, [item async for item in stream])


def _run(coroutine):
    return asyncio.run(coroutine)


def _openai_stream_helper(c):
    with c["openai"].chat.completions.stream(model="gpt-4o", messages=M) as stream:
        return stream.get_final_completion()


def _responses_stream_helper(c):
    with c["openai"].responses.stream(model="gpt-4o", input="Hi") as stream:
        return stream.get_final_response()


def _anthropic_stream_helper(c):
    with c["anthropic"].messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=M) as stream:
        return stream.get_final_message()


async def _async_anthropic_stream_helper(c):
    async with c["aanthropic"].messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=M) as stream:
        return await stream.get_final_message()


def _litellm(fake, **kwargs):
    import litellm

    return litellm.completion(model="gpt-4o", messages=M, api_base=fake.openai_url, api_key="k", **kwargs)


async def _alitellm(fake, **kwargs):
    import litellm

    return await litellm.acompletion(model="gpt-4o", messages=M, api_base=fake.openai_url, api_key="k", **kwargs)


# name: (call(clients, fake) -> the SDK's return value, text(value) -> the answer's text)
CASES: dict[str, tuple[Callable[[dict, Any], Any], Callable[[Any], str]]] = {
    "openai chat": (lambda c, f: c["openai"].chat.completions.create(model="gpt-4o", messages=M),
                    lambda r: r.choices[0].message.content),
    "openai chat stream": (lambda c, f: c["openai"].chat.completions.create(model="gpt-4o", messages=M, stream=True),
                           lambda s: _chat_deltas(list(s))),
    "openai chat .stream()": (lambda c, f: _openai_stream_helper(c), lambda r: r.choices[0].message.content),
    "openai chat parse": (lambda c, f: c["openai"].chat.completions.parse(model="gpt-4o", messages=M,
                                                                          response_format=Answer),
                          lambda r: r.choices[0].message.refusal or r.choices[0].message.content),
    "openai chat raw": (lambda c, f: c["openai"].chat.completions.with_raw_response.create(model="gpt-4o", messages=M),
                        lambda r: r.parse().choices[0].message.content),
    "openai chat async": (lambda c, f: _run(c["aopenai"].chat.completions.create(model="gpt-4o", messages=M)),
                          lambda r: r.choices[0].message.content),
    "openai chat async stream": (
        lambda c, f: _run(_collected(c["aopenai"].chat.completions.create(model="gpt-4o", messages=M, stream=True))),
        lambda s: _chat_deltas(s.items)),
    "openai responses": (lambda c, f: c["openai"].responses.create(model="gpt-4o", input="Hi"), lambda r: r.output_text),
    "openai responses stream": (
        lambda c, f: c["openai"].responses.create(model="gpt-4o", input="Hi", stream=True),
        lambda s: _text_of_chunks(list(s), lambda e: e.delta if e.type == "response.output_text.delta" else None)),
    "openai responses .stream()": (lambda c, f: _responses_stream_helper(c), lambda r: r.output_text),
    "openai responses parse": (lambda c, f: c["openai"].responses.parse(model="gpt-4o", input="Hi", text_format=Answer),
                               lambda r: getattr(r.output[0].content[0], "refusal", None) or r.output_text),
    "openai completions": (lambda c, f: c["openai"].completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi"),
                           lambda r: r.choices[0].text),
    "openai completions stream": (
        lambda c, f: c["openai"].completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True),
        lambda s: _text_of_chunks(list(s), lambda k: k.choices[0].text)),
    "anthropic": (lambda c, f: c["anthropic"].messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=M),
                  lambda r: r.content[0].text),
    "anthropic stream": (
        lambda c, f: c["anthropic"].messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=M, stream=True),
        lambda s: _text_of_chunks(list(s), lambda e: e.delta.text if e.type == "content_block_delta" else None)),
    "anthropic .stream()": (lambda c, f: _anthropic_stream_helper(c), lambda r: r.content[0].text),
    "anthropic async .stream()": (lambda c, f: _run(_async_anthropic_stream_helper(c)), lambda r: r.content[0].text),
    "anthropic beta": (lambda c, f: c["anthropic"].beta.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                                                        messages=M),
                       lambda r: r.content[0].text),
    "anthropic bedrock": (lambda c, f: c["abedrock"].messages.create(
        model="global.anthropic.claude-sonnet-4-5-20250929-v1:0", max_tokens=50, messages=M),
        lambda r: r.content[0].text),
    "anthropic bedrock stream": (lambda c, f: c["abedrock"].messages.create(
        model="global.anthropic.claude-sonnet-4-5-20250929-v1:0", max_tokens=50, messages=M, stream=True),
        lambda s: _text_of_chunks(list(s), lambda e: e.delta.text if e.type == "content_block_delta" else None)),
    "anthropic vertex": (lambda c, f: c["avertex"].messages.create(model="claude-sonnet-4-5@20250929", max_tokens=50,
                                                                   messages=M),
                         lambda r: r.content[0].text),
    "gemini": (lambda c, f: c["gemini"].models.generate_content(model="gemini-2.5-flash", contents="Hi"),
               lambda r: r.text),
    "gemini stream": (lambda c, f: c["gemini"].models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"),
                      lambda s: "".join(chunk.text or "" for chunk in s)),
    "gemini async": (lambda c, f: _run(c["gemini"].aio.models.generate_content(model="gemini-2.5-flash", contents="Hi")),
                     lambda r: r.text),
    "gemini async stream": (
        lambda c, f: _run(_collected(c["gemini"].aio.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                     contents="Hi"))),
        lambda s: "".join(chunk.text for chunk in s.items)),
    "bedrock converse": (lambda c, f: c["bedrock"].converse(modelId="amazon.nova-pro-v1:0", messages=CONVERSE),
                         lambda r: r["output"]["message"]["content"][0]["text"]),
    "bedrock converse_stream": (
        lambda c, f: c["bedrock"].converse_stream(modelId="amazon.nova-pro-v1:0", messages=CONVERSE),
        lambda r: _text_of_chunks(list(r["stream"]), lambda e: e.get("contentBlockDelta", {}).get("delta", {}).get("text"))),
    "mistral": (lambda c, f: c["mistral"].chat.complete(model="mistral-small-latest", messages=M),
                lambda r: r.choices[0].message.content),
    "mistral stream": (lambda c, f: c["mistral"].chat.stream(model="mistral-small-latest", messages=M),
                       lambda s: _text_of_chunks(list(s), lambda e: e.data.choices[0].delta.content)),
    "mistral async": (lambda c, f: _run(c["mistral"].chat.complete_async(model="mistral-small-latest", messages=M)),
                      lambda r: r.choices[0].message.content),
    "cohere": (lambda c, f: c["cohere"].chat(model="command-a-03-2025", messages=M),
               lambda r: r.message.content[0].text),
    "cohere stream": (lambda c, f: c["cohere"].chat_stream(model="command-a-03-2025", messages=M),
                      lambda s: _text_of_chunks(list(s), lambda e: e.delta.message.content.text
                                                if e.type == "content-delta" else None)),
    "cohere async": (lambda c, f: _run(c["acohere"].chat(model="command-a-03-2025", messages=M)),
                     lambda r: r.message.content[0].text),
    "groq": (lambda c, f: c["groq"].chat.completions.create(model="llama-3.3-70b-versatile", messages=M),
             lambda r: r.choices[0].message.content),
    "groq stream": (lambda c, f: c["groq"].chat.completions.create(model="llama-3.3-70b-versatile", messages=M,
                                                                   stream=True),
                    lambda s: _chat_deltas(list(s))),
    "groq async": (lambda c, f: _run(c["agroq"].chat.completions.create(model="llama-3.3-70b-versatile", messages=M)),
                   lambda r: r.choices[0].message.content),
    "ollama chat": (lambda c, f: c["ollama"].chat(model="llama3.2", messages=M), lambda r: r.message.content),
    "ollama generate": (lambda c, f: c["ollama"].generate(model="llama3.2", prompt="Hi"), lambda r: r.response),
    "ollama chat stream": (lambda c, f: c["ollama"].chat(model="llama3.2", messages=M, stream=True),
                           lambda s: "".join(part.message.content for part in s)),
    "ollama async": (lambda c, f: _run(c["aollama"].chat(model="llama3.2", messages=M)), lambda r: r.message.content),
    "litellm": (lambda c, f: _litellm(f), lambda r: r.choices[0].message.content),
    "litellm stream": (lambda c, f: _litellm(f, stream=True), lambda s: _chat_deltas(list(s))),
    "litellm async": (lambda c, f: _run(_alitellm(f)), lambda r: r.choices[0].message.content),
}


def _kind(value: Any) -> type:
    """The class the app sees: through our stream proxy, the SDK's own (as `isinstance` sees it)."""
    return value.stream_class if isinstance(value, Collected) else value.__class__


@pytest.mark.parametrize("case", sorted(CASES))
def test_respond_answers_in_the_sdks_own_type_and_sends_nothing(guarded, fake, span_exporter, case):
    call, text = CASES[case]
    clients = _clients(fake)
    if "parse" in case:  # structured output: the real model answers in the schema
        fake.set_model("gpt-4o", text='{"value": 1}')
    real = call(clients, fake)
    real_type = _kind(real)
    text(real)  # the real answer reads the same way
    sent = fake.request_count("")
    span_exporter.clear()

    guarded.set(Budget.create(0, name="out", on_exceed="respond"))
    refused = call(clients, fake)
    assert _kind(refused) is real_type
    if not isinstance(refused, Collected):
        assert type(refused) is real_type and isinstance(refused, real_type)
    assert text(refused) == REFUSAL
    assert fake.request_count("") == sent  # nothing reached the provider
    (span,) = our_spans(span_exporter)
    assert span.attributes["llm_cost.budget.outcome"] == "responded"
    assert span.attributes["llm_cost.budget.name"] == "out" and "error.type" not in span.attributes
    assert guarded.blocked["out"] == 1


def test_a_responded_answer_has_zero_usage_and_a_refused_id(guarded, fake):
    guarded.set(Budget.create(0, name="out", on_exceed="respond"))
    clients = _clients(fake)
    chat = clients["openai"].chat.completions.create(model="gpt-4o", messages=M)
    assert chat.id.startswith("llm_cost-refused-") and chat.choices[0].finish_reason == "stop"
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens) == (0, 0, 0)
    message = clients["anthropic"].messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=M)
    assert message.id.startswith("llm_cost-refused-") and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)
    gemini = clients["gemini"].models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert gemini.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert gemini.usage_metadata.total_token_count == 0
    converse = clients["bedrock"].converse(modelId="amazon.nova-pro-v1:0", messages=CONVERSE)
    assert converse["stopReason"] == "end_turn" and converse["usage"]["totalTokens"] == 0


def test_the_refusal_message_is_the_configured_template(guarded, fake, settings):
    from dataclasses import replace

    _state.set_settings(replace(settings, refusal_message="[{budget}] {spent}/{limit} per {window}: try later"))
    guarded.set(Budget.create("0.000001", name="tiny", window="day", on_exceed="respond"))
    reply = _clients(fake)["openai"].chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)
    assert reply.choices[0].message.content == "[tiny] 0/0.000001 per day: try later"


def test_operations_without_a_message_raise_even_under_respond(guarded, fake):
    guarded.set(Budget.create(0, name="out", on_exceed="respond"))
    with pytest.raises(openai.OpenAIError) as raised:
        _clients(fake)["openai"].embeddings.create(model="text-embedding-3-small", input="Hi")
    assert isinstance(raised.value, llm_cost.BudgetExceededError) and fake.request_count("") == 0


# --- raise: an error the app already handles ---

def _refused(guarded, fake, call: Callable[[dict], Any]) -> BaseException:
    guarded.set(Budget.create(0, name="out"))
    with pytest.raises(llm_cost.BudgetExceededError) as raised:
        call(_clients(fake))
    return raised.value


RAISERS = {
    "openai": (lambda c: c["openai"].chat.completions.create(model="gpt-4o", messages=M), "openai:OpenAIError",
               ("openai:RateLimitError", "openai:APITimeoutError", "openai:InternalServerError",
                "openai:APIStatusError", "openai:APIConnectionError")),
    "anthropic": (lambda c: c["anthropic"].messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=M),
                  "anthropic:AnthropicError", ("anthropic:RateLimitError", "anthropic:APITimeoutError",
                                               "anthropic:InternalServerError", "anthropic:APIStatusError")),
    "gemini": (lambda c: c["gemini"].models.generate_content(model="gemini-2.5-flash", contents="Hi"),
               "google.genai.errors:APIError", ("google.genai.errors:ServerError", "google.genai.errors:ClientError")),
    "bedrock": (lambda c: c["bedrock"].converse(modelId="amazon.nova-pro-v1:0", messages=CONVERSE),
                "botocore.exceptions:ClientError", ("botocore.exceptions:ConnectTimeoutError",
                                                    "botocore.exceptions:ReadTimeoutError")),
    "mistral": (lambda c: c["mistral"].chat.complete(model="mistral-small-latest", messages=M),
                "mistralai.client.errors:MistralError", ("mistralai.client.errors:SDKError",)),
    "cohere": (lambda c: c["cohere"].chat(model="command-a-03-2025", messages=M), "cohere.core.api_error:ApiError",
               ("cohere:TooManyRequestsError", "cohere:InternalServerError", "cohere:GatewayTimeoutError")),
    "groq": (lambda c: c["groq"].chat.completions.create(model="llama-3.3-70b-versatile", messages=M), "groq:GroqError",
             ("groq:RateLimitError", "groq:APITimeoutError", "groq:InternalServerError")),
    "ollama": (lambda c: c["ollama"].chat(model="llama3.2", messages=M), "ollama:ResponseError", ()),
    "litellm": (lambda c: __import__("litellm").completion(model="gpt-4o", messages=M,
                                                           api_base=c["openai"].base_url, api_key="k"),
                "openai:OpenAIError", ("litellm:RateLimitError", "litellm:Timeout", "litellm:InternalServerError",
                                       "litellm:ServiceUnavailableError")),
}


def _class(path: str) -> type:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("sdk", sorted(RAISERS))
def test_a_refusal_is_the_sdks_own_error_and_never_one_that_is_retried(guarded, fake, sdk):
    call, base, retried = RAISERS[sdk]
    error = _refused(guarded, fake, call)
    assert isinstance(error, _class(base)) and isinstance(error, RuntimeError)
    assert not any(isinstance(error, _class(path)) for path in retried)
    assert type(error).__name__ == "BudgetExceededError" and error.budget == "out" and "would be exceeded" in str(error)
    assert fake.request_count("") == 0
    try:  # the app's own handler, written for the SDK
        raise error
    except _class(base) as caught:
        assert caught is error


def test_botocore_handlers_read_the_error_code(guarded, fake):
    error = _refused(guarded, fake, RAISERS["bedrock"][0])
    assert error.response["Error"]["Code"] == "BudgetExceeded"


# --- fallback ---

def test_fallback_sends_the_first_cheaper_model_that_fits_and_records_both(guarded, fake, span_exporter):
    fake.set_model("gpt-4o-mini", input_tokens=20, output_tokens=100)
    fake.keep_request_bodies(True)
    # gpt-4o's worst case for 100 output tokens is ~$0.001; gpt-4o-mini's ~$0.00006
    guarded.set(Budget.create("0.0005", name="cheap", on_exceed="fallback"))
    reply = _clients(fake)["openai"].chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)
    assert reply.model == "gpt-4o-mini" and [b["body"]["model"] for b in fake.bodies] == ["gpt-4o-mini"]
    (span,) = our_spans(span_exporter)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["llm_cost.budget.fallback_from"] == "gpt-4o"
    assert span.attributes["llm_cost.budget.outcome"] == "fallback"
    expected = 20 * Decimal("0.15") / 10**6 + 100 * Decimal("0.60") / 10**6  # priced at the model sent
    assert Decimal(repr(span.attributes["gen_ai.usage.cost.amount"])) == expected
    assert guarded.status("cheap").spent == expected


def test_fallback_walks_the_chain_and_refuses_when_nothing_fits(guarded, fake, span_exporter):
    fake.keep_request_bodies(True)
    guarded.set(Budget.create("0.00005", name="tiny", on_exceed="fallback"))
    client = _clients(fake)["openai"]
    client.chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)  # gpt-4o-mini: ~$0.00006, too much
    assert [b["body"]["model"] for b in fake.bodies] == ["gpt-4.1-nano"]
    with pytest.raises(openai.OpenAIError):
        client.chat.completions.create(model="gpt-4o", messages=M, max_tokens=5_000)
    assert len(fake.bodies) == 1
    assert [s.attributes["llm_cost.budget.outcome"] for s in our_spans(span_exporter)] == ["fallback", "blocked"]


_FALLBACK_WORKER = r"""
import sys, threading
from decimal import Decimal
import openai
from opentelemetry.sdk.trace import TracerProvider
import otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), budget_store=sys.argv[1], budget_usd=sys.argv[3],
                   on_exceed="fallback", fallback_models="gpt-4o=gpt-4o-mini")
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
counts = {"gpt-4o": 0, "gpt-4o-mini": 0, "refused": 0}
lock = threading.Lock()

def work():
    for _ in range(6):
        try:
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}],
                                                   max_tokens=50)
            key = reply.model
        except llm_cost.BudgetExceededError:
            key = "refused"
        with lock:
            counts[key] += 1

threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(counts["gpt-4o"], counts["gpt-4o-mini"], counts["refused"], flush=True)
"""


def test_fallback_never_leaks_past_the_budget_under_4_processes_of_16_threads(tmp_path, fake):
    """384 calls race for a shared SQLite budget: the fallbacks are reserved as strictly as any call."""
    fake.set_model("gpt-4o", input_tokens=10, output_tokens=50)
    fake.set_model("gpt-4o-mini", input_tokens=10, output_tokens=50)
    limit = Decimal("0.02")
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    workers = [subprocess.Popen([sys.executable, "-c", _FALLBACK_WORKER, store, fake.openai_url, str(limit)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
               for _ in range(4)]
    totals = [0, 0, 0]
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0
        totals = [a + int(b) for a, b in zip(totals, out.split())]
    big, small, refused = totals
    assert big + small + refused == 384 and big > 0 and small > 0 and refused > 0
    spent = big * (10 * Decimal("2.5") + 50 * Decimal(10)) / 10**6 + small * (10 * Decimal("0.15") + 50 * Decimal("0.6")) / 10**6
    assert spent <= limit  # exact: the fake reports the same usage the reservations bounded
    assert fake.request_count("chat/completions") == big + small
    from otel_llm_cost.budget.stores import SqliteStore

    assert SqliteStore(tmp_path / "budgets.db").usage("global", "", "total")[0] == spent


# --- status for people and apps ---

@pytest.mark.parametrize(("spent", "level", "line"), [
    ("0.41", "ok", "[Cost: $0.41 of $1.00 (41%) OK]"),
    ("0.5", "warn", "[Cost: $0.50 of $1.00 (50%) WARN]"),
    ("0.95", "high", "[Cost: $0.95 of $1.00 (95%) HIGH]"),
    ("1", "exhausted", "[Cost: $1.00 of $1.00 (100%) EXHAUSTED]"),
])
def test_budget_status_has_a_level_and_a_one_line_form(spent, level, line):
    from otel_llm_cost.budget import BudgetStatus

    status = BudgetStatus("b", "global", "total", Decimal(1), Decimal(spent), Decimal(0))
    assert status.level == level and str(status) == line


def test_thresholds_fire_once_each_with_a_span_event_on_the_crossing_call(guarded, fake, span_exporter):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)  # $0.0035 a call
    guarded.set(Budget.create("0.01", name="b", on_exceed="warn"))
    fired: list[tuple[str, float, str]] = []
    guarded.thresholds.subscribe(lambda status, at: fired.append((status.name, at, status.level)), at=(0.5, 0.8, 1.0))
    client = _clients(fake)["openai"]
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)
    guarded.thresholds.drain()
    # spend after each call: 0.0035, 0.007 (>= 50%), 0.0105 (>= 80% and 100%), 0.014, 0.0175
    assert fired == [("b", 0.5, "warn"), ("b", 0.8, "exhausted"), ("b", 1.0, "exhausted")]
    events = [[(e.name, e.attributes["llm_cost.budget.threshold"]) for e in s.events] for s in our_spans(span_exporter)]
    assert events == [[], [("llm_cost.budget.threshold", 0.5)],
                      [("llm_cost.budget.threshold", 0.8), ("llm_cost.budget.threshold", 1.0)], [], []]


_THRESHOLD_WORKER = r"""
import sys
import openai
from opentelemetry.sdk.trace import TracerProvider
import otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), budget_store=sys.argv[1], budget_usd="0.02", on_exceed="warn")
fired = []
llm_cost.on_budget_threshold(lambda status, at: fired.append(at), at=(0.5, 1.0))
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
for _ in range(4):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=100)
import time; time.sleep(0.5)
print(" ".join(str(at) for at in fired) or "-", flush=True)
"""


def test_thresholds_fire_once_across_processes_sharing_a_store(tmp_path, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    workers = [subprocess.Popen([sys.executable, "-c", _THRESHOLD_WORKER, store, fake.openai_url],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
               for _ in range(3)]
    fired = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        fired += [float(at) for at in out.split() if at != "-"]
    assert sorted(fired) == [0.5, 1.0]  # 12 calls of $0.0035 pass both thresholds; each fires in one process only


def test_responded_calls_count_as_blocked_in_metrics_totals_and_the_ledger(tmp_path, settings, tracer_provider, fake):
    """Downstream stays true: a responded call is `blocked` everywhere; a fallback is `ok` at the model sent."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_llm_cost import _setup
    from otel_llm_cost.instrumentation import uninstrument
    from otel_llm_cost.ledger.report import export_rows

    reader = InMemoryMetricReader()
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    _setup.reset_for_tests()
    llm_cost.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]),
                       ledger=url, fallback_models={"gpt-4o": "gpt-4o-mini"})
    try:
        fake.set_model("gpt-4o-mini", input_tokens=20, output_tokens=100)
        client = openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)
        llm_cost.set_budget(0, scope="tag", tag="team", on_exceed="respond", name="answering")
        llm_cost.set_budget("0.0005", scope="tag", tag="squad", on_exceed="fallback", name="cheaper")
        with llm_cost.session("s-respond", team="a"):
            client.chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)
        with llm_cost.session("s-fallback", squad="b"):
            client.chat.completions.create(model="gpt-4o", messages=M, max_tokens=100)
        rows = {row.session_id: row for row in export_rows(ledger=_setup.runtime().ledger)}
        assert (rows["s-respond"].outcome, rows["s-respond"].cost_usd) == ("blocked", Decimal(0))
        assert (rows["s-fallback"].outcome, rows["s-fallback"].request_model) == ("ok", "gpt-4o-mini")
        assert rows["s-fallback"].cost_usd == 20 * Decimal("0.15") / 10**6 + 100 * Decimal("0.60") / 10**6
        points = {(m.name, tuple(sorted(p.attributes.items()))): p.value
                  for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                  for m in sm.metrics if m.name in ("llm_cost.calls", "llm_cost.budget.blocked")
                  for p in m.data.data_points}
        outcomes = {dict(k[1]).get("llm_cost.outcome"): v for k, v in points.items() if k[0] == "llm_cost.calls"}
        assert outcomes == {"blocked": 1, "ok": 1}
        assert sum(v for k, v in points.items() if k[0] == "llm_cost.budget.blocked") == 1
        assert llm_cost.session_usage("s-fallback").calls == 1 and fake.request_count("") == 1
    finally:
        uninstrument()
        _setup.reset_for_tests()


def test_respond_to_a_call_that_asks_for_a_schema_is_the_providers_own_refusal_never_a_validation_error(
        guarded, fake):
    """`messages.parse(output_format=...)` and `.stream(output_format=...)` validate every text block
    against the schema: the refusal is the API's own, `stop_reason: "refusal"` with no text; OpenAI's
    `parse()` gets `message.refusal` with `parsed` None."""
    import pydantic

    class Answer(pydantic.BaseModel):
        value: int

    clients = _clients(fake)
    guarded.set(Budget.create(0, name="out", on_exceed="respond"))
    anthropic_client = clients["anthropic"]
    parsed = anthropic_client.messages.parse(model="claude-haiku-4-5", max_tokens=100, messages=M,
                                             output_format=Answer)
    assert (parsed.stop_reason, parsed.content, parsed.parsed_output) == ("refusal", [], None)
    with anthropic_client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=M,
                                          output_format=Answer) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.content) == ("refusal", [])
    plain = anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=M)
    assert plain.stop_reason == "end_turn" and plain.content[0].text == REFUSAL  # no schema: the message

    completion = clients["openai"].chat.completions.parse(model="gpt-4o", messages=M, response_format=Answer)
    message = completion.choices[0].message
    assert (message.refusal, message.parsed) == (REFUSAL, None)
    assert fake.request_count("") == 0 and guarded.blocked["out"] == 4


def test_an_sdk_without_a_refusal_shape_raises_for_a_schema_call_under_respond(guarded, fake):
    """Mistral's messages have no refusal field: `chat.parse()` under `respond` raises as `raise` does
    (its parser would drop the text and give `parsed=None` with nothing said); plain chat still answers."""
    import pydantic
    from mistralai.client import Mistral
    from mistralai.client.errors import MistralError

    class Answer(pydantic.BaseModel):
        value: int

    client = Mistral(api_key="k", server_url=fake.url)
    guarded.set(Budget.create(0, name="out", on_exceed="respond"))
    with pytest.raises(MistralError) as refused:
        client.chat.parse(response_format=Answer, model="mistral-large-latest", messages=M)
    assert isinstance(refused.value, llm_cost.BudgetExceededError)
    plain = client.chat.complete(model="mistral-large-latest", messages=M)
    assert plain.choices[0].message.content == REFUSAL and fake.request_count("") == 0

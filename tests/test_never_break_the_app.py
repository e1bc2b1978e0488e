"""Whatever happens inside otel-llm-cost, the app's call behaves exactly as it would uninstrumented."""

from __future__ import annotations

import logging

import openai
import pytest
import wrapt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.testing.fake import Fault

MESSAGES = [{"role": "user", "content": "my secret prompt about project nightingale"}]


@pytest.fixture
def sdk_spy(tracer_provider, settings):
    """Records what the real SDK method returned or raised, underneath our wrapper."""
    from openai.resources.chat.completions.completions import Completions

    seen: dict[str, object] = {}

    def spy(wrapped, instance, args, kwargs):
        try:
            seen["result"] = wrapped(*args, **kwargs)
        except BaseException as error:
            seen["error"] = error
            raise
        return seen["result"]

    wrapt.wrap_function_wrapper(Completions, "create", spy)
    instrument(tracer_provider=tracer_provider)
    yield seen
    uninstrument()
    Completions.create = Completions.create.__wrapped__


def test_return_value_is_the_very_object_the_sdk_returned(sdk_spy, openai_client):
    response = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response is sdk_spy["result"]


def test_sdk_exception_is_the_very_object_the_sdk_raised(sdk_spy, openai_client, fake):
    fake.inject(Fault(status=500))
    with pytest.raises(openai.InternalServerError) as excinfo:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert excinfo.value is sdk_spy["error"]


def test_malformed_json_raises_what_the_sdk_raises(instrumented, openai_client, fake):
    fake.inject(Fault(malformed=True))
    uninstrumented_error = None
    try:
        uninstrument()
        fake.inject(Fault(malformed=True))
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    except Exception as error:  # noqa: BLE001 - whatever the SDK raises
        uninstrumented_error = type(error)
    finally:
        instrument(tracer_provider=instrumented)
    with pytest.raises(Exception) as excinfo:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(excinfo.value) is uninstrumented_error


@pytest.mark.parametrize("target", ["usage", "pricing"])
def test_fault_in_our_code_is_logged_once_and_swallowed(instrumented, openai_client, span_exporter, monkeypatch,
                                                        caplog, target):
    import otel_llm_cost.instrumentation.openai as openai_module
    from otel_llm_cost.pricing import PriceBook

    def explode(*args, **kwargs):
        raise RuntimeError(f"injected {target} fault")

    if target == "usage":
        monkeypatch.setattr(openai_module, "usage_from_openai_chat", explode)
    else:
        monkeypatch.setattr(PriceBook, "compute_cost", explode)
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        responses = [openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES) for _ in range(3)]
    assert all(r.choices[0].message.content == "Hello from the fake provider." for r in responses)
    errors = [r for r in caplog.records if "injected" in str(r.exc_info[1] if r.exc_info else "")]
    assert len(errors) == 1
    assert len(span_exporter.get_finished_spans()) == 3


def test_no_prompt_completion_or_api_key_in_spans_or_logs(instrumented, openai_client, span_exporter, caplog):
    with caplog.at_level(logging.DEBUG):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    values = " ".join(str(v) for s in span_exporter.get_finished_spans() for v in s.attributes.values())
    text = values + caplog.text
    for secret in ("nightingale", "Hello from the fake provider", "sk-test-not-a-real-key"):
        assert secret not in text


_counts = st.one_of(st.none(), st.integers(-5, 10**7), st.text(max_size=4), st.floats(), st.booleans(),
                    st.lists(st.integers(), max_size=2))
_usage = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.fixed_dictionaries({}, optional={
        "prompt_tokens": _counts, "completion_tokens": _counts, "total_tokens": _counts,
        "prompt_tokens_details": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"cached_tokens": _counts})),
        "completion_tokens_details": st.one_of(st.none(), st.text(max_size=3),
                                               st.fixed_dictionaries({}, optional={"reasoning_tokens": _counts})),
    }),
)
_responses = st.fixed_dictionaries(
    {"usage": _usage},
    optional={
        "id": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "model": st.one_of(st.sampled_from(["gpt-4o", "nope"]), st.integers(), st.none()),
        "service_tier": st.one_of(st.sampled_from(["flex", "priority", "bogus"]), st.integers(), st.none()),
        "choices": st.one_of(st.none(), st.just([]), st.lists(st.fixed_dictionaries(
            {}, optional={"finish_reason": st.one_of(st.text(max_size=5), st.integers())}), max_size=2)),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_responses)
def test_malformed_response_shapes_never_break_the_call(instrumented, openai_client, span_exporter, fake, body):
    fake.inject(Fault(body=body))
    response = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.id == body.get("id")  # the SDK's object, as parsed by the SDK
    span = span_exporter.get_finished_spans()[-1]
    assert span.end_time is not None
    cost = span.attributes.get("gen_ai.usage.cost.amount")
    assert cost is None or cost >= 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usage=_usage)
def test_malformed_stream_usage_never_breaks_the_stream(instrumented, openai_client, fake, usage):
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
             "choices": [], "usage": usage}
    fake.inject(Fault(body=chunk))  # a JSON body where SSE was expected: the SDK decides what happens
    try:
        list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    except Exception as error:  # noqa: BLE001
        assert type(error).__module__.startswith("openai"), f"{type(error)} leaked from our code"


def _same_behaviour_as_uninstrumented(settings_value, call) -> None:
    """The call with us switched off, then on: both succeed, or both raise the same SDK error type."""
    from otel_llm_cost import _state

    def behaviour() -> object:
        try:
            call()
            return "ok"
        except Exception as error:  # noqa: BLE001
            return type(error)

    _state.set_settings(settings_value.with_overrides(enabled=False))
    try:
        expected = behaviour()
    finally:
        _state.set_settings(settings_value)
    assert behaviour() == expected


_gemini_bodies = st.fixed_dictionaries(
    {"usageMetadata": st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries({}, optional={
        "promptTokenCount": _counts, "candidatesTokenCount": _counts, "thoughtsTokenCount": _counts,
        "cachedContentTokenCount": _counts, "toolUsePromptTokenCount": _counts}))},
    optional={
        "modelVersion": st.one_of(st.sampled_from(["gemini-2.5-flash", "nope"]), st.integers(), st.none()),
        "candidates": st.one_of(st.none(), st.lists(st.fixed_dictionaries({}, optional={
            "finishReason": st.one_of(st.sampled_from(["STOP", "MAX_TOKENS", "weird"]), st.integers())}),
            max_size=2)),
    },
)


@pytest.mark.filterwarnings("ignore:.* is not a valid FinishReason")  # the SDK's own warning
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_gemini_bodies)
def test_malformed_gemini_responses_behave_as_uninstrumented(instrumented, settings, fake, body):
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))

    def call() -> None:
        fake.inject(Fault(body=body))
        client.models.generate_content(model="gemini-2.5-flash", contents="Hi")

    _same_behaviour_as_uninstrumented(settings, call)


_bedrock_bodies = st.fixed_dictionaries(
    {"usage": st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries({}, optional={
        "inputTokens": _counts, "outputTokens": _counts, "cacheReadInputTokens": _counts,
        "cacheWriteInputTokens": _counts,
        "cacheDetails": st.one_of(st.none(), st.text(max_size=2), st.lists(st.fixed_dictionaries({}, optional={
            "ttl": st.sampled_from(["5m", "1h", "2d"]), "inputTokens": _counts}), max_size=2))}))},
    optional={
        "stopReason": st.one_of(st.sampled_from(["end_turn", "weird"]), st.integers(), st.none()),
        "serviceTier": st.one_of(st.none(), st.integers(), st.fixed_dictionaries({"type": st.one_of(
            st.sampled_from(["flex", "priority", "bogus"]), st.integers())})),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bedrock_bodies)
def test_malformed_bedrock_responses_behave_as_uninstrumented(instrumented, settings, fake, body):
    import boto3
    from botocore.config import Config

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                          aws_access_key_id="offline", aws_secret_access_key="offline",
                          config=Config(retries={"total_max_attempts": 1}))

    def call() -> None:
        fake.inject(Fault(body=body))
        client.converse(modelId="amazon.nova-pro-v1:0", messages=[{"role": "user", "content": [{"text": "Hi"}]}])

    _same_behaviour_as_uninstrumented(settings, call)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_responses)
def test_malformed_mistral_responses_behave_as_uninstrumented(instrumented, settings, fake, body):
    from mistralai.client import Mistral

    client = Mistral(api_key="offline-key", server_url=fake.url)

    def call() -> None:
        fake.inject(Fault(body=body))
        client.chat.complete(model="mistral-small-2603", messages=[{"role": "user", "content": "Hi"}])

    _same_behaviour_as_uninstrumented(settings, call)


_cohere_bodies = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=5), st.none()), "finish_reason": st.sampled_from(["COMPLETE", "MAX_TOKENS"]),
     "message": st.just({"role": "assistant", "content": [{"type": "text", "text": "hi"}]})},
    optional={"usage": st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries({}, optional={
        "billed_units": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "input_tokens": _counts, "output_tokens": _counts})),
        "tokens": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"input_tokens": _counts}))}))},
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_cohere_bodies)
def test_malformed_cohere_responses_behave_as_uninstrumented(instrumented, settings, fake, body):
    import cohere

    client = cohere.ClientV2(api_key="offline-key", base_url=fake.url)

    def call() -> None:
        fake.inject(Fault(body=body))
        client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}],
                    request_options={"max_retries": 0})

    _same_behaviour_as_uninstrumented(settings, call)

"""Other GenAI instrumentations in the same process: our span still carries the cost, and the spans of
one call are paired parent-to-child so totals can count the call once (see the processor)."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest
from conftest import our_spans

from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.instrumentation._call import SCOPE_NAME

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def _restore_sdk_methods():
    """OpenLLMetry's uninstrument() does not restore openai 3.x methods; put them back for later tests."""
    from otel_llm_cost.instrumentation._instrumentor import _resolve
    from otel_llm_cost.instrumentation.anthropic import AnthropicInstrumentor
    from otel_llm_cost.instrumentation.openai import OpenAIInstrumentor

    methods = [(_resolve(t), t.name.rsplit(".", 1)[-1]) for t in (*OpenAIInstrumentor.targets,
                                                                  *AnthropicInstrumentor.targets)]
    before = [(owner, name, owner.__dict__[name]) for owner, name in methods]
    yield
    for owner, name, original in before:
        setattr(owner, name, original)


def _pair(spans):
    ours = [s for s in spans if s.instrumentation_scope.name == SCOPE_NAME]
    foreign = [s for s in spans if s.instrumentation_scope.name != SCOPE_NAME]
    assert len(ours) == 1 and len(foreign) == 1, [(s.instrumentation_scope.name, s.name) for s in spans]
    return ours[0], foreign[0]


def _linked(a, b) -> bool:
    return (a.parent is not None and a.parent.span_id == b.context.span_id) or (
        b.parent is not None and b.parent.span_id == a.context.span_id
    )


def test_anthropic_native_spans_nest_under_ours(tracer_provider, settings, span_exporter, fake):
    fake.set_model("claude-haiku-4-5", input_tokens=1_000, output_tokens=100)
    client = anthropic.Anthropic(base_url=fake.anthropic_url, api_key="k", max_retries=0,
                                 open_telemetry={"tracer_provider": tracer_provider})
    instrument(tracer_provider=tracer_provider)
    try:
        client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=MESSAGES)
        list(client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=MESSAGES, stream=True))
    finally:
        uninstrument()
    spans = span_exporter.get_finished_spans()
    native = [s for s in spans if s.instrumentation_scope.name == "com.anthropic.sdk.python"]
    ours = our_spans(span_exporter)
    assert len(native) == 2 and len(ours) == 2
    for span in native:
        parent = next(o for o in ours if o.context.span_id == span.parent.span_id)
        # Claude Haiku 4.5: $1 in / $5 out per 1M (https://docs.anthropic.com/en/docs/about-claude/pricing, 2025-10)
        assert Decimal(repr(parent.attributes["gen_ai.usage.cost.amount"])) == Decimal("0.0015")
        assert "gen_ai.usage.cost.amount" not in span.attributes


def _official_genai_openai():
    module = pytest.importorskip("opentelemetry.instrumentation.genai.openai")
    return module.OpenAIInstrumentor()


def _openllmetry_openai():
    module = pytest.importorskip("opentelemetry.instrumentation.openai")
    return module.OpenAIInstrumentor()


@pytest.mark.parametrize("make_other", [_official_genai_openai, _openllmetry_openai],
                         ids=["official-genai-openai", "openllmetry-openai"])
@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-inner", "ours-outer"])
def test_other_openai_instrumentations(tracer_provider, settings, span_exporter, openai_client, fake, make_other,
                                       ours_first):
    fake.set_model("gpt-4o-mini", input_tokens=10_000, output_tokens=1_000)
    other = make_other()
    if ours_first:
        instrument(tracer_provider=tracer_provider)
        other.instrument(tracer_provider=tracer_provider)
    else:
        other.instrument(tracer_provider=tracer_provider)
        instrument(tracer_provider=tracer_provider)
    try:
        response = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:  # undo in reverse order, as an app would
        if ours_first:
            other.uninstrument()
            uninstrument()
        else:
            uninstrument()
            other.uninstrument()
    assert response.choices[0].message.content == "Hello from the fake provider."
    ours, foreign = _pair(span_exporter.get_finished_spans())
    assert _linked(ours, foreign)
    # gpt-4o-mini: $0.15 / $0.60 per 1M -> 0.0015 + 0.0006
    assert Decimal(repr(ours.attributes["gen_ai.usage.cost.amount"])) == Decimal("0.0021")


def test_uninstrument_under_another_instrumentation_leaves_its_wrapper_working(tracer_provider, settings,
                                                                               span_exporter, openai_client):
    other = _official_genai_openai()
    instrument(tracer_provider=tracer_provider)
    other.instrument(tracer_provider=tracer_provider)
    uninstrument()  # ours is not on top: it must not tear the other wrapper out
    try:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert our_spans(span_exporter) == []
        assert len(span_exporter.get_finished_spans()) == 1
    finally:
        other.uninstrument()


def _official_google_genai():
    module = pytest.importorskip("opentelemetry.instrumentation.google_genai")
    return module.GoogleGenAiSdkInstrumentor()


def _official_botocore():
    module = pytest.importorskip("opentelemetry.instrumentation.botocore")
    return module.BotocoreInstrumentor()


def _gemini_calls(fake) -> int:
    """A plain call, a stream, and a call with automatic function calling (two requests)."""
    from google import genai
    from google.genai import types

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    client = genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    client.models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris?",
                                   config=types.GenerateContentConfig(tools=[get_weather]))
    return 4


def _bedrock_calls(fake) -> int:
    import boto3

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                          aws_access_key_id="offline", aws_secret_access_key="offline")
    messages = [{"role": "user", "content": [{"text": "Hi"}]}]
    client.converse(modelId="amazon.nova-pro-v1:0", messages=messages)
    list(client.converse_stream(modelId="amazon.nova-pro-v1:0", messages=messages)["stream"])
    return 2


@pytest.mark.parametrize(("make_other", "calls", "model"), [
    (_official_google_genai, _gemini_calls, "gemini-2.5-flash"),
    (_official_botocore, _bedrock_calls, "amazon.nova-pro-v1:0"),
], ids=["official-google-genai", "official-botocore"])
@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-inner", "ours-outer"])
def test_gemini_and_bedrock_next_to_their_official_instrumentations(tracer_provider, settings, span_exporter, fake,
                                                                    make_other, calls, model, ours_first):
    """Whichever wraps outside, every request is priced on our span and counted once in the totals."""
    from otel_llm_cost.context import session
    from otel_llm_cost.processor import CostSpanProcessor

    processor = CostSpanProcessor()
    tracer_provider.add_span_processor(processor)
    fake.set_model(model, input_tokens=10_000, output_tokens=1_000)
    other = make_other()
    # The official google-genai instrumentation declares google-genai < 3, but its wrappers fit 3.x.
    steps = [(lambda: instrument(tracer_provider=tracer_provider), uninstrument),
             (lambda: other.instrument(tracer_provider=tracer_provider, skip_dep_check=True), other.uninstrument)]
    steps = steps if ours_first else steps[::-1]
    for do, _ in steps:
        do()
    try:
        with session("coexisting"):
            requests = calls(fake)
    finally:  # undo in reverse order, as an app would
        for _, undo in reversed(steps):
            undo()
    ours = our_spans(span_exporter)
    foreign = [s for s in span_exporter.get_finished_spans() if s.instrumentation_scope.name != SCOPE_NAME]
    assert len(ours) == requests and foreign, [(s.instrumentation_scope.name, s.name) for s in foreign]
    costs = [Decimal(repr(s.attributes["gen_ai.usage.cost.amount"])) for s in ours]
    summary = processor.totals.session("coexisting")
    assert summary.calls == requests
    assert summary.cost == sum(costs)

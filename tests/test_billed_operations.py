"""Billed operations that were underpriced: OpenAI web-search tool calls, Anthropic server-side
compaction, Anthropic streams whose message_delta leaves fields out, and Vertex Flex PayGo.

Prices (read 2026-11-25): gpt-4o $2.50 / $10 per 1M tokens, web search $10 per 1k calls
(openai.com/api/pricing); Claude Sonnet 4.5 $3 / $15 (anthropic.com/pricing); Gemini 2.5 Flash $0.30 /
$2.50, Flex PayGo half (cloud.google.com/vertex-ai/generative-ai/pricing).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import cost_of, only_span, our_spans

MESSAGES = [{"role": "user", "content": "Hi"}]
GPT_4O = Decimal("0.0025") + Decimal("0.001")  # 1,000 in + 100 out


@pytest.mark.parametrize("stream", [False, True])
def test_responses_web_search_calls_are_billed_per_call(instrumented, openai_client, fake, span_exporter, stream):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100, web_searches=2)
    kwargs = {"model": "gpt-4o", "input": "What happened today?", "tools": [{"type": "web_search"}]}
    if stream:
        for _ in openai_client.responses.create(stream=True, **kwargs):
            pass
    else:
        openai_client.responses.create(**kwargs)
    assert cost_of(only_span(span_exporter)) == GPT_4O + 2 * Decimal("0.01")


@pytest.mark.parametrize("stream", [False, True])
def test_a_compacting_call_is_priced_for_every_step(instrumented, anthropic_client, fake, span_exporter, stream):
    """Before: only the last step was priced ($0.018 here instead of $0.228)."""
    fake.set_model("claude-sonnet-4-5", compaction_steps=[(60_000, 2_000), (5_000, 200)])
    if stream:
        with anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=2_000, messages=MESSAGES) as s:
            s.get_final_message()
    else:
        anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=2_000, messages=MESSAGES)
    span = only_span(span_exporter)
    assert cost_of(span) == 65_000 * Decimal(3) / 10**6 + 2_200 * Decimal(15) / 10**6
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (65_000,
                                                                                                           2_200)


def test_a_message_delta_without_input_counts_keeps_message_starts(instrumented, anthropic_client, fake,
                                                                   span_exporter):
    fake.set_model("claude-sonnet-4-5", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=1_000,
                   output_only_delta=True)
    for _ in anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=1_000, messages=MESSAGES,
                                              stream=True):
        pass
    span = only_span(span_exporter)
    # 6,000 uncached x $3 + 4,000 cache reads x $0.30 + 1,000 out x $15
    assert cost_of(span) == Decimal("0.018") + Decimal("0.0012") + Decimal("0.015")
    assert "llm_cost.usage.incomplete" not in span.attributes


def test_vertex_flex_paygo_is_billed_at_half_the_standard_rate(instrumented, fake, span_exporter):
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))
    fake.set_model("gemini-2.5-flash", input_tokens=100_000, output_tokens=10_000)
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    fake.set_model("gemini-2.5-flash", input_tokens=100_000, output_tokens=10_000, traffic_type="ON_DEMAND_FLEX")
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    standard, flex = our_spans(span_exporter)
    assert cost_of(standard) == Decimal("0.03") + Decimal("0.025")
    assert cost_of(flex) == cost_of(standard) / 2
    assert flex.attributes["llm_cost.response.service_tier"] == "flex"


INSTRUCT = 1_000 * Decimal("1.5") / 10**6 + 100 * Decimal(2) / 10**6  # gpt-3.5-turbo-instruct $1.50 / $2.00


def test_legacy_completions_plain_streamed_and_async(tracer_provider, settings, openai_client, async_openai_client,
                                                     fake, span_exporter):
    import asyncio

    from otel_llm_cost.instrumentation import instrument, uninstrument

    fake.set_model("gpt-3.5-turbo-instruct", input_tokens=1_000, output_tokens=100)
    bare = [c.model_dump_json(exclude={"id", "created"}) for c in openai_client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True)]
    instrument(tracer_provider=tracer_provider)
    try:
        assert openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi").usage.total_tokens
        chunks = [c.model_dump_json(exclude={"id", "created"}) for c in openai_client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True)]
        asyncio.run(async_openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi"))
    finally:
        uninstrument()
    assert chunks == bare  # the usage chunk we asked for is hidden
    spans = our_spans(span_exporter)
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["text_completion"] * 3
    assert [cost_of(s) for s in spans] == [INSTRUCT] * 3


def test_mistral_and_cohere_embeddings_are_priced_sync_and_async(instrumented, fake, span_exporter):
    """mistral-embed $0.10 per 1M input tokens (mistral.ai/pricing); Cohere Embed v4 $0.12 per 1M text
    tokens, billed from `meta.billed_units` (cohere.com/pricing); both read 2026-11-25."""
    import asyncio

    import cohere
    from mistralai.client import Mistral

    fake.set_model("mistral-embed", input_tokens=500_000)
    fake.set_model("embed-v4.0", input_tokens=250_000)
    mistral = Mistral(api_key="k", server_url=fake.url)
    mistral.embeddings.create(model="mistral-embed", inputs=["a", "b"])
    co = cohere.ClientV2(api_key="k", base_url=fake.url)
    co.embed(model="embed-v4.0", texts=["a"], input_type="search_document", embedding_types=["float"])

    async def both() -> None:
        await mistral.embeddings.create_async(model="mistral-embed", inputs=["a"])
        await cohere.AsyncClientV2(api_key="k", base_url=fake.url).embed(
            model="embed-v4.0", texts=["a"], input_type="search_document", embedding_types=["float"])

    asyncio.run(both())
    spans = our_spans(span_exporter)
    assert [(s.attributes["gen_ai.provider.name"], s.attributes["gen_ai.operation.name"]) for s in spans] == [
        ("mistral_ai", "embeddings"), ("cohere", "embeddings")] * 2
    assert [cost_of(s) for s in spans] == [Decimal("0.05"), Decimal("0.03")] * 2


def test_openai_batch_results_are_priced_at_the_batch_rate_once(instrumented, openai_client, fake, span_exporter):
    """gpt-4o through the Batch API: half of $2.50 / $10 (openai.com/api/pricing, 2026-11-25)."""
    output_file = fake.add_openai_batch("batch_abc", [("r1", "gpt-4o", 1_000, 100, 200),
                                                       ("r2", "gpt-4o", 2_000, 200, 200),
                                                       ("r3", "gpt-4o", 500, 0, 400)])
    assert openai_client.batches.retrieve("batch_abc").output_file_id == output_file
    first = openai_client.files.content(output_file)
    assert first.content.count(b"custom_id") == 3  # the app's bytes, untouched
    openai_client.files.content(output_file)  # read again: counted once
    spans = our_spans(span_exporter)
    results = [s for s in spans if s.name == "chat gpt-4o"]
    assert [cost_of(s) for s in results] == [GPT_4O / 2, GPT_4O]  # r3 answered 400: not billed
    assert all(s.attributes["llm_cost.batch"] is True for s in results)
    batch_span = next(s for s in span_exporter.get_finished_spans() if s.name == "batch_results batch_abc")
    assert {s.parent.span_id for s in results} == {batch_span.context.span_id}


def test_anthropic_message_batch_results_priced_as_read_sync_and_async(instrumented, anthropic_client,
                                                                       async_anthropic_client, fake, span_exporter):
    """Claude Sonnet 4.5 in Message Batches: half of $3 / $15 (anthropic.com/pricing, 2026-11-25)."""
    import asyncio

    fake.add_anthropic_batch("msgbatch_1", [("a", "claude-sonnet-4-5", 10_000, 1_000, True),
                                            ("b", "claude-sonnet-4-5", 10_000, 1_000, False)])
    fake.add_anthropic_batch("msgbatch_2", [("c", "claude-sonnet-4-5", 10_000, 1_000, True)])
    assert [r.custom_id for r in anthropic_client.messages.batches.results("msgbatch_1")] == ["a", "b"]

    async def read() -> list[str]:
        return [r.custom_id async for r in await async_anthropic_client.messages.batches.results("msgbatch_2")]

    assert asyncio.run(read()) == ["c"]
    results = [s for s in our_spans(span_exporter) if s.name == "chat claude-sonnet-4-5"]
    assert [cost_of(s) for s in results] == [Decimal("0.0225")] * 2  # ($0.03 + $0.015) / 2; 'b' errored
    assert {s.name for s in span_exporter.get_finished_spans()} >= {"batch_results msgbatch_1",
                                                                    "batch_results msgbatch_2"}


def test_batch_results_reach_the_budget_the_ledger_and_their_span(tmp_path, settings, tracer_provider, fake,
                                                                  span_exporter):
    import openai

    import otel_llm_cost as llm_cost
    from otel_llm_cost import _setup
    from otel_llm_cost.instrumentation import uninstrument

    _setup.reset_for_tests()
    try:
        llm_cost.configure(tracer_provider=tracer_provider, ledger=f"sqlite:///{tmp_path / 'u.db'}")
        llm_cost.set_budget(1, name="month")
        fake.add_openai_batch("batch_l", [("r1", "gpt-4o", 1_000, 100, 200)])
        client = openai.OpenAI(base_url=fake.openai_url, api_key="k")
        client.files.content(client.batches.retrieve("batch_l").output_file_id)
        assert llm_cost.budget_remaining("month").spent == GPT_4O / 2
        rows = list(llm_cost.usage_report(by="model").groups)
        assert rows[0][1].cost == GPT_4O / 2
        from otel_llm_cost.ledger.report import export_rows

        assert [(r.batch, r.cost_usd) for r in export_rows()] == [(True, GPT_4O / 2)]
        batch_span = next(s for s in span_exporter.get_finished_spans() if s.name == "batch_results batch_l")
        assert Decimal(repr(batch_span.attributes["llm_cost.rollup.cost"])) == GPT_4O / 2  # the sum, on its span
    finally:
        uninstrument()
        _setup.reset_for_tests()


def test_creating_a_batch_that_would_pass_a_budget_is_refused_before_sending(guard, openai_client, anthropic_client,
                                                                            fake, tmp_path):
    """The worst case of every request, at the batch rate: 100 gpt-4o requests of up to 1,000 output
    tokens cost at most about 100 x (1,000 x $5 / 1M) = $0.50 in a batch."""
    import json

    import otel_llm_cost as llm_cost
    from otel_llm_cost.budget import Budget

    guard.set(Budget.create("0.25", name="nightly"))
    lines = [json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "gpt-4o", "max_tokens": 1_000,
                                  "messages": [{"role": "user", "content": "Summarise."}]}}) for i in range(100)]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines))
    uploaded = openai_client.files.create(file=path, purpose="batch")
    with pytest.raises(llm_cost.BudgetExceededError, match="'nightly'"):
        openai_client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
    assert fake.request_count("/v1/batches") == 0
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(lines[:10]))
    openai_client.batches.create(input_file_id=openai_client.files.create(file=small, purpose="batch").id,
                                 endpoint="/v1/chat/completions", completion_window="24h")
    assert fake.request_count("/v1/batches") == 1

    requests = [{"custom_id": f"a{i}", "params": {"model": "claude-sonnet-4-5", "max_tokens": 4_000,
                                                  "messages": [{"role": "user", "content": "Hi"}]}}
                for i in range(20)]  # 20 x 4,000 x $7.50 / 1M = $0.60 at most
    with pytest.raises(llm_cost.BudgetExceededError):
        anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.create(requests=requests[:2])
    assert fake.request_count("/v1/messages/batches") == 1
    assert guard.status("nightly").spent == 0  # nothing held: results are charged as they are read


def test_images_and_transcriptions_billed_in_tokens(instrumented, openai_client, async_openai_client, fake,
                                                    span_exporter):
    """gpt-image-1 $5 text input / $40 image output per 1M tokens; gpt-4o-transcribe $6 audio input /
    $10 output (openai.com/api/pricing, 2026-11-25). dall-e-3 ($0.04 an image) and whisper-1 ($0.006 a
    minute) report no tokens and are priced in their own units (tests/test_unit_billed_operations.py)."""
    import asyncio
    import io

    fake.set_model("gpt-image-1", input_tokens=50, output_tokens=4_160)
    fake.set_model("gpt-4o-transcribe", input_tokens=1_000, output_tokens=200)
    openai_client.images.generate(model="gpt-image-1", prompt="A lighthouse at dusk")
    asyncio.run(async_openai_client.images.generate(model="gpt-image-1", prompt="A lighthouse at dusk"))
    openai_client.images.generate(model="dall-e-3", prompt="A lighthouse at dusk")
    audio = ("speech.wav", io.BytesIO(b"RIFF....WAVE"), "audio/wav")
    assert openai_client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio).text
    openai_client.audio.transcriptions.create(model="whisper-1", file=("s.wav", io.BytesIO(b"RIFF"), "audio/wav"))
    image, image_async, dalle, transcribe, whisper = our_spans(span_exporter)
    assert cost_of(image) == cost_of(image_async) == 50 * Decimal(5) / 10**6 + 4_160 * Decimal(40) / 10**6
    assert image.attributes["gen_ai.operation.name"] == "image_generation"
    assert cost_of(transcribe) == 1_000 * Decimal(6) / 10**6 + 200 * Decimal(10) / 10**6
    assert cost_of(dalle) == Decimal("0.04")
    assert cost_of(whisper) == Decimal("42.5") * Decimal("0.006") / 60  # the fake's default duration


def test_gemini_embeddings_without_reported_usage_are_estimated_not_free(instrumented, fake, span_exporter):
    """gemini-embedding-001 $0.15 per 1M input tokens (ai.google.dev/gemini-api/docs/pricing, 2026-11-25).
    The Gemini API returns no token count for embeddings: the input is our upper-bound estimate."""
    import asyncio

    from google import genai
    from google.genai import types

    from otel_llm_cost.estimate import estimate_input_tokens

    client = genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))
    texts = ["The nightly export stalled.", "Root cause: a lock held by the backup job."]
    assert len(client.models.embed_content(model="gemini-embedding-001", contents=texts).embeddings) == 2
    asyncio.run(client.aio.models.embed_content(model="gemini-embedding-001", contents=texts))
    spans = our_spans(span_exporter)
    expected = estimate_input_tokens(texts) * Decimal("0.15") / 10**6
    assert [cost_of(s) for s in spans] == [expected] * 2
    assert all(s.attributes["llm_cost.usage.estimated"] is True for s in spans)
    assert spans[0].attributes["gen_ai.operation.name"] == "embeddings"


def test_gemini_embeddings_that_report_their_usage_use_the_reported_count(instrumented, fake, span_exporter):
    """gemini-embedding-2 reports `usageMetadata.promptTokenCount` (11 tokens for this text in recorded
    traffic): that count is used, not our estimate, and the span is not marked estimated. Its price,
    $0.20 per 1M input tokens, is genai-prices' (ai.google.dev/gemini-api/docs/pricing, 2026-12-03)."""
    from google import genai
    from google.genai import types

    fake.set_model("gemini-embedding-2", embed_tokens=11)
    client = genai.Client(api_key="offline-key", http_options=types.HttpOptions(base_url=fake.gemini_url))
    client.models.embed_content(model="gemini-embedding-2", contents="The nightly export stalled again today.")
    (span,) = our_spans(span_exporter)
    assert span.attributes["gen_ai.usage.input_tokens"] == 11 and "llm_cost.usage.estimated" not in span.attributes
    assert cost_of(span) == 11 * Decimal("0.20") / 10**6


def test_ollamas_older_embeddings_call_is_a_span_with_an_estimated_input(instrumented, fake, span_exporter):
    import ollama

    from otel_llm_cost.estimate import estimate_input_tokens

    response = ollama.Client(host=fake.url).embeddings(model="nomic-embed-text", prompt="The nightly export stalled.")
    assert response.embedding == [0.1, 0.2, 0.3]
    (span,) = our_spans(span_exporter)
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.request.model"] == "nomic-embed-text"
    assert span.attributes["gen_ai.usage.input_tokens"] == estimate_input_tokens("The nightly export stalled.")
    assert span.attributes["llm_cost.usage.estimated"] is True

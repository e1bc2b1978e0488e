"""Operations billed in units other than tokens, or in tokens that only some responses report: OpenAI
images (dall-e per image, gpt-image-1 tokens, streamed too), audio (whisper-1 per second of audio,
gpt-4o-transcribe tokens, tts-1 per character, gpt-4o-mini-tts tokens), Cohere rerank (per search unit),
and Bedrock embedding models through InvokeModel. Real SDK clients against the fake provider.

Prices, read 2026-11-25 (platform.openai.com/docs/pricing, cohere.com/pricing, aws.amazon.com/bedrock/pricing):
dall-e-3 $0.04 standard square, $0.12 HD wide; dall-e-2 $0.016 / $0.018 / $0.02 for 256² / 512² / 1024²;
gpt-image-1 $5 text in, $10 image in, $40 out per 1M tokens; whisper-1 $0.006 a minute; gpt-4o-transcribe
$6 audio in, $10 out; tts-1 $15 and tts-1-hd $30 per 1M characters; gpt-4o-mini-tts $0.60 in, $12 out;
Cohere Rerank 3.5 $2 per 1,000 searches; Titan Text Embeddings v2 $0.02 and Cohere Embed 3 $0.10 per 1M.
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from decimal import Decimal

import openai
import pytest
from conftest import cost_of, only_span, our_spans

import otel_llm_cost as llm_cost

WHISPER_PER_SECOND = Decimal("0.006") / 60
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # translations, create_variation


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """A real WAV file of silence, `seconds` long."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def unknown(span) -> bool:
    return "gen_ai.usage.cost.amount" not in span.attributes and \
        span.attributes["llm_cost.pricing.source"] == "unknown"


# --- images ---


def test_dall_e_is_billed_per_image_by_quality_and_size_sync_and_async(instrumented, openai_client,
                                                                       async_openai_client, span_exporter):
    openai_client.images.generate(model="dall-e-3", prompt="A lighthouse", quality="hd", size="1792x1024")
    openai_client.images.generate(model="dall-e-3", prompt="A lighthouse")
    openai_client.images.edit(model="dall-e-2", image=("in.png", b"\x89PNG", "image/png"), prompt="Add a boat")

    async def run() -> None:
        await async_openai_client.images.generate(model="dall-e-2", prompt="A lighthouse", n=3, size="256x256")
        await async_openai_client.images.create_variation(image=("in.png", b"\x89PNG", "image/png"), size="512x512")

    asyncio.run(run())
    hd, standard, edit, three, variation = our_spans(span_exporter)
    assert [cost_of(s) for s in (hd, standard, three, edit, variation)] == [
        Decimal("0.12"), Decimal("0.04"), 3 * Decimal("0.016"), Decimal("0.02"), Decimal("0.018")]
    assert three.attributes["llm_cost.usage.images"] == 3
    assert hd.attributes["gen_ai.operation.name"] == "image_generation"
    assert hd.attributes["llm_cost.pricing.model"] == "dall-e-3"


def test_a_dall_e_request_the_api_rejects_costs_nothing(instrumented, openai_client, span_exporter):
    with pytest.raises(openai.BadRequestError):
        openai_client.images.generate(model="dall-e-3", prompt="Two lighthouses", n=2)
    span = only_span(span_exporter)
    assert "gen_ai.usage.cost.amount" not in span.attributes
    assert span.attributes["error.type"] == "BadRequestError"
    assert llm_cost.last_usage().cost == 0


def test_dall_e_budget_is_checked_before_sending(guard, openai_client, fake):
    guard.set(llm_cost.Budget.create("0.10", name="images"))
    with pytest.raises(llm_cost.BudgetExceededError):
        openai_client.images.generate(model="dall-e-3", prompt="A lighthouse", quality="hd", size="1024x1792")
    assert fake.request_count("/images/generations") == 0
    openai_client.images.generate(model="dall-e-3", prompt="A lighthouse")  # $0.04 fits
    assert guard.status("images").spent == Decimal("0.04")


@pytest.mark.parametrize("stream", [False, True])
def test_gpt_image_1_edits_price_image_input_tokens_at_their_own_rate(instrumented, openai_client, fake,
                                                                      span_exporter, stream):
    # the fake reports `cache_read_tokens` of the input as image tokens
    fake.set_model("gpt-image-1", input_tokens=1_000, cache_read_tokens=800, output_tokens=4_160)
    result = openai_client.images.edit(model="gpt-image-1", image=("in.png", b"\x89PNG", "image/png"),
                                       prompt="Add a boat", stream=stream)
    if stream:
        events = [event.type for event in result]
        assert events == ["image_edit.partial_image", "image_edit.completed"]
    span = only_span(span_exporter)
    assert cost_of(span) == (200 * Decimal(5) + 800 * Decimal(10) + 4_160 * Decimal(40)) / 10**6
    assert "llm_cost.usage.estimated" not in span.attributes


def test_gpt_image_1_generation_stream_async(instrumented, async_openai_client, fake, span_exporter):
    fake.set_model("gpt-image-1", input_tokens=50, output_tokens=4_160)

    async def run() -> list[str]:
        stream = await async_openai_client.images.generate(model="gpt-image-1", prompt="A lighthouse", stream=True)
        return [event.type async for event in stream]

    assert asyncio.run(run()) == ["image_generation.partial_image", "image_generation.completed"]
    assert cost_of(only_span(span_exporter)) == (50 * Decimal(5) + 4_160 * Decimal(40)) / 10**6


# --- transcription and translation ---


def test_whisper_is_billed_by_the_second_as_reported_or_read_from_the_wav(instrumented, openai_client,
                                                                          async_openai_client, span_exporter):
    audio = ("speech.wav", wav(3.5), "audio/wav")
    openai_client.audio.transcriptions.create(model="whisper-1", file=audio)  # usage: 3.5 s
    text = openai_client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert isinstance(text, str) and text  # a plain-text answer carries no usage: the WAV header gives 3.5 s
    asyncio.run(async_openai_client.audio.translations.create(model="whisper-1", file=audio))
    spans = our_spans(span_exporter)
    assert [cost_of(s) for s in spans] == [Decimal("3.5") * WHISPER_PER_SECOND] * 3
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["transcription"] * 2 + ["translation"]
    assert spans[0].attributes["llm_cost.usage.audio_seconds"] == 3.5


def test_a_translation_of_audio_we_cannot_measure_uses_the_verbose_duration_or_stays_unknown(
        instrumented, openai_client, span_exporter):
    mp3 = ("speech.mp3", io.BytesIO(b"ID3\x04" + bytes(64)), "audio/mpeg")
    verbose = openai_client.audio.translations.create(model="whisper-1", file=mp3, response_format="verbose_json")
    assert verbose.duration == 42.5
    mp3[1].seek(0)
    openai_client.audio.translations.create(model="whisper-1", file=mp3)  # `{"text": ...}` alone
    measured, unmeasured = our_spans(span_exporter)
    assert cost_of(measured) == Decimal("42.5") * WHISPER_PER_SECOND
    assert unknown(unmeasured)


def test_reading_a_wav_header_leaves_the_apps_file_where_it_was(instrumented, openai_client, tmp_path,
                                                                span_exporter):
    path = tmp_path / "speech.wav"
    path.write_bytes(wav(2.0))
    with open(path, "rb") as handle:
        openai_client.audio.transcriptions.create(model="whisper-1", file=handle, response_format="srt")
    openai_client.audio.transcriptions.create(model="whisper-1", file=path, response_format="vtt")
    assert [cost_of(s) for s in our_spans(span_exporter)] == [2 * WHISPER_PER_SECOND] * 2


@pytest.mark.parametrize("upload", [b"RIFF....WAVE", b"RIFF\x10\x00\x00\x00WAVEfmt \xff\xff\xff\x7f", b"RIFF"])
def test_audio_that_only_looks_like_wav_is_sent_and_priced_as_reported(instrumented, openai_client, span_exporter,
                                                                       upload):
    openai_client.audio.transcriptions.create(model="whisper-1", file=("s.wav", upload, "audio/wav"))
    assert cost_of(only_span(span_exporter)) == Decimal("42.5") * WHISPER_PER_SECOND  # the fake's default


def test_whisper_budget_reserves_the_wav_length_before_sending(guard, openai_client, fake):
    guard.set(llm_cost.Budget.create("0.005", name="audio"))  # 50 s of whisper-1
    with pytest.raises(llm_cost.BudgetExceededError):
        openai_client.audio.transcriptions.create(model="whisper-1", file=("long.wav", wav(60), "audio/wav"))
    assert fake.request_count("/audio/transcriptions") == 0


@pytest.mark.parametrize("is_async", [False, True])
def test_a_streamed_gpt_4o_transcription_is_priced_from_its_done_event(instrumented, openai_client,
                                                                        async_openai_client, fake, span_exporter,
                                                                        is_async):
    fake.set_model("gpt-4o-transcribe", input_tokens=1_000, output_tokens=200, chunks=3)
    audio = ("speech.wav", wav(1.0), "audio/wav")
    if is_async:
        async def run() -> list[str]:
            stream = await async_openai_client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio,
                                                                           stream=True)
            return [event.type async for event in stream]
        types = asyncio.run(run())
    else:
        types = [e.type for e in openai_client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio,
                                                                            stream=True)]
    assert types == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    assert cost_of(only_span(span_exporter)) == (1_000 * Decimal(6) + 200 * Decimal(10)) / 10**6


# --- speech ---


def test_tts_is_billed_per_character_sync_async_and_streamed(instrumented, openai_client, async_openai_client,
                                                             span_exporter):
    words = "Bonjour à tous, " * 50  # 800 characters, accents counted once each
    assert len(words) == 800
    audio = openai_client.audio.speech.create(model="tts-1", voice="alloy", input=words)
    assert audio.content.startswith(b"ID3")
    asyncio.run(async_openai_client.audio.speech.create(model="tts-1-hd", voice="alloy", input=words))
    with openai_client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=words) as r:
        streamed = b"".join(r.iter_bytes())
    assert streamed == audio.content  # the app reads the body itself; we never touch it
    spans = our_spans(span_exporter)
    assert [cost_of(s) for s in spans] == [800 * Decimal(15) / 10**6, 800 * Decimal(30) / 10**6,
                                           800 * Decimal(15) / 10**6]
    assert spans[0].attributes["llm_cost.usage.input_characters"] == 800
    assert spans[0].attributes["gen_ai.operation.name"] == "speech"


def test_gpt_4o_mini_tts_is_priced_from_an_sse_stream_and_unknown_from_bare_audio(instrumented, openai_client,
                                                                                  fake, span_exporter):
    fake.set_model("gpt-4o-mini-tts", input_tokens=20, output_tokens=1_500)
    sse = openai_client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello there",
                                            stream_format="sse")
    last = json.loads(sse.content.strip().rsplit(b"\n", 1)[-1].removeprefix(b"data:"))
    assert last["type"] == "speech.audio.done"
    openai_client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello there")
    priced, bare = our_spans(span_exporter)
    assert cost_of(priced) == (20 * Decimal("0.6") + 1_500 * Decimal(12)) / 10**6
    assert unknown(bare)


def test_tts_1_refusing_sse_costs_nothing(instrumented, openai_client, span_exporter):
    with pytest.raises(openai.BadRequestError):
        openai_client.audio.speech.create(model="tts-1", voice="alloy", input="Hi", stream_format="sse")
    assert "gen_ai.usage.cost.amount" not in only_span(span_exporter).attributes
    assert llm_cost.last_usage().cost == 0


# --- Cohere rerank ---


def test_cohere_rerank_is_billed_per_search_unit_sync_and_async(instrumented, fake, span_exporter):
    import cohere

    documents = [f"document {i}" for i in range(150)]  # two search units
    co = cohere.ClientV2(api_key="k", base_url=fake.url)
    result = co.rerank(model="rerank-v3.5", query="lighthouse", documents=documents, top_n=3)
    assert [r.index for r in result.results] == [0, 1, 2]
    asyncio.run(cohere.AsyncClientV2(api_key="k", base_url=fake.url).rerank(
        model="rerank-english-v3.0", query="lighthouse", documents=documents[:10]))
    two, one = our_spans(span_exporter)
    assert (cost_of(two), cost_of(one)) == (2 * Decimal(2) / 1_000, Decimal(2) / 1_000)
    assert two.attributes["llm_cost.usage.rerank_searches"] == 2
    assert two.attributes["gen_ai.operation.name"] == "rerank"


def test_rerank_budget_is_checked_before_sending(guard, fake):
    import cohere

    guard.set(llm_cost.Budget.create("0.003", name="search"))
    co = cohere.ClientV2(api_key="k", base_url=fake.url)
    with pytest.raises(llm_cost.BudgetExceededError):
        co.rerank(model="rerank-v3.5", query="q", documents=["d"] * 250)  # 3 units, $0.006
    assert fake.request_count("/v2/rerank") == 0


# --- Bedrock embedding models through InvokeModel ---


def test_bedrock_titan_and_cohere_embeddings_through_invoke_model(instrumented, fake, span_exporter):
    import boto3

    fake.set_model("amazon.titan-embed-text-v2:0", input_tokens=50_000)
    fake.set_model("cohere.embed-english-v3", input_tokens=20_000)
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                           aws_access_key_id="offline", aws_secret_access_key="offline")
    titan = bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0",
                                 body=json.dumps({"inputText": "a lighthouse", "dimensions": 256}))
    assert json.loads(titan["body"].read())["inputTextTokenCount"] == 50_000  # the body is the app's, unread
    bedrock.invoke_model(modelId="cohere.embed-english-v3",
                         body=json.dumps({"texts": ["a", "b"], "input_type": "search_document"}))
    titan_span, cohere_span = our_spans(span_exporter)
    assert (cost_of(titan_span), cost_of(cohere_span)) == (50_000 * Decimal("0.02") / 10**6,
                                                           20_000 * Decimal("0.1") / 10**6)
    for span in (titan_span, cohere_span):
        assert span.attributes["gen_ai.operation.name"] == "embeddings"
        assert span.attributes["gen_ai.usage.output_tokens"] == 0
        assert "llm_cost.usage.incomplete" not in span.attributes

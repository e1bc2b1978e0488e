"""Our cached fast path computes exactly what genai_prices.calc_price computes, wherever it has the price."""

from __future__ import annotations

from dataclasses import replace

import genai_prices
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.usage import Usage

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-5"),
    ("openai", "gpt-realtime"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
    ("mistral", "mistral-small-latest"),
]

# genai-prices has no 1-hour cache-write rate for these; we price those writes at Anthropic's published
# 2x input (tests/test_pricing.py), where genai-prices falls back to the 5-minute rate.
WITHOUT_1H_RATE = {("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0")}

book = PriceBook(corrections=[])  # genai-prices alone, no corrections of ours


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    cache_read = draw(st.integers(0, 300_000))
    write_5m = draw(st.integers(0, 100_000))
    write_1h = draw(st.integers(0, 100_000))
    audio_in = draw(st.integers(0, 50_000))
    plain = draw(st.integers(0, 300_000))
    audio_out = draw(st.integers(0, 20_000))
    output = audio_out + draw(st.integers(0, 50_000))
    return Usage(
        input_tokens=plain + cache_read + write_5m + write_1h + audio_in,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        input_audio_tokens=audio_in,
        output_tokens=output,
        output_audio_tokens=audio_out,
        web_search_requests=draw(st.integers(0, 5)),
    )


def _genai_usage(usage: Usage) -> genai_prices.Usage:
    values = {
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "input_audio_tokens": usage.input_audio_tokens,
        "output_tokens": usage.output_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
        "web_searches": usage.web_search_requests,
        "cache_audio_read_tokens": 0,  # our Usage counts audio input as uncached
    }
    if usage.cache_write_1h_tokens:
        values["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
    return genai_prices.Usage(**values)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(MODELS), usage=usages())
def test_fast_path_equals_genai_prices(model, usage):
    provider, name = model
    if model in WITHOUT_1H_RATE:
        usage = replace(usage, cache_write_1h_tokens=0, input_tokens=usage.input_tokens - usage.cache_write_1h_tokens)
    ours = book.compute_cost(provider, name, usage)
    theirs = genai_prices.calc_price(_genai_usage(usage), name, provider_id=provider)
    assert ours.total == theirs.total_price
    assert ours.input == theirs.input_price
    assert ours.output == theirs.output_price


@settings(max_examples=100, deadline=None)
@given(model=st.sampled_from([("openai", "whisper-1"), ("openai", "tts-1"), ("openai", "tts-1-hd"),
                              ("openai", "gpt-image-1")]),
       seconds=st.decimals(0, 100_000, places=3), characters=st.integers(0, 5_000_000),
       text=st.integers(0, 100_000), image=st.integers(0, 100_000), output=st.integers(0, 100_000))
def test_units_that_are_not_tokens_price_as_genai_prices_does(model, seconds, characters, text, image, output):
    """whisper-1 per second of audio, tts-1 per character, gpt-image-1 image input at its own rate."""
    provider, name = model
    if name == "whisper-1":
        ours_usage = Usage(audio_seconds=seconds)
        theirs_usage = genai_prices.Usage(input_audio_seconds=seconds, audio_seconds=seconds)
    elif name.startswith("tts"):
        ours_usage, theirs_usage = Usage(input_characters=characters), genai_prices.Usage(input_characters=characters)
    else:
        ours_usage = Usage(input_tokens=text + image, input_image_tokens=image, output_tokens=output)
        theirs_usage = genai_prices.Usage(input_tokens=text + image, input_image_tokens=image, output_tokens=output)
    ours = book.compute_cost(provider, name, ours_usage)
    theirs = genai_prices.calc_price(theirs_usage, name, provider_id=provider)
    assert (ours.total, ours.input, ours.output) == (theirs.total_price, theirs.input_price, theirs.output_price)

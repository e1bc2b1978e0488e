"""Each provider counts tokens its own way; `Usage` is the one normalised form."""

from __future__ import annotations

import pytest
from anthropic.types import Usage as AnthropicUsage
from google.genai import types as genai_types
from hypothesis import given
from hypothesis import strategies as st
from openai.types.completion_usage import CompletionUsage
from openai.types.responses.response_usage import ResponseUsage

from otel_llm_cost.usage import (
    USAGE_PARSERS,
    Usage,
    usage_from_anthropic_messages,
    usage_from_bedrock_converse,
    usage_from_cohere_chat,
    usage_from_gemini,
    usage_from_mistral_chat,
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
)

OPENAI_CHAT = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 0},
}


def test_openai_chat_cached_and_reasoning_are_subsets_of_their_totals():
    usage = usage_from_openai_chat(OPENAI_CHAT)
    assert usage == Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300, reasoning_tokens=200)


def test_openai_chat_from_the_sdk_object_equals_the_dict():
    assert usage_from_openai_chat(CompletionUsage.model_validate(OPENAI_CHAT)) == usage_from_openai_chat(OPENAI_CHAT)


def test_openai_responses_usage():
    raw = {
        "input_tokens": 5000,
        "input_tokens_details": {"cached_tokens": 4096, "cache_write_tokens": 500},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 700},
        "total_tokens": 5900,
    }
    expected = Usage(
        input_tokens=5000, cache_read_tokens=4096, cache_write_5m_tokens=500, output_tokens=900, reasoning_tokens=700
    )
    assert usage_from_openai_responses(raw) == expected
    assert usage_from_openai_responses(ResponseUsage.model_validate(raw)) == expected


def test_openai_embeddings_usage_is_input_only():
    assert usage_from_openai_embeddings({"prompt_tokens": 42, "total_tokens": 42}) == Usage(input_tokens=42)


ANTHROPIC = {
    "input_tokens": 50,
    "cache_read_input_tokens": 10_000,
    "cache_creation_input_tokens": 3_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000},
    "output_tokens": 400,
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
}


def test_anthropic_cache_reads_and_writes_are_added_to_input_tokens():
    usage = usage_from_anthropic_messages(ANTHROPIC)
    assert usage == Usage(
        input_tokens=13_050,
        cache_read_tokens=10_000,
        cache_write_5m_tokens=1_000,
        cache_write_1h_tokens=2_000,
        output_tokens=400,
        web_search_requests=3,
    )


def test_anthropic_sdk_object_equals_the_dict():
    assert usage_from_anthropic_messages(AnthropicUsage.model_validate(ANTHROPIC)) == usage_from_anthropic_messages(
        ANTHROPIC
    )


def test_anthropic_writes_without_a_ttl_split_are_five_minute_writes():
    usage = usage_from_anthropic_messages({"input_tokens": 10, "cache_creation_input_tokens": 500, "output_tokens": 1})
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens, usage.input_tokens) == (500, 0, 510)


GEMINI_REST = {
    "promptTokenCount": 12_000,
    "cachedContentTokenCount": 8_000,
    "candidatesTokenCount": 500,
    "thoughtsTokenCount": 1_500,
    "toolUsePromptTokenCount": 100,
    "totalTokenCount": 14_100,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11_000}, {"modality": "AUDIO", "tokenCount": 1_000}],
}


def test_gemini_thoughts_are_output_on_top_of_candidates_and_cache_is_a_subset():
    assert usage_from_gemini(GEMINI_REST) == Usage(
        input_tokens=12_100,
        cache_read_tokens=8_000,
        input_audio_tokens=1_000,
        output_tokens=2_000,
        reasoning_tokens=1_500,
    )


def test_gemini_sdk_snake_case_object_equals_the_rest_dict():
    sdk = genai_types.GenerateContentResponseUsageMetadata.model_validate(GEMINI_REST)
    assert sdk.prompt_token_count == 12_000  # the SDK really is snake_case
    assert usage_from_gemini(sdk) == usage_from_gemini(GEMINI_REST)


def test_bedrock_input_tokens_exclude_the_cache():
    raw = {
        "inputTokens": 20,
        "outputTokens": 300,
        "totalTokens": 9_320,
        "cacheReadInputTokens": 6_000,
        "cacheWriteInputTokens": 3_000,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 1_000}, {"ttl": "1h", "inputTokens": 2_000}],
    }
    assert usage_from_bedrock_converse(raw) == Usage(
        input_tokens=9_020,
        cache_read_tokens=6_000,
        cache_write_5m_tokens=1_000,
        cache_write_1h_tokens=2_000,
        output_tokens=300,
    )


def test_cohere_bills_billed_units_never_tokens():
    raw = {
        "billed_units": {"input_tokens": 120.0, "output_tokens": 40.0},
        "tokens": {"input_tokens": 900.0, "output_tokens": 41.0},
    }
    assert usage_from_cohere_chat(raw) == Usage(input_tokens=120, output_tokens=40)


def test_mistral_usage():
    raw = {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320}
    assert usage_from_mistral_chat(raw) == Usage(input_tokens=300, output_tokens=20)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "garbage",
        {},
        {"prompt_tokens": None, "completion_tokens": 3},
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": -5, "completion_tokens": 3},
        {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 50}},
        {"prompt_tokens": True, "completion_tokens": 3},
        {"prompt_tokens": float("nan"), "completion_tokens": 3},
    ],
)
def test_malformed_openai_usage_is_marked_incomplete_not_raised(payload):
    usage = usage_from_openai_chat(payload)
    assert usage.complete is False
    assert usage.cache_read_tokens <= usage.input_tokens


_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cache_read_input_tokens",
        "cache_creation_input_tokens", "cache_creation", "promptTokenCount", "candidatesTokenCount",
        "thoughtsTokenCount", "cachedContentTokenCount", "inputTokens", "outputTokens", "cacheDetails",
        "billed_units", "prompt_tokens_details", "completion_tokens_details", "server_tool_use",
        "promptTokensDetails", "prompt_token_count", "cacheWriteInputTokens",
    ]
)


@given(payload=_junk | st.dictionaries(_field_names, _junk, max_size=8))
def test_no_parser_ever_raises_and_subsets_never_exceed_totals(payload):
    for parse in USAGE_PARSERS.values():
        usage = parse(payload)
        assert isinstance(usage, Usage)
        assert usage.cache_read_tokens + usage.cache_write_tokens <= usage.input_tokens
        assert usage.reasoning_tokens <= usage.output_tokens
        assert min(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) >= 0

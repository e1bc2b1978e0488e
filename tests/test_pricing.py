"""Costs that peers get wrong, each checked against the provider's published price (source, date).

Every expectation is hand-computed from the published per-million-token list price.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from otel_llm_cost.pricing import PriceBook, PricingError, compute_cost
from otel_llm_cost.usage import Usage

D = Decimal


@pytest.fixture
def book() -> PriceBook:
    return PriceBook()


def test_dated_snapshots_are_different_models(book):
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    # https://openai.com/api/pricing, read 2024-10: gpt-4o-2024-08-06 $2.50 in / $10 out
    assert book.compute_cost("openai", "gpt-4o-2024-08-06", usage).total == D("12.5")
    # https://openai.com/api/pricing, read 2024-10: gpt-4o-2024-05-13 $5 in / $15 out
    assert book.compute_cost("openai", "gpt-4o-2024-05-13", usage).total == D("20")


def test_fine_tuned_model_names_use_fine_tuned_prices(book):
    # https://platform.openai.com/docs/pricing (fine-tuning, read 2025-09):
    # ft gpt-4o-mini-2024-07-18 $0.30 in, $0.15 cached in, $1.20 out
    usage = Usage(input_tokens=2_000_000, cache_read_tokens=1_000_000, output_tokens=1_000_000)
    cost = book.compute_cost("openai", "ft:gpt-4o-mini-2024-07-18:my-org::abc123", usage)
    assert (cost.input, cost.output, cost.total) == (D("0.45"), D("1.2"), D("1.65"))


def test_openai_cached_tokens_are_billed_at_the_cached_rate_and_not_twice(book):
    # https://openai.com/api/pricing, read 2024-10: gpt-4o $2.50 in, $1.25 cached in, $10 out
    raw = {"prompt_tokens": 10_000, "completion_tokens": 1_000, "prompt_tokens_details": {"cached_tokens": 8_000}}
    cost = book.compute_cost("openai", "gpt-4o", raw, api="openai.chat")
    assert cost.input == D("2000") * D("2.5") / 10**6 + D("8000") * D("1.25") / 10**6
    assert cost.total == D("0.015") + D("0.01")


def test_anthropic_cache_reads_and_both_write_ttls(book):
    # https://docs.anthropic.com/en/docs/about-claude/pricing, read 2025-10: Claude Sonnet 4.5
    # $3 in, $3.75 5m cache write, $6 1h cache write, $0.30 cache read, $15 out
    raw = {
        "input_tokens": 1_000,
        "cache_read_input_tokens": 100_000,
        "cache_creation_input_tokens": 30_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 20_000},
        "output_tokens": 2_000,
    }
    cost = book.compute_cost("anthropic", "claude-sonnet-4-5-20250929", raw, api="anthropic.messages")
    assert cost.input == D("0.003") + D("0.03") + D("0.0375") + D("0.12")
    assert cost.output == D("0.03")
    assert cost.total == D("0.2205")


def test_bedrock_cache_reads_and_writes(book):
    # https://aws.amazon.com/bedrock/pricing/, read 2025-10: Claude Sonnet 4 cross-region (us.)
    # $3 in, $3.75 cache write, $0.30 cache read, $15 out
    raw = {"inputTokens": 1_000, "outputTokens": 1_000, "cacheReadInputTokens": 10_000, "cacheWriteInputTokens": 4_000}
    cost = book.compute_cost("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", raw, api="bedrock.converse")
    assert cost.input == D("0.003") + D("0.003") + D("0.015")
    assert cost.total == D("0.021") + D("0.015")


def test_claude_one_hour_cache_writes_cost_2x_input_on_bedrock_and_vertex_too(book):
    # https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing, read 2025-11: a 1-hour
    # cache write costs 2x the base input price; Bedrock and Vertex AI bill Claude with the same
    # multipliers. genai-prices lists no 1h rate for these, and would price them at the 5-minute rate.
    raw = {"inputTokens": 0, "outputTokens": 0, "cacheWriteInputTokens": 10_000,
           "cacheDetails": [{"ttl": "1h", "inputTokens": 10_000}]}
    cost = book.compute_cost("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", raw, api="bedrock.converse")
    assert cost.total == D("0.06")  # 10,000 x $6 / 1M, not x $3.75
    vertex = book.compute_cost("gcp.vertex_ai", "claude-sonnet-4-5@20250929", Usage(
        input_tokens=10_000, cache_write_1h_tokens=10_000))
    assert vertex.total == D("0.06")


def test_gemini_cached_tokens_and_thoughts(book):
    # https://ai.google.dev/gemini-api/docs/pricing, read 2025-11: Gemini 2.5 Flash $0.30 text in,
    # $0.03 cached, $2.50 out (thinking included)
    raw = {"promptTokenCount": 100_000, "cachedContentTokenCount": 60_000, "candidatesTokenCount": 1_000,
           "thoughtsTokenCount": 3_000}
    cost = book.compute_cost("gcp.gemini", "gemini-2.5-flash", raw, api="gemini.generate_content")
    assert cost.input == D("0.012") + D("0.0018")
    assert cost.output == D("0.01")  # 4,000 output tokens: thoughts are billed on top of candidates


def test_openai_reasoning_tokens_are_output_already(book):
    # https://openai.com/api/pricing, read 2025-09: o4-mini $1.10 in, $4.40 out; reasoning is inside output
    raw = {"prompt_tokens": 1_000, "completion_tokens": 5_000, "completion_tokens_details": {"reasoning_tokens": 4_500}}
    cost = book.compute_cost("openai", "o4-mini", raw, api="openai.chat")
    assert cost.output == D("0.022")  # 5,000 x $4.40/M, not 9,500


def test_gemini_price_step_above_200k_counts_cached_tokens(book):
    # https://ai.google.dev/gemini-api/docs/pricing, read 2025-11: Gemini 2.5 Pro
    # <=200k prompt: $1.25 in, $0.125 cached, $10 out; >200k: $2.50 in, $0.25 cached, $15 out
    below = {"promptTokenCount": 200_000, "cachedContentTokenCount": 150_000, "candidatesTokenCount": 1_000}
    above = {"promptTokenCount": 200_001, "cachedContentTokenCount": 150_000, "candidatesTokenCount": 1_000}
    low = book.compute_cost("gcp.gemini", "gemini-2.5-pro", below, api="gemini.generate_content")
    high = book.compute_cost("gcp.gemini", "gemini-2.5-pro", above, api="gemini.generate_content")
    assert low.total == D("50000") * D("1.25") / 10**6 + D("150000") * D("0.125") / 10**6 + D("0.01")
    assert high.total == D("50001") * D("2.5") / 10**6 + D("150000") * D("0.25") / 10**6 + D("0.015")


def test_service_tier_is_priced_from_the_tier_the_response_reports(book):
    # https://platform.openai.com/docs/pricing, read 2025-09: gpt-5 standard $1.25/$10,
    # flex $0.625/$5, priority $2.50/$20
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000)
    assert book.compute_cost("openai", "gpt-5", usage, service_tier="default").total == D("2.25")
    assert book.compute_cost("openai", "gpt-5", usage, service_tier="flex").total == D("1.125")
    assert book.compute_cost("openai", "gpt-5", usage, service_tier="priority").total == D("4.5")


def test_flex_and_priority_before_genai_prices_lists_them(book):
    # The same published rates applied in September 2025, before genai-prices lists the variants
    at = datetime(2025, 9, 15, tzinfo=UTC)
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000)
    assert book.compute_cost("openai", "gpt-5", usage, service_tier="flex", at=at).total == D("1.125")
    assert book.compute_cost("openai", "gpt-5", usage, service_tier="priority", at=at).total == D("4.5")


def test_batch_api_is_half_price_also_before_genai_prices_lists_batch_rates(book):
    # https://platform.openai.com/docs/guides/batch (50% discount), read 2025-09: gpt-4o-mini $0.15/$0.60
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert book.compute_cost("openai", "gpt-4o-mini", usage, batch=True).total == D("0.375")
    early = datetime(2025, 3, 1, tzinfo=UTC)
    assert book.compute_cost("openai", "gpt-4o-mini", usage, batch=True, at=early).total == D("0.375")
    # Anthropic Message Batches, 50%: https://docs.anthropic.com/en/docs/build-with-claude/batch-processing
    # Claude Sonnet 4 has no batch entry in genai-prices: $3/$15 -> $1.50/$7.50
    small = Usage(input_tokens=100_000, output_tokens=100_000)
    assert book.compute_cost("anthropic", "claude-sonnet-4-20250514", small, batch=True).total == D("0.9")
    # Anthropic reports a batch as service_tier="batch"
    assert book.compute_cost("anthropic", "claude-sonnet-4-20250514", small, service_tier="batch").total == D("0.9")


def test_audio_tokens_at_audio_rates(book):
    # gpt-realtime, https://openai.com/api/pricing read 2025-09: text $4/$16, audio $32/$64
    raw = {"prompt_tokens": 3_000, "completion_tokens": 2_000,
           "prompt_tokens_details": {"audio_tokens": 2_000}, "completion_tokens_details": {"audio_tokens": 1_500}}
    cost = book.compute_cost("openai", "gpt-realtime", raw, api="openai.chat")
    assert cost.input == D("0.004") + D("0.064")
    assert cost.output == D("0.008") + D("0.096")


def test_audio_rates_genai_prices_lacks_come_from_our_corrections(book):
    # gpt-4o-audio-preview, https://platform.openai.com/docs/pricing read 2025-09: text $2.50/$10, audio $40/$80
    raw = {"prompt_tokens": 1_000, "completion_tokens": 1_000,
           "prompt_tokens_details": {"audio_tokens": 1_000}, "completion_tokens_details": {"audio_tokens": 1_000}}
    cost = book.compute_cost("openai", "gpt-4o-audio-preview", raw, api="openai.chat")
    assert cost.total == D("0.04") + D("0.08")
    # the 2024-10-01 snapshot launched at audio $100/$200
    old = book.compute_cost("openai", "gpt-4o-audio-preview-2024-10-01", raw, api="openai.chat")
    assert old.total == D("0.1") + D("0.2")


def test_long_context_tier(book):
    # https://docs.anthropic.com/en/docs/about-claude/pricing#long-context-pricing, 2025-08-12:
    # Sonnet 4 / 4.5 prompts over 200K: $6 in, $22.50 out
    usage = Usage(input_tokens=300_000, output_tokens=10_000)
    for model in ("claude-sonnet-4-5", "claude-sonnet-4-20250514"):
        cost = book.compute_cost("anthropic", model, usage)
        assert (cost.input, cost.output) == (D("1.8"), D("0.225")), model
    assert book.compute_cost("anthropic", "claude-sonnet-4-20250514", Usage(input_tokens=200_000)).total == D("0.6")


def test_anthropic_web_search_fee(book):
    # https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool, read 2025-10: $10 per 1,000
    raw = {"input_tokens": 0, "output_tokens": 0, "server_tool_use": {"web_search_requests": 7}}
    cost = book.compute_cost("anthropic", "claude-haiku-4-5", raw, api="anthropic.messages")
    assert (cost.tools, cost.total) == (D("0.07"), D("0.07"))


def test_historic_prices_follow_the_request_timestamp(book):
    # o3: https://openai.com/index/introducing-o3-and-o4-mini/ (2025-04-16): $10 in, $2.50 cached, $40 out;
    # cut on 2025-06-10 to $2 in, $0.50 cached, $8 out (https://platform.openai.com/docs/pricing)
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=500_000, output_tokens=1_000_000)
    before = book.compute_cost("openai", "o3", usage, at=datetime(2025, 5, 1, tzinfo=UTC))
    after = book.compute_cost("openai", "o3", usage, at=datetime(2025, 7, 1, tzinfo=UTC))
    assert before.total == D("5") + D("1.25") + D("40")
    assert after.total == D("1") + D("0.25") + D("8")


def test_unknown_model_is_none_never_zero_and_never_a_neighbour(book):
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    assert book.compute_cost("openai", "gpt-4o-banana", usage) is None
    assert book.compute_cost("openai", "my-private-model", usage) is None
    assert book.compute_cost(None, "totally-unknown", usage) is None


def test_known_model_with_zero_tokens_costs_exactly_zero(book):
    cost = book.compute_cost("openai", "gpt-4o", Usage())
    assert cost is not None and cost.total == D(0)


def test_unknown_provider_or_api_gives_none_and_one_warning(book, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert book.compute_cost("no-such-provider", "gpt-4o", Usage(input_tokens=5)) is None
            assert book.compute_cost("openai", "gpt-4o", {"prompt_tokens": 5}, api="openai.nope") is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("no-such-provider" in m for m in messages) == 1
    assert sum("openai.nope" in m for m in messages) == 1


def test_custom_prices_win_and_are_used_for_unknown_models(book):
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    book.set_pricing("gpt-4o", 1, 2)
    book.set_pricing("my-model", "0.5", "1.5", cache_read_per_mtok=0.05, provider="openai")
    assert book.compute_cost("openai", "gpt-4o", usage).total == D(3)
    cost = book.compute_cost("openai", "my-model", Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000))
    assert (cost.total, cost.source) == (D("0.05"), "custom")
    assert book.status().source == "custom"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[models."m"]\ninput_per_mtok = -1\noutput_per_mtok = 1\n', "input_per_mtok=-1"),
        ('[models."m"]\ninput_per_mtok = "abc"\noutput_per_mtok = 1\n', "input_per_mtok='abc'"),
        ('[models."m"]\ninput_per_mtok = nan\noutput_per_mtok = 1\n', "input_per_mtok=nan"),
        ('[models."m"]\noutput_per_mtok = 1\n', "missing input_per_mtok"),
        ('[models."m"]\ninput_per_mtok = 1\noutput_per_mtok = 1\nbogus = 3\n', "unknown field(s) ['bogus']"),
        ("not toml at all [", "is not valid toml"),
        ("", "non-empty 'models' table"),
    ],
)
def test_malformed_pricing_file_fails_naming_file_entry_and_value(tmp_path, book, content, message):
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(PricingError) as excinfo:
        book.load_pricing_file(path)
    assert str(path) in str(excinfo.value)
    assert message in str(excinfo.value)
    if "per_mtok" in message or "field" in message:
        assert "model 'm'" in str(excinfo.value)


def test_json_pricing_file_with_tiers(tmp_path, book):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"big-ctx": {
        "input_per_mtok": {"base": 1, "tiers": [{"start": 100, "price": 2}]}, "output_per_mtok": 4}}}))
    assert book.load_pricing_file(path) == 1
    assert book.compute_cost(None, "big-ctx", Usage(input_tokens=100)).total == D("0.0001")
    assert book.compute_cost(None, "big-ctx", Usage(input_tokens=101)).total == D("0.000202")


def test_set_pricing_rejects_bad_values(book):
    with pytest.raises(PricingError, match=r"set_pricing\('m'\): input_per_mtok=-1"):
        book.set_pricing("m", -1, 1)
    with pytest.raises(PricingError, match="output_per_mtok=inf"):
        book.set_pricing("m", 1, float("inf"))


def test_module_level_compute_cost_reads_raw_payloads():
    cost = compute_cost("anthropic", "claude-haiku-4-5", {"input_tokens": 1_000_000, "output_tokens": 0})
    # Claude Haiku 4.5, https://docs.anthropic.com/en/docs/about-claude/pricing (2025-10-15): $1 in
    assert cost.total == D(1)


def test_a_pricing_file_prices_units_that_are_not_tokens(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('[models."my-voice"]\ninput_per_mchar = 20\n\n[models."my-painter"]\n'
                    'per_image = { "standard/1024x1024" = 0.05, "hd/1024x1024" = 0.09 }\n\n'
                    '[models."my-ranker"]\nrerank_per_k_searches = 1.5\n')
    book = PriceBook()
    assert book.load_pricing_file(path) == 3
    assert book.compute_cost(None, "my-voice", Usage(input_characters=1_000)).total == Decimal("0.02")
    assert book.compute_cost(None, "my-painter", Usage(images=2, image_kind="hd/1024x1024")).total == Decimal("0.18")
    assert book.compute_cost(None, "my-ranker", Usage(rerank_searches=4)).total == Decimal("0.006")
    # a size it has no price for is unknown, never $0; so are tokens of a model priced only per image
    assert book.compute_cost(None, "my-painter", Usage(images=1, image_kind="standard/256x256")) is None


@pytest.mark.parametrize("entry, message", [
    ('per_image = { "hd/1024x1024" = "lots" }', "per_image 'hd/1024x1024'='lots' is not a number"),
    ("per_image = 0.04", "per_image=0.04 must be a table"),
    ("audio_per_hour = { base = 1, tiers = [] }", "audio_per_hour="),
])
def test_a_malformed_unit_price_names_the_file_model_and_value(tmp_path, entry, message):
    path = tmp_path / "prices.toml"
    path.write_text(f'[models."m"]\n{entry}\n')
    with pytest.raises(PricingError, match=re.escape(message)):
        PriceBook().load_pricing_file(path)

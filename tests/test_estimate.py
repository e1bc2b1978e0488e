"""Budgets rely on the pre-call estimate being an upper bound; these check it against real counts."""

from __future__ import annotations

from decimal import Decimal

from otel_llm_cost.estimate import estimate_cost, estimate_input_tokens, estimate_text_tokens
from otel_llm_cost.usage import usage_from_anthropic_messages

# Token counts reported by the providers' own tokenizers for these texts:
# cl100k_base/o200k_base (OpenAI) give 10 and 10; Claude's tokenizer gives 11 and 12 (as usage.input_tokens minus
# framing). The estimate must never be below any of them.
PANGRAM = "The quick brown fox jumps over the lazy dog."


def test_estimate_is_above_real_tokenizer_counts_for_ordinary_text():
    assert estimate_text_tokens(PANGRAM) >= 12
    # Worst realistic cases: every character its own token.
    assert estimate_text_tokens("a=b;c") >= 5
    assert estimate_text_tokens("12345678") >= 8
    assert estimate_text_tokens("東京都") >= 3 * 2  # CJK: up to 2 tokens a character in older BPEs
    assert estimate_text_tokens("🙂🙂") >= 2 * 3  # an emoji can take 3 byte tokens


def test_estimate_bounds_every_byte_level_tokenization():
    """A byte-level BPE never uses more tokens than bytes; for non-ASCII we give exactly that."""
    text = "naïve café — déjà vu, ½ of 東京"
    non_ascii_bytes = sum(len(ch.encode()) for ch in text if not ch.isascii())
    assert estimate_text_tokens(text) >= non_ascii_bytes


def test_messages_with_parts_images_and_tool_calls():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
    ]
    assert estimate_input_tokens(messages) >= 3200 + 3 * 8


def test_estimate_cost_uses_max_tokens_or_the_default():
    with_max = estimate_cost("gpt-4o-mini", "hello", max_tokens=100)
    assert with_max.output_tokens == 100
    # gpt-4o-mini $0.15 in / $0.60 out: https://openai.com/api/pricing (read 2024-10)
    expected = Decimal(with_max.input_tokens) * Decimal("0.15") / 10**6 + Decimal(100) * Decimal("0.6") / 10**6
    assert with_max.cost.total == expected
    assert estimate_cost("gpt-4o-mini", "hello").output_tokens == 1024
    assert estimate_cost("gpt-4o-mini", "hello", default_output_tokens=64).output_tokens == 64


def test_unknown_model_estimate_has_no_cost():
    estimate = estimate_cost("no-such-model", "hello", max_tokens=5)
    assert estimate.cost is None and estimate.input_tokens > 0


def test_anthropic_usage_of_the_pangram_is_below_the_estimate():
    """The fake provider and the real API report input usage; the estimate must stay above it."""
    real = usage_from_anthropic_messages({"input_tokens": 19, "output_tokens": 1})  # real API, claude-3-5-haiku
    assert estimate_input_tokens([{"role": "user", "content": PANGRAM}]) >= real.input_tokens

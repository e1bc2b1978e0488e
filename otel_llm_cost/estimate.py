"""Pre-call cost estimates: what a budget reserves before a request is sent.

The input estimate is an UPPER bound for ordinary text, so a reservation never undershoots the
real cost and a budget is never overspent. It needs no tokenizer (which would mean model files
and a download): the text is split the way byte-level BPE tokenizers pre-split it, and each piece
is given at least as many tokens as any of the GPT, Claude or Gemini tokenizers uses for it:

* a run of ASCII letters: one token per 2 letters, rounded up (real text averages ~4-5);
* each digit, ASCII punctuation or symbol character: one token;
* each non-ASCII character: one token per UTF-8 byte (a byte-level BPE never needs more);
* a run of whitespace: one token per 4 characters, rounded up;
* per message, 8 tokens of role and framing overhead, plus 8 per request.

Output is `max_tokens`, or `OTEL_LLM_COST_DEFAULT_OUTPUT_TOKENS` (1024) when the request has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from otel_llm_cost.pricing import Cost, PriceBook, default_price_book
from otel_llm_cost.usage import Usage

__all__ = ["Estimate", "estimate_cost", "estimate_input_tokens", "estimate_text_tokens"]

DEFAULT_OUTPUT_TOKENS: Final = 1024
MESSAGE_OVERHEAD_TOKENS: Final = 8
REQUEST_OVERHEAD_TOKENS: Final = 8

_PIECES: Final = re.compile(r"[A-Za-z]+|\s+|[\x00-\x7f]|[^\x00-\x7f]")


@dataclass(frozen=True, slots=True)
class Estimate:
    input_tokens: int
    output_tokens: int
    cost: Cost | None

    @property
    def usage(self) -> Usage:
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)


def estimate_text_tokens(text: str) -> int:
    """An upper bound on the tokens of ordinary `text` for current BPE tokenizers."""
    if text.isascii() and text.isalpha():
        return -(-len(text) // 2)
    tokens = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            tokens += -(-len(piece) // 2)
        elif first.isspace():
            tokens += -(-len(piece) // 4)
        elif first.isascii():
            tokens += 1
        else:
            tokens += len(first.encode("utf-8"))
    return tokens


_SKIPPED_KEYS: Final = frozenset({"type", "role", "cache_control", "id", "tool_use_id", "tool_call_id", "signature"})
_MEDIA_KEYS: Final = frozenset({"image_url", "source", "image", "inline_data", "file_data", "input_audio"})
MEDIA_PART_TOKENS: Final = 3200
"""An image or audio part: above the largest default image cost of OpenAI (~1,450), Claude (~1,600)
and Gemini (258). Budgets with much media should pass `max_tokens` and a headroom of their own."""


def _tokens_of(content: Any) -> int:
    """Upper bound on the tokens of a message's content: a string, typed parts, or tool JSON."""
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_text_tokens(content)
    if isinstance(content, Mapping):
        tokens = 0
        for key, value in content.items():
            if key in _SKIPPED_KEYS:
                continue
            if key in _MEDIA_KEYS:
                tokens += MEDIA_PART_TOKENS
            elif isinstance(value, (str, Mapping, list, tuple)) or value is None:
                tokens += _tokens_of(value)
            else:
                tokens += estimate_text_tokens(json.dumps(value, default=str))
        return tokens
    if isinstance(content, Iterable) and not isinstance(content, (bytes, bytearray)):
        return sum(_tokens_of(part) for part in content)
    if hasattr(content, "model_dump"):  # an SDK object passed as a message
        try:
            return _tokens_of(content.model_dump())
        except Exception:
            pass
    return estimate_text_tokens(str(content))


def estimate_input_tokens(messages_or_prompt: Any, *, system: Any = None, tools: Any = None) -> int:
    """Upper bound on input tokens of a prompt string, or of a list of chat messages."""
    if isinstance(messages_or_prompt, str):
        return estimate_text_tokens(messages_or_prompt) + REQUEST_OVERHEAD_TOKENS
    tokens = REQUEST_OVERHEAD_TOKENS
    messages = messages_or_prompt if isinstance(messages_or_prompt, Iterable) else [messages_or_prompt]
    for message in messages:
        tokens += MESSAGE_OVERHEAD_TOKENS + _tokens_of(message)
    for extra in (system, tools):
        if extra is not None:
            tokens += MESSAGE_OVERHEAD_TOKENS + _tokens_of(extra)
    return tokens


def worst_case_usage(
    messages_or_prompt: Any, max_tokens: int | None, default_output_tokens: int = DEFAULT_OUTPUT_TOKENS, *,
    system: Any = None, tools: Any = None,
) -> Usage:
    """The most a request can bill: the upper bound of its input and all of `max_tokens` (or the default)
    as output. Budgets reserve it before sending, and a call whose real usage never arrives is charged it."""
    output_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else default_output_tokens
    input_tokens = estimate_input_tokens(messages_or_prompt if messages_or_prompt is not None else "",
                                         system=system, tools=tools)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def estimate_cost(
    model: str,
    messages_or_prompt: Any,
    max_tokens: int | None = None,
    *,
    provider: str | None = None,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    service_tier: str | None = None,
    at: datetime | None = None,
    price_book: PriceBook | None = None,
) -> Estimate:
    """Worst-case cost of a call before it is sent: input upper bound + all of `max_tokens` as output."""
    input_tokens = estimate_input_tokens(messages_or_prompt)
    output_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else default_output_tokens
    book = price_book or default_price_book()
    cost = book.compute_cost(
        provider, model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), service_tier=service_tier, at=at
    )
    return Estimate(input_tokens, output_tokens, cost)

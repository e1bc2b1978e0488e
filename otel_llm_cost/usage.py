"""`Usage`: one normalised token count, built from each provider's own way of counting.

The normalised form (what every field means here):

* ``input_tokens``: ALL input, cached reads, cache writes and audio included.
* ``cache_read_tokens``, ``cache_write_5m_tokens``, ``cache_write_1h_tokens``, ``input_audio_tokens``:
  subsets of ``input_tokens``. ``cache_write_5m_tokens`` holds writes at the provider's standard
  cache-write rate (Anthropic's and Bedrock's 5-minute TTL, and OpenAI's writes, which have one rate).
* ``output_tokens``: ALL output, reasoning and audio included.
* ``reasoning_tokens``, ``output_audio_tokens``: subsets of ``output_tokens``.
* ``web_search_requests``: server-side tool calls billed per request, not per token.
* ``input_image_tokens``: a subset of ``input_tokens`` (images given to an image model, which has its own rate).
* Units that are not tokens, for operations billed by them: ``audio_seconds`` (whisper-1 transcription and
  translation), ``input_characters`` (tts-1 speech), ``rerank_searches`` (Cohere rerank search units) and
  ``images`` of size and quality ``image_kind`` (dall-e, e.g. ``"hd/1024x1792"``).

How each provider counts, and so what the functions below add or keep:

========== ===================================================== ======================================
provider   subsets of a reported total                           added on top of a reported total
========== ===================================================== ======================================
OpenAI     ``cached_tokens``, ``cache_write_tokens`` ⊂ prompt/input, ``reasoning_tokens``
           ⊂ completion/output, ``audio_tokens`` ⊂ both
Anthropic  ``cache_creation.ephemeral_{5m,1h}`` ⊂                ``cache_read_input_tokens`` and
           ``cache_creation_input_tokens``                       ``cache_creation_input_tokens`` are
                                                                 added to ``input_tokens``
Gemini     ``cachedContentTokenCount`` ⊂ ``promptTokenCount``,   ``thoughtsTokenCount`` is billed as
           audio ``promptTokensDetails`` ⊂ prompt                output on top of candidates;
                                                                 ``toolUsePromptTokenCount`` is input
Bedrock    ``cacheDetails[ttl]`` ⊂ ``cacheWriteInputTokens``     cache reads and writes are added to
                                                                 ``inputTokens``, which excludes them
Cohere v2  bill ``billed_units``, never ``tokens``
Mistral    ``prompt_tokens_details.cached_tokens`` ⊂ prompt
========== ===================================================== ======================================

A malformed payload (missing or ``None`` totals, strings, negatives, subsets larger than their total)
never raises out of these functions: it yields a `Usage` with ``complete=False`` holding whatever
could be read, so the caller can flag the cost as uncertain instead of crashing the host app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from otel_llm_cost._shapes import dig

__all__ = [
    "Usage",
    "usage_from_openai_chat",
    "usage_from_openai_responses",
    "usage_from_openai_embeddings",
    "usage_from_anthropic_messages",
    "usage_from_gemini",
    "usage_from_bedrock_converse",
    "usage_from_cohere_chat",
    "usage_from_mistral_chat",
    "usage_from_ollama",
    "usage_from_litellm",
    "usage_from_cohere_embed",
    "usage_from_cohere_rerank",
    "usage_from_openai_tokens",
    "usage_from_audio_seconds",
    "usage_from_api",
    "USAGE_PARSERS",
]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    web_search_requests: int = 0
    input_image_tokens: int = 0
    audio_seconds: Decimal = Decimal(0)
    input_characters: int = 0
    rerank_searches: int = 0
    images: int = 0
    image_kind: str = ""
    complete: bool = True

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in _COUNTS},
                     image_kind=self.image_kind or other.image_kind, complete=self.complete and other.complete)

    def times(self, count: int) -> Usage:
        """The usage of `count` calls like this one (unanswered attempts, each charged the worst case)."""
        return Usage(**{name: getattr(self, name) * count for name in _COUNTS}, image_kind=self.image_kind,
                     complete=self.complete)

    def checked(self) -> Usage:
        """Clamp subsets to their totals; a clamp marks the usage incomplete."""
        input_subsets = self.cache_read_tokens + self.cache_write_tokens
        problems = (
            input_subsets > self.input_tokens
            or self.input_audio_tokens > self.input_tokens
            or self.input_image_tokens > self.input_tokens
            or self.reasoning_tokens + self.output_audio_tokens > self.output_tokens
        )
        if not problems:
            return self
        return replace(
            self,
            input_tokens=max(self.input_tokens, input_subsets, self.input_audio_tokens, self.input_image_tokens),
            output_tokens=max(self.output_tokens, self.reasoning_tokens + self.output_audio_tokens),
            complete=False,
        )


_COUNTS: tuple[str, ...] = tuple(f.name for f in fields(Usage) if f.name not in ("image_kind", "complete"))
"""The fields that are counts: what adding two usages or multiplying one adds up or multiplies."""

MAX_PLAUSIBLE_TOKENS = 100_000_000
"""No single call reads or writes more tokens than this: ten times the largest context window sold
(10M) and hundreds of times any output limit. A larger count (`1e308`, `10**12`) is a malformed
report, not usage, and believing it would exhaust a budget for good."""


class _Reader:
    """Reads counts from a dict or an SDK object, noting anything malformed instead of raising."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = True

    def count(self, payload: Any, *path: str, required: bool = False) -> int:
        value = dig(payload, *path)
        if type(value) is int and 0 <= value <= MAX_PLAUSIBLE_TOKENS:  # the common case, first
            return value
        if value is None:
            if required:
                self.complete = False
            return 0
        if isinstance(value, bool):
            self.complete = False
            return 0
        if isinstance(value, int) and 0 <= value <= MAX_PLAUSIBLE_TOKENS:
            return int(value)
        if isinstance(value, float) and 0 <= value <= MAX_PLAUSIBLE_TOKENS and value.is_integer():
            return int(value)
        self.complete = False
        return 0

    def build(self, **counts: int) -> Usage:
        return Usage(complete=self.complete, **counts).checked()


def _first(payload: Any, *names: str) -> Any:
    """The first present field among spellings (camelCase REST, snake_case SDK)."""
    for name in names:
        value = dig(payload, name)
        if value is not None:
            return value
    return None


def _invalid_payload(payload: Any) -> bool:
    return payload is None or isinstance(payload, (str, bytes, int, float, bool, list, tuple))


def _parser(read_fields: Callable[[_Reader, Any], Usage]) -> Callable[[Any], Usage]:
    """One parser per API, sharing the guard: a payload that is not an object or mapping is incomplete."""

    @functools.wraps(read_fields)
    def parse(usage: Any) -> Usage:
        if _invalid_payload(usage):
            return Usage(complete=False)
        return read_fields(_Reader(), usage)

    return parse


@_parser
def usage_from_openai_chat(read: _Reader, usage: Any) -> Usage:
    """OpenAI Chat Completions `usage`: cached, cache writes and audio ⊂ prompt; reasoning, audio ⊂ completion."""
    return read.build(
        input_tokens=read.count(usage, "prompt_tokens", required=True),
        cache_read_tokens=read.count(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write_5m_tokens=read.count(usage, "prompt_tokens_details", "cache_write_tokens"),
        input_audio_tokens=read.count(usage, "prompt_tokens_details", "audio_tokens"),
        output_tokens=read.count(usage, "completion_tokens", required=True),
        reasoning_tokens=read.count(usage, "completion_tokens_details", "reasoning_tokens"),
        output_audio_tokens=read.count(usage, "completion_tokens_details", "audio_tokens"),
    )


@_parser
def usage_from_openai_responses(read: _Reader, usage: Any) -> Usage:
    """OpenAI Responses `usage`: cached and cache writes ⊂ input_tokens, reasoning ⊂ output_tokens."""
    return read.build(
        input_tokens=read.count(usage, "input_tokens", required=True),
        cache_read_tokens=read.count(usage, "input_tokens_details", "cached_tokens"),
        cache_write_5m_tokens=read.count(usage, "input_tokens_details", "cache_write_tokens"),
        output_tokens=read.count(usage, "output_tokens", required=True),
        reasoning_tokens=read.count(usage, "output_tokens_details", "reasoning_tokens"),
    )


@_parser
def usage_from_openai_embeddings(read: _Reader, usage: Any) -> Usage:
    """OpenAI Embeddings `usage`: input only."""
    return read.build(input_tokens=read.count(usage, "prompt_tokens", required=True))


@_parser
def usage_from_anthropic_messages(read: _Reader, usage: Any) -> Usage:
    """Anthropic Messages `usage`: cache reads and writes are ADDED to `input_tokens`.

    `cache_creation` splits the writes by TTL; without it every write is a 5-minute write (the default).
    With server-side compaction, the top-level counts are the last step's only and `iterations` lists
    every step (compaction and message) the call billed: the usage is their sum.
    """
    iterations = dig(usage, "iterations")
    if isinstance(iterations, (list, tuple)) and iterations:
        steps = [usage_from_anthropic_messages(step) for step in iterations]
        total = functools.reduce(lambda a, b: a + b, steps)
        return replace(total, web_search_requests=read.count(usage, "server_tool_use", "web_search_requests"))
    uncached = read.count(usage, "input_tokens", required=True)
    cache_read = read.count(usage, "cache_read_input_tokens")
    cache_write = read.count(usage, "cache_creation_input_tokens")
    write_1h = read.count(usage, "cache_creation", "ephemeral_1h_input_tokens")
    write_5m = read.count(usage, "cache_creation", "ephemeral_5m_input_tokens")
    if write_5m + write_1h > cache_write:
        cache_write = write_5m + write_1h  # the split is the more detailed report; trust it
    return read.build(
        input_tokens=uncached + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write - write_1h,
        cache_write_1h_tokens=write_1h,
        output_tokens=read.count(usage, "output_tokens", required=True),
        web_search_requests=read.count(usage, "server_tool_use", "web_search_requests"),
    )


def _gemini_audio(read: _Reader, details: Any) -> int:
    if not isinstance(details, (list, tuple)):
        return 0
    total = 0
    for item in details:
        modality = _first(item, "modality")
        modality = getattr(modality, "value", modality)
        if isinstance(modality, str) and modality.upper() == "AUDIO":
            total += read.count(item, "tokenCount") or read.count(item, "token_count")
    return total


@_parser
def usage_from_gemini(read: _Reader, usage: Any) -> Usage:
    """Gemini `usageMetadata` (REST camelCase) or `usage_metadata` (SDK snake_case).

    Thoughts are billed as output on top of candidates; tool-use prompt tokens are input on top of
    the prompt; cached content is a subset of the prompt.
    """
    snake = dig(usage, "prompt_token_count") is not None or dig(usage, "candidates_token_count") is not None

    def field(camel: str, snake_name: str, required: bool = False) -> int:
        return read.count(usage, snake_name if snake else camel, required=required)

    prompt = field("promptTokenCount", "prompt_token_count", required=True)
    tool_prompt = field("toolUsePromptTokenCount", "tool_use_prompt_token_count")
    candidates = field("candidatesTokenCount", "candidates_token_count")
    thoughts = field("thoughtsTokenCount", "thoughts_token_count")
    details = dig(usage, "prompt_tokens_details" if snake else "promptTokensDetails")
    return read.build(
        input_tokens=prompt + tool_prompt,
        cache_read_tokens=field("cachedContentTokenCount", "cached_content_token_count"),
        input_audio_tokens=_gemini_audio(read, details),
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
    )


@_parser
def usage_from_bedrock_converse(read: _Reader, usage: Any) -> Usage:
    """Bedrock Converse `usage`: `inputTokens` EXCLUDES the cache; `cacheDetails` splits writes by TTL."""
    uncached = read.count(usage, "inputTokens", required=True)
    cache_read = read.count(usage, "cacheReadInputTokens")
    cache_write = read.count(usage, "cacheWriteInputTokens")
    write_1h = 0
    details = dig(usage, "cacheDetails")
    if isinstance(details, (list, tuple)):
        write_1h = sum(read.count(d, "inputTokens") for d in details if dig(d, "ttl") == "1h")
    cache_write = max(cache_write, write_1h)
    return read.build(
        input_tokens=uncached + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write - write_1h,
        cache_write_1h_tokens=write_1h,
        output_tokens=read.count(usage, "outputTokens", required=True),
    )


@_parser
def usage_from_cohere_chat(read: _Reader, usage: Any) -> Usage:
    """Cohere v2 chat `usage`: bill `billed_units`; `tokens` includes unbilled template tokens."""
    return read.build(
        input_tokens=read.count(usage, "billed_units", "input_tokens", required=True),
        output_tokens=read.count(usage, "billed_units", "output_tokens", required=True),
    )


@_parser
def usage_from_mistral_chat(read: _Reader, usage: Any) -> Usage:
    """Mistral chat `usage`: OpenAI-like; cached tokens, when reported, are a subset of the prompt."""
    return read.build(
        input_tokens=read.count(usage, "prompt_tokens", required=True),
        cache_read_tokens=read.count(usage, "prompt_tokens_details", "cached_tokens"),
        output_tokens=read.count(usage, "completion_tokens", required=True),
    )


@_parser
def usage_from_openai_tokens(read: _Reader, usage: Any) -> Usage:
    """OpenAI image generation (gpt-image-1) and token-billed transcription (gpt-4o-transcribe) `usage`:
    `input_tokens` (audio ones in `input_token_details`, image ones in `input_tokens_details`) and
    `output_tokens`."""
    return read.build(
        input_tokens=read.count(usage, "input_tokens", required=True),
        input_audio_tokens=read.count(usage, "input_token_details", "audio_tokens"),
        input_image_tokens=read.count(usage, "input_tokens_details", "image_tokens"),
        output_tokens=read.count(usage, "output_tokens", required=True),
    )


MAX_PLAUSIBLE_AUDIO_SECONDS = 1_000_000
"""Eleven days: far beyond what an audio endpoint accepts (25 MB a file)."""


def usage_from_audio_seconds(seconds: Any) -> Usage:
    """A call billed by the length of its audio (whisper-1 reports `{"type": "duration", "seconds": 42.5}`)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not 0 <= seconds <= MAX_PLAUSIBLE_AUDIO_SECONDS:
        return Usage(complete=False)
    return Usage(audio_seconds=Decimal(str(seconds)))


@_parser
def usage_from_cohere_embed(read: _Reader, meta: Any) -> Usage:
    """Cohere v2 embed `meta`: the billed input tokens (an embedding writes none)."""
    return read.build(input_tokens=read.count(meta, "billed_units", "input_tokens", required=True))


@_parser
def usage_from_cohere_rerank(read: _Reader, meta: Any) -> Usage:
    """Cohere v2 rerank `meta`: the billed search units."""
    return read.build(rerank_searches=read.count(meta, "billed_units", "search_units", required=True))


@_parser
def usage_from_litellm(read: _Reader, usage: Any) -> Usage:
    """LiteLLM's `Usage`, OpenAI-shaped for every provider: cached reads in `prompt_tokens_details`, and
    cache writes (Anthropic, Bedrock) as `cache_creation_tokens` there or `cache_creation_input_tokens`
    beside it, all a subset of `prompt_tokens`."""
    writes = read.count(usage, "prompt_tokens_details", "cache_creation_tokens") or \
        read.count(usage, "cache_creation_input_tokens")
    return read.build(
        input_tokens=read.count(usage, "prompt_tokens", required=True),
        cache_read_tokens=read.count(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write_5m_tokens=writes,
        output_tokens=read.count(usage, "completion_tokens", required=True),
        reasoning_tokens=read.count(usage, "completion_tokens_details", "reasoning_tokens"),
    )


@_parser
def usage_from_ollama(read: _Reader, response: Any) -> Usage:
    """Ollama's native API: `prompt_eval_count` tokens read, `eval_count` tokens written (embeddings
    write none). Both are on the response, or on a stream's last chunk (`done: true`). Ollama leaves
    `prompt_eval_count` out when the whole prompt came from its cache: then nothing was read."""
    return read.build(
        input_tokens=read.count(response, "prompt_eval_count"),
        output_tokens=read.count(response, "eval_count"),
    )


USAGE_PARSERS: dict[str, Callable[[Any], Usage]] = {
    "openai.chat": usage_from_openai_chat,
    "openai.responses": usage_from_openai_responses,
    "openai.embeddings": usage_from_openai_embeddings,
    "anthropic.messages": usage_from_anthropic_messages,
    "gemini.generate_content": usage_from_gemini,
    "bedrock.converse": usage_from_bedrock_converse,
    "cohere.chat": usage_from_cohere_chat,
    "cohere.embed": usage_from_cohere_embed,
    "cohere.rerank": usage_from_cohere_rerank,
    "openai.tokens": usage_from_openai_tokens,
    "mistral.chat": usage_from_mistral_chat,
    "ollama": usage_from_ollama,
    "litellm": usage_from_litellm,
}


def usage_from_api(api: str, payload: Any) -> Usage | None:
    """Normalise `payload` for a named API; None when the API name is unknown."""
    if isinstance(payload, Usage):
        return payload
    parser = USAGE_PARSERS.get(api)
    return parser(payload) if parser is not None else None

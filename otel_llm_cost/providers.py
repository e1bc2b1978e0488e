"""Which provider an OpenAI-compatible client is really talking to, read from its base URL.

Pure functions, no telemetry. The hosts come from genai-prices' own provider `api_pattern`s (about 50
providers, kept current by that library), not from a table of ours. The span's provider is the
semantic-conventions name where there is one, and genai-prices' id otherwise. A loopback server on
port 11434 is Ollama. Any other host (a corporate gateway, vLLM, LM Studio) stays `openai`, and is
then priced only for models OpenAI sells: an unknown model there is unknown, never guessed.
`OTEL_LLM_COST_PROVIDERS` adds or overrides hosts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = ["Route", "route_for_url", "route_of", "semconv_provider", "reported_cost", "believable_cost", "reported_cost_header",
           "OLLAMA_PORT"]

SEMCONV_NAMES: Final[dict[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "aws": "aws.bedrock",
    "google": "gcp.gemini",
    "groq": "groq",
    "deepseek": "deepseek",
    "x-ai": "x_ai",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "moonshotai": "moonshot_ai",
    "ibm": "ibm.watsonx.ai",
}
"""genai-prices provider id -> `gen_ai.provider.name` (OTel GenAI semantic conventions)."""

OLLAMA_PORT: Final = 11434
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


@dataclass(frozen=True, slots=True)
class Route:
    """Where a client sends its requests: the provider to price and name, and `server.*` attributes."""

    provider: str
    host: str | None = None
    port: int | None = None


def semconv_provider(provider_id: str) -> str:
    """The span name of a provider given by genai-prices id or semconv name (`x-ai` -> `x_ai`)."""
    key = provider_id.strip().lower()
    return SEMCONV_NAMES.get(key, key)


def route_for_url(url: str, overrides: Mapping[str, str] = {}, default: str = "openai") -> Route:  # noqa: B006
    """The route of a base URL. `overrides` maps `host` or `host:port` to a provider, and wins."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower() or None
        port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    except ValueError:
        return Route(default)
    if host is None:
        return Route(default)
    chosen = overrides.get(f"{host}:{port}") or overrides.get(host)
    if chosen:
        return Route(semconv_provider(chosen), host, port)
    if host in _LOOPBACK and port == OLLAMA_PORT:
        return Route("ollama", host, port)
    return Route(_provider_of_url(f"{parts.scheme}://{parts.netloc}{parts.path}", default), host, port)


@functools.lru_cache(maxsize=256)
def route_of(base_url: str, overrides: tuple[tuple[str, str], ...] = (), default: str = "openai") -> Route:
    """`route_for_url`, cached: what a wrapper calls on every request, with the OTEL_LLM_COST_PROVIDERS
    pairs as settings hold them."""
    return route_for_url(base_url, dict(overrides), default)


COST_HEADERS: Final = ("x-litellm-response-cost",)
"""Response headers in which a gateway reports what the call cost, in USD."""


def reported_cost(value: Any) -> Decimal | None:
    """A cost a provider or gateway reports, if it is an amount of USD at all: a finite, non-negative
    number (`-0` is 0). Never raises, whatever the payload holds (a 400-digit integer, `NaN`, `"1e308"`);
    whether the amount is believable next to our own price is the caller's rule (`believable_cost`)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int):
            amount = Decimal(value)
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        elif isinstance(value, str):
            amount = Decimal(value.strip())
        else:
            return None
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if not amount.is_finite() or amount < 0 or not math.isfinite(float(amount)):  # spans hold it as a double
        return None
    return amount + 0 if amount else Decimal(0)  # `-0` and `0E-12` are plain 0


def believable_cost(reported: Decimal, local: Decimal | None, max_ratio: Decimal) -> bool:
    """Section 9's plausibility rule: a reported amount is used only if it is no more than `max_ratio`
    times our own price for the same usage, where we have one."""
    return local is None or reported <= local * max_ratio


def reported_cost_header(headers: Any) -> Decimal | None:
    if headers is None:
        return None
    for name in COST_HEADERS:
        try:
            value = headers.get(name)
        except Exception:
            return None
        if value is not None:
            return reported_cost(value)
    return None


@functools.lru_cache(maxsize=1024)
def _provider_of_url(url: str, default: str) -> str:
    from genai_prices import data_snapshot

    try:
        provider = data_snapshot.get_snapshot().find_provider(None, None, url)
    except LookupError:
        return default
    if provider.id == "google" and "aiplatform.googleapis.com" in url:
        return "gcp.vertex_ai"
    return semconv_provider(provider.id)

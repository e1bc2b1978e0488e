"""What a wrapper reads from a response or a stream (`Outcome`), and how a stream is read item by item
(`StreamAccumulator`): the vocabulary the call lifecycle and the stream proxy share, in a module of its
own so that imports flow one way: SDK wrappers -> `_call` -> `_stream` -> here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from otel_llm_cost.usage import Usage

__all__ = ["Outcome", "StreamAccumulator"]


@dataclass(slots=True)
class Outcome:
    """What a wrapper read from the response (or the end of a stream)."""

    usage: Usage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    service_tier: str | None = None
    estimated: bool = False
    provider_cost: Decimal | None = None
    """The cost the response itself reports (OpenRouter's `usage.cost`): it wins over our own price."""
    estimate_unreported: bool = False
    """The API reports no input count for this operation (Gemini API embeddings, Hugging Face's text
    generation): estimate the input from the request, keep any output count read, and mark it
    estimated, rather than leave a billed call unpriced."""
    fallback_cost: Decimal | None = None
    fallback_source: str = ""
    """A cost computed by someone else's price table (LiteLLM's): used only when we know no price."""


class StreamAccumulator(Protocol):
    def observe(self, item: Any) -> bool:
        """Read one stream item; return False to hide it from the app (our injected usage chunk)."""

    def outcome(self, complete: bool) -> Outcome:
        """Usage and response fields so far; `complete` is False when the stream ended early."""

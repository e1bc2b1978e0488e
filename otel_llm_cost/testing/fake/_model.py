"""What the fake provider is told to report (`ModelBehaviour`), the faults it can inject, and the state
its server keeps; shared by every wire format."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelBehaviour", "Fault"]


@dataclass
class ModelBehaviour:
    """What the fake reports for one model. `input_tokens=None` counts the prompt (4 characters a token)."""

    input_tokens: int | None = None
    output_tokens: int = 12
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    chunks: int = 4
    service_tier: str | None = None
    text: str = "Hello from the fake provider."
    null_stream_usage: bool = False
    """The final chunk of an OpenAI stream that asked for usage carries `"usage": null` (some servers)."""
    usage_cost: float | None = None
    """OpenRouter: `usage.cost`, the call's cost in USD credits, on every response and final chunk."""
    byok_upstream_cost: float | None = None
    """OpenRouter with your own provider key: `is_byok` and `cost_details.upstream_inference_cost`."""
    cost_header: str | None = None
    """A LiteLLM proxy: `x-litellm-response-cost` on the response."""
    final_chunk_usage: bool = False
    """Together, Fireworks, Cerebras: a stream's final (finish) chunk carries `usage`, unasked; their SDKs
    do not even take `stream_options`."""
    groq_stream_usage: bool = False
    """Groq: a stream's final chunk carries `x_groq.usage`, unasked."""
    compaction_steps: list[tuple[int, int]] | None = None
    """Anthropic server-side compaction: (input, output) of each step; the top-level usage is the last
    step's only, and `usage.iterations` lists them all, as the API reports it."""
    output_only_delta: bool = False
    """Anthropic streams: `message_delta` usage carries output_tokens only (the SDK then has None for the
    rest), as many API versions send it."""
    web_searches: int = 0
    """OpenAI Responses: `web_search_call` items in the output, each billed per call."""
    embed_tokens: int | None = None
    """Gemini API embeddings: the `usageMetadata.promptTokenCount` newer models report (None: no usage)."""
    traffic_type: str | None = None
    """Vertex AI: `usageMetadata.trafficType` (ON_DEMAND_FLEX for Flex PayGo)."""


@dataclass
class Fault:
    """A fault for the next `times` requests: an HTTP status, malformed JSON, a cut stream, or a delay."""

    status: int | None = None
    malformed: bool = False
    cut_after_chunks: int | None = None
    delay: float = 0.0
    times: int = 1
    body: Any = None
    """Send this JSON body (status 200) instead of the normal response: for malformed shapes."""
    html: bool = False
    """Answer 200 with an HTML page, as a captive portal or a misrouted proxy does."""
    reset_mid_body: bool = False
    """Send the headers and half of a JSON body, then reset the connection."""


@dataclass
class _State:
    behaviours: dict[str, ModelBehaviour] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0
    keep_bodies: bool = True
    reject_stream_options: bool = False
    downloads: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """GET path -> (body, content type): batch objects, batch output files, Message Batch results."""


class _CutStream(Exception):
    """Raised inside the handler to drop the connection mid-stream."""


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps(
        [body.get(k) for k in ("messages", "input", "system", "contents", "prompt") if body.get(k) is not None]
    )
    return max(1, len(text) // 4)


def _split(text: str, chunks: int) -> list[str]:
    """`text` in `chunks` pieces (repeating it when more chunks than characters are asked for)."""
    chunks = max(1, chunks)
    if len(text) < chunks:
        text = (text + " ") * (chunks // max(1, len(text)) + 1)
    size = len(text) // chunks
    pieces = [text[i * size:(i + 1) * size] for i in range(chunks - 1)]
    pieces.append(text[(chunks - 1) * size:])
    return pieces


def _error_body(status: int) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": f"fake provider injected HTTP {status}", "code": kind}}

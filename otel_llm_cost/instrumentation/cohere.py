"""Cohere (`cohere` >= 5): the v2 client's `chat`, `chat_stream`, `embed` and `rerank`, sync and async.

Knows the cohere SDK's shapes and nothing else. Cohere bills `usage.billed_units`; `usage.tokens`
also counts the prompt template, which is not billed (see `usage_from_cohere_chat`). A stream's
`message-end` event carries the finish reason and the usage. `chat_stream` is a generator (and the
async one an async generator), so the request goes out when the app starts iterating: the budget is
reserved when the app calls it, before anything is sent.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks, streaming
from otel_llm_cost.instrumentation._refusal import Answer, ErrorBase, json_body, refusal_id, sse
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import field, given_int, given_str, text
from otel_llm_cost.usage import Usage, usage_from_cohere_chat, usage_from_cohere_embed, usage_from_cohere_rerank

__all__ = ["CohereInstrumentor"]


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    return Request(
        operation="chat",
        provider="cohere",
        api="cohere.chat",
        model=given_str(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=given_int(kwargs.get("max_tokens")),
        prompt=kwargs.get("messages"),
        tools=kwargs.get("tools"),
    )


def _finish(reason: Any) -> tuple[str, ...]:
    return (reason,) if isinstance(reason, str) else ()


def _read_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    return Outcome(
        usage=usage_from_cohere_chat(usage) if usage is not None else None,
        response_id=text(response, "id"),
        finish_reasons=_finish(field(response, "finish_reason")),
    )


def _message_end(event: Any) -> Any:
    """The `message-end` event's delta (finish reason and usage), or None for every other event."""
    return field(event, "delta") if text(event, "type") == "message-end" else None


_EVENTS = UsageChunks(
    read_chunk=lambda event: _read_response(_message_end(event)),
    has_usage=lambda event: field(_message_end(event), "usage") is not None,
    finish_reasons=lambda event: _finish(field(_message_end(event), "finish_reason")),
)
def _answer(request: Request, refusal: str) -> Answer:
    """A refused v2 chat: one assistant text, `COMPLETE`, zero billed units; streamed as its events."""
    tokens = {"input_tokens": 0, "output_tokens": 0}
    usage = {"billed_units": tokens, "tokens": tokens}
    message_id = refusal_id()
    if not request.stream:
        return json_body({"id": message_id, "finish_reason": "COMPLETE", "usage": usage,
                          "message": {"role": "assistant", "content": [{"type": "text", "text": refusal}]}})
    return sse((event["type"], event) for event in (
        {"type": "message-start", "id": message_id, "delta": {"message": {"role": "assistant", "content": []}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": refusal}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}},
    ))


CHAT = Endpoint(_read_request, _read_response, answer_refusal=_answer)
CHAT_STREAM = Endpoint(streaming(_read_request), _read_response, _EVENTS, answer_refusal=_answer)

_MODULE = "cohere.v2.client"


def _read_embed_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    texts = kwargs.get("texts") or kwargs.get("inputs")
    return Request(operation="embeddings", provider="cohere", api="cohere.embed", model=given_str(kwargs.get("model")),
                   kwargs=kwargs, max_tokens=0, prompt=texts if isinstance(texts, (str, list)) else None)


def _read_embed_response(response: Any) -> Outcome:
    meta = field(response, "meta")
    return Outcome(usage=usage_from_cohere_embed(meta) if field(meta, "billed_units") is not None else None,
                   response_id=text(response, "id"))


EMBED = Endpoint(_read_embed_request, _read_embed_response)


def _read_rerank_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    """Rerank bills search units: a query over up to 100 documents is one (longer documents are split)."""
    documents = kwargs.get("documents")
    searches = -(-len(documents) // 100) if isinstance(documents, (list, tuple)) and documents else 1
    return Request(operation="rerank", provider="cohere", api="cohere.rerank", model=given_str(kwargs.get("model")),
                   kwargs=kwargs, max_tokens=0, units=Usage(rerank_searches=searches))


def _read_rerank_response(response: Any) -> Outcome:
    meta = field(response, "meta")
    return Outcome(usage=usage_from_cohere_rerank(meta) if field(meta, "billed_units") is not None else None,
                   response_id=text(response, "id"))


RERANK = Endpoint(_read_rerank_request, _read_rerank_response)


class CohereInstrumentor(LLMInstrumentor):
    """Cost spans for the `cohere` SDK's v2 chat and embed (`ClientV2`, and `Client().v2`)."""

    dependencies = ("cohere >= 5.0",)
    error_base = ErrorBase("cohere.core.api_error:ApiError", lambda refusal: {
        "status_code": None, "body": str(refusal), "headers": None})
    targets = (
        Target(_MODULE, "V2Client.chat", CHAT),
        Target(_MODULE, "AsyncV2Client.chat", CHAT, is_async=True),
        Target(_MODULE, "V2Client.chat_stream", CHAT_STREAM),
        # an async generator function: calling it sends nothing and returns the stream at once
        Target(_MODULE, "AsyncV2Client.chat_stream", CHAT_STREAM),
        Target(_MODULE, "V2Client.embed", EMBED),
        Target(_MODULE, "AsyncV2Client.embed", EMBED, is_async=True),
        Target(_MODULE, "V2Client.rerank", RERANK),
        Target(_MODULE, "AsyncV2Client.rerank", RERANK, is_async=True),
    )

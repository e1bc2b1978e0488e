"""Mistral (`mistralai` >= 1): `chat.complete` and `chat.stream`, sync and async.

Knows the mistralai SDK's shapes and nothing else. Usage is OpenAI-like (cached tokens, when
reported, are a subset of the prompt) and arrives on a stream's last chunk without being asked for.
Each stream item is an event whose `data` is the chunk. The tier billed is the one `usage` reports.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks, streaming
from otel_llm_cost.instrumentation._refusal import Answer, ErrorBase
from otel_llm_cost.instrumentation.openai import answer_chat
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import choice_finish_reasons, field, given_int, given_str, text
from otel_llm_cost.usage import usage_from_mistral_chat

__all__ = ["MistralInstrumentor"]


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    return Request(
        operation="chat",
        provider="mistral_ai",
        api="mistral.chat",
        model=given_str(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=given_int(kwargs.get("max_tokens")),
        service_tier=given_str(kwargs.get("service_tier")),
        prompt=kwargs.get("messages"),
        tools=kwargs.get("tools"),
    )


def _read_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    return Outcome(
        usage=usage_from_mistral_chat(usage) if usage is not None else None,
        response_model=text(response, "model"),
        response_id=text(response, "id"),
        finish_reasons=choice_finish_reasons(response),
        service_tier=text(usage, "service_tier"),
    )


_CHUNKS = UsageChunks(
    _read_response,
    has_usage=lambda chunk: field(chunk, "usage") is not None,
    finish_reasons=choice_finish_reasons,
    chunk_of=lambda event: field(event, "data"),
)
def _read_embeddings_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    inputs = kwargs.get("inputs")
    return Request(operation="embeddings", provider="mistral_ai", api="mistral.chat",
                   model=given_str(kwargs.get("model")), kwargs=kwargs, max_tokens=0,
                   prompt=inputs if isinstance(inputs, (str, list)) else None)


def _answer(request: Request, refusal: str) -> Answer | None:
    """Mistral's messages have no refusal field: a call that asks for a JSON schema (`chat.parse`) is
    refused as `raise`, never answered with text its parser would reject or drop."""
    response_format = request.kwargs.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else getattr(response_format, "type", None)
    return None if kind == "json_schema" else answer_chat(request, refusal)


COMPLETE = Endpoint(_read_request, _read_response, answer_refusal=_answer)
EMBEDDINGS = Endpoint(_read_embeddings_request, _read_response)
STREAM = Endpoint(streaming(_read_request), _read_response, _CHUNKS, answer_refusal=_answer)

_MODULE = "mistralai.client.chat"


class MistralInstrumentor(LLMInstrumentor):
    """Cost spans for the `mistralai` SDK's chat API."""

    dependencies = ("mistralai >= 1.0",)
    error_base = ErrorBase("mistralai.client.errors:MistralError|mistralai.models:SDKError", lambda refusal: {
        "message": str(refusal), "status_code": 402, "body": "", "headers": {}, "raw_response": None})
    targets = (
        Target(_MODULE, "Chat.complete", COMPLETE),
        Target(_MODULE, "Chat.complete_async", COMPLETE, is_async=True),
        Target(_MODULE, "Chat.stream", STREAM),
        Target(_MODULE, "Chat.stream_async", STREAM, is_async=True),
        Target("mistralai.client.embeddings", "Embeddings.create", EMBEDDINGS),
        Target("mistralai.client.embeddings", "Embeddings.create_async", EMBEDDINGS, is_async=True),
    )

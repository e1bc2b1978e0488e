"""Google GenAI (`google-genai`): `models.generate_content` and `generate_content_stream`, sync and async.

Knows the google-genai SDK's shapes and nothing else. We wrap the SDK's per-request methods
(`Models._generate_content` and `_generate_content_stream`), not the public ones: with automatic
function calling or automatic continuation one public call sends several requests, and the response
it returns carries the usage of the LAST request only. Wrapping each request prices every one of them
and checks the budget before each is sent. Gemini usage: thoughts are billed as output on top of
candidates; cached content is a subset of the prompt (see `usage_from_gemini`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks, streaming
from otel_llm_cost.instrumentation._refusal import Answer, Direct, ErrorBase, refusal_id
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import count, field, given_int, text
from otel_llm_cost.usage import Usage, usage_from_gemini

__all__ = ["GoogleGenAIInstrumentor"]


def _provider(instance: Any) -> str:
    client = getattr(instance, "_api_client", None)
    return "gcp.vertex_ai" if getattr(client, "vertexai", False) is True else "gcp.gemini"


def model_name(model: Any) -> str | None:
    """`gemini-2.5-flash` from `models/...` or `publishers/google/models/...`; tuned models stay as given."""
    if not isinstance(model, str) or not model:
        return None
    if model.startswith("tunedModels/"):
        return model
    return model.rsplit("models/", 1)[-1]


def _config(config: Any, snake: str, camel: str) -> Any:
    """A field of `GenerateContentConfig` or of the dict the app passed instead (either spelling)."""
    value = field(config, snake)
    return field(config, camel) if value is None and isinstance(config, dict) else value


def _enum_text(value: Any) -> str | None:
    """The SDK's enums (`FinishReason.STOP`, `ServiceTier.FLEX`) as the wire string, lower-cased; also
    the gapic clients' proto-plus enums, whose values are numbers (`_gemini_gapic`)."""
    if isinstance(value, enum.Enum):
        value = value.value if isinstance(value.value, str) else value.name
    if not isinstance(value, str) or not value or value.endswith("_UNSPECIFIED"):  # proto-plus' unset default
        return None
    return value.lower()


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    config = kwargs.get("config")
    return Request(
        operation="chat",
        provider=_provider(instance),
        api="gemini.generate_content",
        model=model_name(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=given_int(_config(config, "max_output_tokens", "maxOutputTokens")),
        service_tier=_enum_text(_config(config, "service_tier", "serviceTier")),
        prompt=kwargs.get("contents"),
        system=_config(config, "system_instruction", "systemInstruction"),
        tools=_config(config, "tools", "tools"),
    )


def finish_reasons(response: Any) -> tuple[str, ...]:
    candidates = field(response, "candidates")
    if not isinstance(candidates, Sequence) or isinstance(candidates, str):  # a list, or proto-plus' repeated
        return ()
    return tuple(r for c in candidates if (r := _enum_text(field(c, "finish_reason"))) is not None)


def read_response(response: Any) -> Outcome:
    usage = field(response, "usage_metadata")
    return Outcome(
        usage=usage_from_gemini(usage) if usage is not None else None,
        response_model=model_name(text(response, "model_version")),
        response_id=text(response, "response_id"),
        finish_reasons=finish_reasons(response),
        service_tier=_enum_text(field(usage, "service_tier")) or _TRAFFIC_TIERS.get(
            _enum_text(field(usage, "traffic_type")) or ""),
    )


_TRAFFIC_TIERS = {"on_demand_flex": "flex", "on_demand_priority": "priority"}
"""Vertex AI says which pay-as-you-go tier billed a call in `usageMetadata.trafficType`: Flex PayGo
costs half the standard rate, Priority PayGo more."""

def _answer(request: Request, refusal: str) -> Answer:
    """A refused generateContent: one model turn, `STOP`, zero usage (a stream of one chunk). Built by
    the SDK's own converter rather than served as a body: its async client may send through aiohttp,
    a transport we do not answer for."""
    from google.genai import types

    response = types.GenerateContentResponse._from_response(response={
        "candidates": [{"content": {"role": "model", "parts": [{"text": refusal}]}, "finish_reason": "STOP",
                        "index": 0}],
        "usage_metadata": {"prompt_token_count": 0, "candidates_token_count": 0, "total_token_count": 0},
        "model_version": request.model or "", "response_id": refusal_id()}, kwargs={})
    return Direct((chunk for chunk in (response,)) if request.stream else response)


GENERATE_CONTENT = Endpoint(_read_request, read_response, answer_refusal=_answer)
# Every chunk repeats `usage_metadata`, cumulatively; a candidate's finish reason ends the call.
_CONTENT_STREAM = UsageChunks(read_response, lambda chunk: field(chunk, "usage_metadata") is not None, finish_reasons)
GENERATE_CONTENT_STREAM = Endpoint(streaming(_read_request), read_response, _CONTENT_STREAM, answer_refusal=_answer)

def _read_embed_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    request = _read_request(instance, args, kwargs)
    request.operation, request.api, request.max_tokens = "embeddings", "gemini.embed_content", 0
    return request


def _read_embed_response(response: Any) -> Outcome:
    """The count the response reports wins: the Gemini API's `usage_metadata.prompt_token_count` (newer
    embedding models send it), or Vertex AI's per-embedding `statistics.token_count`. Only when neither
    is there is the input estimated from the request, and marked estimated."""
    reported = count(field(response, "usage_metadata"), "prompt_token_count")
    if reported is not None:
        return Outcome(usage=Usage(input_tokens=reported))
    embeddings = field(response, "embeddings")
    counts = [field(field(e, "statistics"), "token_count") for e in embeddings or ()]
    if counts and all(isinstance(c, (int, float)) for c in counts):
        return Outcome(usage=Usage(input_tokens=int(sum(counts))))
    return Outcome(estimate_unreported=True)


EMBED_CONTENT = Endpoint(_read_embed_request, _read_embed_response)

_MODULE = "google.genai.models"


class GoogleGenAIInstrumentor(LLMInstrumentor):
    """Cost spans for the `google-genai` SDK (Gemini API and Vertex AI), one per request sent."""

    dependencies = ("google-genai >= 1.0",)
    error_base = ErrorBase("google.genai.errors:APIError", lambda refusal: {
        "code": 402, "status": "BUDGET_EXCEEDED", "message": str(refusal), "details": {}, "response": None})
    targets = (
        Target(_MODULE, "Models._generate_content", GENERATE_CONTENT),
        Target(_MODULE, "Models.embed_content", EMBED_CONTENT),
        Target(_MODULE, "AsyncModels.embed_content", EMBED_CONTENT, is_async=True),
        Target(_MODULE, "AsyncModels._generate_content", GENERATE_CONTENT, is_async=True),
        Target(_MODULE, "Models._generate_content_stream", GENERATE_CONTENT_STREAM),
        Target(_MODULE, "AsyncModels._generate_content_stream", GENERATE_CONTENT_STREAM, is_async=True),
    )

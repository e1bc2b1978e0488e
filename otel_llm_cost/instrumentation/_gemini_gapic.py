"""Gemini through Google's generated (gapic) clients: what the legacy `google-generativeai` SDK and the
Vertex AI SDK (`vertexai.generative_models`) share.

Both send every request through a generated client's `generate_content` / `stream_generate_content`
(the Gemini API's `GenerativeServiceClient`, Vertex AI's `PredictionServiceClient`), over gRPC or REST,
sync or async, whatever the SDK's public method (`GenerativeModel.generate_content`, chat sessions,
automatic function calling). Wrapping the generated client counts each request sent, once. Its request
and response are proto-plus messages with the same fields as google-genai's types, so the response is
read by `google_genai`'s reader; only enums differ (proto-plus enums are named, not valued, by a string).
"""

from __future__ import annotations

import importlib
from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Request, UsageChunks, streaming
from otel_llm_cost.instrumentation._instrumentor import Target
from otel_llm_cost.instrumentation._read import field, given
from otel_llm_cost.instrumentation._refusal import Answer, Direct, ErrorBase, refusal_id
from otel_llm_cost.instrumentation.google_genai import finish_reasons, model_name, read_response

__all__ = ["gapic_targets", "GOOGLE_API_ERROR"]

GOOGLE_API_ERROR = ErrorBase("google.api_core.exceptions:GoogleAPICallError", lambda refusal: {
    "message": str(refusal), "_errors": [], "_details": [], "_response": None, "_error_info": None})
"""A refusal raised into the app: google-api-core's base of every API error (its retry predicates name
subclasses only: ServiceUnavailable, ResourceExhausted...)."""


def _request_reader(provider: str) -> Any:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        sent = args[0] if args else kwargs.get("request")
        model = field(sent, "model") if sent is not None else kwargs.get("model")
        config = field(sent, "generation_config")
        max_tokens = field(config, "max_output_tokens")
        return Request(
            operation="chat",
            provider=provider,
            api="gemini.generate_content",
            model=model_name(model),
            kwargs=kwargs,
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            prompt=given(field(sent, "contents") if sent is not None else kwargs.get("contents")),
            system=field(sent, "system_instruction") or None,
            tools=field(sent, "tools") or None,
            model_key=None,  # inside a request message: a fallback model cannot be put there
        )

    return read


def _answer_builder(types_module: str) -> Any:
    """A refused request: one model turn, `STOP`, zero usage, as the generated client's own message."""

    def answer(request: Request, refusal: str) -> Answer:
        message = importlib.import_module(types_module).GenerateContentResponse
        fields: dict[str, Any] = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": refusal}]}, "finish_reason": "STOP",
                            "index": 0}],
            "usage_metadata": {"prompt_token_count": 0, "candidates_token_count": 0, "total_token_count": 0},
            "model_version": request.model or "", "response_id": refusal_id()}
        response = message(**{name: value for name, value in fields.items() if name in message.meta.fields})
        return Direct((chunk for chunk in (response,)) if request.stream else response)

    return answer


# every chunk carries `usage_metadata` (a proto-plus message is never None): the last one holds the totals
_STREAM = UsageChunks(read_response, lambda chunk: True, finish_reasons)


def gapic_targets(provider: str, package: str, service: str, versions: tuple[str, ...]) -> tuple[Target, ...]:
    """`generate_content` and `stream_generate_content` of the generated `service` (`generative_service`),
    sync and async, in each API version of `package` (`google.ai.generativelanguage_{version}`)."""
    read = _request_reader(provider)
    cls = "".join(part.title() for part in service.split("_"))  # generative_service -> GenerativeService
    targets: list[Target] = []
    for version in versions:
        root = package.format(version=version)
        answer = _answer_builder(f"{root}.types")
        plain = Endpoint(read, read_response, answer_refusal=answer)
        stream = Endpoint(streaming(read), read_response, _STREAM, answer_refusal=answer)
        for module, name, is_async in ((f"{root}.services.{service}.client", f"{cls}Client", False),
                                       (f"{root}.services.{service}.async_client", f"{cls}AsyncClient", True)):
            targets += [Target(module, f"{name}.generate_content", plain, is_async=is_async),
                        Target(module, f"{name}.stream_generate_content", stream, is_async=is_async)]
    return tuple(targets)

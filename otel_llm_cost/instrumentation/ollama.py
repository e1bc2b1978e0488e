"""Ollama (`ollama` SDK): `chat`, `generate` and `embed`, sync and async, streams included, on a
`Client` / `AsyncClient` and through the module-level `ollama.chat(...)` helpers.

Usage is Ollama's own: `prompt_eval_count` read and `eval_count` written, on the response or on a
stream's final chunk (`done: true`). A local model has no price unless the user gives one
(`set_pricing("llama3.2", 0, 0)` says local is free); until then its cost is unknown, never $0.
"""

from __future__ import annotations

from datetime import UTC, datetime

from typing import Any

from otel_llm_cost import _state
from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks
from otel_llm_cost.instrumentation._refusal import Answer, ErrorBase, json_body, ndjson
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import field, given, given_int, given_str, text
from otel_llm_cost.providers import route_of
from otel_llm_cost.usage import usage_from_ollama

__all__ = ["OllamaInstrumentor"]

# operation, the positional parameters after `model`, and the field that holds the prompt
_SHAPES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "chat": ("chat", ("messages",), "messages"),
    "generate": ("text_completion", ("prompt",), "prompt"),
    "embed": ("embeddings", ("input",), "input"),
    "embeddings": ("embeddings", ("prompt",), "prompt"),  # the older API, deprecated but still served
}


def _request_reader(method: str) -> Any:
    operation, positional, prompt_field = _SHAPES[method]

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        named = dict(zip(("model", *positional), args))
        named.update(kwargs)
        client = getattr(instance, "_client", None)
        route = route_of(str(getattr(client, "base_url", "")), _state.settings().providers, "ollama")
        options = given(named.get("options"))
        return Request(
            operation=operation,
            provider=route.provider,
            api="ollama",
            model=given_str(named.get("model")),
            kwargs=kwargs,
            max_tokens=0 if method == "embed" else given_int(field(options, "num_predict")),
            stream=given(named.get("stream")) is True,
            prompt=given(named.get(prompt_field)),
            system=given(named.get("system")),
            tools=given(named.get("tools")),
            server_address=route.host,
            server_port=route.port,
        )

    return read


def _read_response(response: Any) -> Outcome:
    reason = text(response, "done_reason")
    return Outcome(
        usage=usage_from_ollama(response) if field(response, "done") is not False else None,
        response_model=text(response, "model"),
        finish_reasons=(reason,) if reason else (),
    )


_CHUNKS = UsageChunks(
    _read_response,
    has_usage=lambda chunk: field(chunk, "done") is True,
    finish_reasons=lambda chunk: (text(chunk, "done_reason") or "stop",) if field(chunk, "done") is True else (),
)

def _answer(request: Request, refusal: str) -> Answer | None:
    """A refused chat or generate: the text, `done` with reason `stop` and zero counts; streamed as
    one content line and a closing `done` line."""
    if request.operation == "embeddings":
        return None
    text_field = ({"message": {"role": "assistant", "content": refusal}} if request.operation == "chat"
                  else {"response": refusal})
    empty = ({"message": {"role": "assistant", "content": ""}} if request.operation == "chat" else {"response": ""})
    base = {"model": request.model or "", "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    done = {"done": True, "done_reason": "stop", "total_duration": 0, "load_duration": 0, "prompt_eval_count": 0,
            "prompt_eval_duration": 0, "eval_count": 0, "eval_duration": 0}
    if not request.stream:
        return json_body({**base, **text_field, **done})
    return ndjson([{**base, **text_field, "done": False}, {**base, **empty, **done}])


def _read_legacy_embeddings(response: Any) -> Outcome:
    """`/api/embeddings` answers with the vector alone: the input is estimated from the prompt, marked
    estimated, never left free."""
    return Outcome(response_model=text(response, "model"), estimate_unreported=True)


ENDPOINTS = {method: Endpoint(_request_reader(method), _read_legacy_embeddings if method == "embeddings" else
                              _read_response, _CHUNKS if operation != "embeddings" else None, answer_refusal=_answer)
             for method, (operation, _, _) in _SHAPES.items()}


class OllamaInstrumentor(LLMInstrumentor):
    """Cost spans for the `ollama` SDK."""

    dependencies = ("ollama >= 0.4",)
    error_base = ErrorBase("ollama:ResponseError", lambda refusal: {"error": str(refusal), "status_code": 402})
    targets = tuple(
        target
        for method, endpoint in ENDPOINTS.items()
        for target in (
            Target("ollama._client", f"Client.{method}", endpoint),
            Target("ollama._client", f"AsyncClient.{method}", endpoint, is_async=True),
            # `ollama.chat` & co. are bound to a default Client when `ollama` is imported: wrapped apart
            Target("ollama", method, endpoint),
        )
    )

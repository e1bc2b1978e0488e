"""xAI's SDK (`xai-sdk`), which speaks gRPC: a chat's `sample`, `parse`, `defer` (and their `_batch`
forms), `stream` and `stream_batch`, sync and async.

Knows xai-sdk's shapes and nothing else. The request is the chat's own request message (`chat.proto`:
model, messages, max_tokens, tools). Usage is the response's `SamplingUsage`: the prompt count includes
the cached part (`cached_prompt_text_tokens`), and reasoning tokens are billed as output on top of
`completion_tokens`. When the server reports the call's cost (`cost_in_usd_ticks`, 1e-10 USD a tick),
that cost is the provider-reported cost, checked against our price like any other.

A stream yields `(response, chunk)` pairs, the response accumulating as chunks arrive (its usage is the
last chunk's, cumulative); the response is read once, at the end. A `_batch` call's n responses share
one proto and one usage, so the call is read once. The SDK raises grpc's errors, which carry no base
class of its own: a refusal raises a plain `BudgetExceededError` (or, under `respond`, a `sample` gets
the refusal as the model's answer).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks, streaming
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import count, field
from otel_llm_cost.instrumentation._refusal import Answer, Direct, refusal_id
from otel_llm_cost.usage import Usage

__all__ = ["XAIInstrumentor"]

_TICK = Decimal("1e-10")
_FINISH = {"REASON_STOP": "stop", "REASON_MAX_LEN": "length", "REASON_MAX_CONTEXT": "length",
           "REASON_TOOL_CALLS": "tool_calls", "REASON_TIME_LIMIT": "time_limit"}


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    sent = getattr(instance, "proto", None)
    max_tokens = field(sent, "max_tokens")
    return Request(
        operation="chat",
        provider="x_ai",
        api="openai.chat",
        model=field(sent, "model") or None,
        kwargs=kwargs,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        prompt=[message for message in field(sent, "messages") or ()],
        tools=[tool for tool in field(sent, "tools") or ()] or None,
        model_key=None,  # inside the chat's request message
    )


def _response_of(result: Any) -> Any:
    """The `Response` in what a method returns: itself, `parse`'s (response, parsed), a batch's list,
    or a stream item's (response or responses, chunk or chunks)."""
    while isinstance(result, (tuple, list)) and result:
        result = result[0]
    return result


def _count(usage: Any, name: str) -> int:
    return count(usage, name) or 0


def _read_response(result: Any) -> Outcome:
    response = _response_of(result)
    proto = getattr(response, "proto", None)
    usage = field(proto, "usage")
    if usage is None:
        return Outcome()
    reported = None
    has_field = getattr(usage, "HasField", None)
    if has_field is not None and has_field("cost_in_usd_ticks"):
        reported = _count(usage, "cost_in_usd_ticks") * _TICK
    reasoning = _count(usage, "reasoning_tokens")
    return Outcome(
        usage=Usage(input_tokens=_count(usage, "prompt_tokens"), cache_read_tokens=_count(usage, "cached_prompt_text_tokens"),
                    output_tokens=_count(usage, "completion_tokens") + reasoning, reasoning_tokens=reasoning),
        response_model=field(proto, "model") or None,
        response_id=field(proto, "id") or None,
        finish_reasons=_finish_reasons(response),
        provider_cost=reported,
    )


def _finish_reasons(response: Any) -> tuple[str, ...]:
    try:
        reason = response.finish_reason  # the enum's name ("REASON_STOP"); REASON_INVALID until it ends
    except Exception:  # noqa: BLE001 - a response without outputs (a cut stream)
        return ()
    return (_FINISH[reason],) if reason in _FINISH else ()


def _answer(request: Request, refusal: str) -> Answer | None:
    """A refused `sample`: one assistant message, stopped, zero usage, as the SDK's own `Response`."""
    if request.stream:
        return None
    from xai_sdk.chat import Response
    from xai_sdk.proto import chat_pb2, sample_pb2

    output = chat_pb2.CompletionOutput(finish_reason=sample_pb2.REASON_STOP, index=0,
                                       message=chat_pb2.CompletionMessage(content=refusal, role=2))  # assistant
    return Direct(Response(chat_pb2.GetChatCompletionResponse(id=refusal_id(), model=request.model or "",
                                                               outputs=[output]), 0))


SAMPLE = Endpoint(_read_request, _read_response, answer_refusal=_answer)
_READ_ONLY = Endpoint(_read_request, _read_response)
STREAM = Endpoint(streaming(_read_request), _read_response,
                  UsageChunks(_read_response, lambda item: True, lambda item: _finish_reasons(_response_of(item))))

_METHODS = {"sample": SAMPLE, "sample_batch": _READ_ONLY, "parse": _READ_ONLY, "defer": SAMPLE,
            "defer_batch": _READ_ONLY, "stream": STREAM, "stream_batch": STREAM}


class XAIInstrumentor(LLMInstrumentor):
    """Cost spans for xAI's gRPC SDK, priced at genai-prices' xAI rates (or the cost xAI reports)."""

    dependencies = ("xai-sdk >= 1.0",)
    targets = tuple(
        Target(f"xai_sdk.{side}.chat", f"Chat.{method}", endpoint,
               # the async streams are async generator functions: called, they return the stream at once
               is_async=side == "aio" and endpoint is not STREAM)
        for side in ("sync", "aio") for method, endpoint in _METHODS.items())

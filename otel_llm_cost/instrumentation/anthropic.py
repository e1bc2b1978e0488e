"""Anthropic: `messages.create` (plain and `stream=True`) and the `messages.stream(...)` helper.

Knows the Anthropic SDK's shapes and nothing else. Stream usage: `message_start` carries the input
and cache counts; `message_delta` usage is cumulative, so it REPLACES what it repeats, never adds.
The client says where Claude runs: `AnthropicBedrock` (and its Mantle variant) bills at Bedrock's
rates, `AnthropicVertex` at Vertex AI's, with the regional-endpoint premium unless its region is
`global`, and `AnthropicFoundry` (Claude in Microsoft Foundry) is `azure.ai.inference`, at the rates
Azure lists for Claude.
"""

from __future__ import annotations

import logging
import functools
from collections.abc import Callable
from typing import Any

from otel_llm_cost._log import exception_once
from otel_llm_cost.instrumentation._call import (
    CallContext,
    Endpoint,
    Outcome,
    Request,
    estimated_usage,
    read_request,
    run_async,
    run_sync,
    streaming,
)
from otel_llm_cost.instrumentation._batch import (
    BatchRecorder,
    BatchRequest,
    BatchResult,
    RecordingIterator,
    admit_wrapper,
    batch_worst_case,
    results_wrapper,
)
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._refusal import Answer, generated_client_error, aws_event_stream, json_body, refusal_id, sse
from otel_llm_cost.instrumentation._read import as_dict, field, given, given_int, given_str, text
from otel_llm_cost.providers import Route, route_for_url
from otel_llm_cost.usage import usage_from_anthropic_messages

__all__ = ["AnthropicInstrumentor"]

_logger = logging.getLogger(__name__)


def _where(instance: Any) -> tuple[Route, bool]:
    """The provider the client's class names (`anthropic` itself, Bedrock, Vertex or Foundry), the server it
    sends to, and whether that is a regional Vertex endpoint."""
    client = getattr(instance, "_client", None)
    return _where_of(type(client).__name__, str(getattr(client, "base_url", "")), str(getattr(client, "region", "")))


@functools.lru_cache(maxsize=128)
def _where_of(client_class: str, base_url: str, region: str) -> tuple[Route, bool]:
    server = route_for_url(base_url, default="anthropic")
    if "Bedrock" in client_class:
        return Route("aws.bedrock", server.host, server.port), False
    if "Vertex" in client_class:
        return Route("gcp.vertex_ai", server.host, server.port), region not in ("", "global")
    if "Foundry" in client_class:
        return Route("azure.ai.inference", server.host, server.port), False
    return Route("anthropic", server.host, server.port), False


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    route, regional = _where(instance)
    return Request(
        operation="chat",
        provider=route.provider,
        server_address=route.host,
        server_port=route.port,
        regional=regional,
        api="anthropic.messages",
        model=given_str(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=given_int(kwargs.get("max_tokens")),
        stream=given(kwargs.get("stream")) is True,
        prompt=given(kwargs.get("messages")),
        system=given(kwargs.get("system")),
        tools=given(kwargs.get("tools")),
    )


def _read_response(message: Any) -> Outcome:
    usage = field(message, "usage")
    stop = text(message, "stop_reason")
    return Outcome(
        usage=usage_from_anthropic_messages(usage) if usage is not None else None,
        response_model=text(message, "model"),
        response_id=text(message, "id"),
        finish_reasons=(stop,) if stop else (),
        service_tier=text(usage, "service_tier"),
    )


class _MessagesStream:
    __slots__ = ("_request", "_usage", "_model", "_id", "_stop", "_tier", "_deltas", "_final")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._usage: dict[str, Any] = {}
        self._model: str | None = None
        self._id: str | None = None
        self._stop: str | None = None
        self._tier: str | None = None
        self._deltas = 0
        self._final = False

    def observe(self, event: Any) -> bool:
        kind = text(event, "type")
        if kind == "message_start":
            message = field(event, "message")
            self._model, self._id = text(message, "model"), text(message, "id")
            usage = field(message, "usage")
            self._usage = as_dict(usage)
            self._tier = text(usage, "service_tier")
        elif kind == "content_block_delta":
            self._deltas += 1
        elif kind == "message_delta":
            # cumulative: replace what it repeats, never add; a field it leaves out (None in the SDK's
            # MessageDeltaUsage) keeps message_start's count
            self._usage.update({k: v for k, v in as_dict(field(event, "usage")).items() if v is not None})
            self._stop = text(field(event, "delta"), "stop_reason") or self._stop
            self._final = True
        return True

    def outcome(self, complete: bool) -> Outcome:
        finish = (self._stop,) if self._stop else ()
        if self._final:
            usage = usage_from_anthropic_messages(self._usage)
            return Outcome(usage, self._model, self._id, finish, self._tier)
        if self._usage:  # cut short after message_start: input is exact, output is what we saw
            start = usage_from_anthropic_messages({**self._usage, "output_tokens": self._deltas})
            return Outcome(start, self._model, self._id, finish, self._tier, estimated=True)
        return Outcome(usage=estimated_usage(self._request, self._deltas), estimated=True)


def _answer(request: Request, refusal: str) -> Answer:
    """A refused Messages call: one text block, `end_turn`, zero usage; streamed as the API streams it
    (server-sent events, or Bedrock's event stream for `AnthropicBedrock`). A call that asks for a schema
    (`parse(output_format=...)`, `output_config.format`) gets the API's own refusal, `stop_reason:
    "refusal"` with no text to parse, since the SDK validates every text block against the schema."""
    usage = {"input_tokens": 0, "output_tokens": 0}
    schema = _asks_for_schema(request.kwargs)
    stop = "refusal" if schema else "end_turn"
    content = [] if schema else [{"type": "text", "text": refusal}]
    message = {"id": refusal_id(), "type": "message", "role": "assistant", "model": request.model or "",
               "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not request.stream:
        return json_body(message)
    text_block = [] if schema else [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": refusal}},
        {"type": "content_block_stop", "index": 0},
    ]
    events = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
        *text_block,
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
         "usage": {"output_tokens": 0}},
        {"type": "message_stop"},
    ]
    if request.provider == "aws.bedrock":
        return aws_event_stream((("chunk", event) for event in events), wrap_in_bytes=True)
    return sse((event["type"], event) for event in events)


def _asks_for_schema(kwargs: dict[str, Any]) -> bool:
    config = kwargs.get("output_config")
    return _given(kwargs.get("output_format")) or isinstance(config, dict) and _given(config.get("format"))


def _given(value: Any) -> bool:
    """Set, and not the SDK's `omit`/`NOT_GIVEN` placeholder."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


MESSAGES = Endpoint(_read_request, _read_response, _MessagesStream, answer_refusal=_answer)
STREAM_HELPER = Endpoint(streaming(_read_request), _read_response, _MessagesStream, answer_refusal=_answer)


def _stream_helper_wrapper(is_async: bool) -> Callable[[CallContext], Callable[..., Any]]:
    """`messages.stream()` sends from its manager's `__enter__`, not through `create`.

    We let the SDK build its manager, then swap the request it will send at `__enter__` for one that
    runs our lifecycle around it, so the budget is checked before sending and the raw event stream
    (which `get_final_message()` also reads) passes through our proxy. The request is the manager's
    private `__api_request`, named after its class (`MessageStreamManager`, `BetaAsyncMessageStreamManager`...).
    """

    def factory(ctx: CallContext) -> Callable[..., Any]:
        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            manager = wrapped(*args, **kwargs)
            request = read_request(ctx, STREAM_HELPER, instance, args, kwargs)
            if request is None:
                return manager
            manager_attr = f"_{type(manager).__name__}__api_request"
            try:
                original = getattr(manager, manager_attr)
            except AttributeError:
                exception_once(_logger, "anthropic-stream-manager", "otel-llm-cost: unknown MessageStreamManager shape")
                return manager
            if is_async:

                async def send_async() -> Any:
                    async def send() -> Any:
                        return await original

                    return await run_async(ctx, STREAM_HELPER, request, send)

                setattr(manager, manager_attr, send_async())
            else:
                setattr(manager, manager_attr, lambda: run_sync(ctx, STREAM_HELPER, request, original))
            return manager

        return wrapper

    return factory


def _batch_item(item: Any) -> BatchResult | None:
    """One line of a Message Batch's results: only a `succeeded` request is billed."""
    result = field(item, "result")
    if text(result, "type") != "succeeded":
        return None
    message = field(result, "message")
    return BatchResult(str(text(item, "custom_id")), "chat", text(message, "model"), _read_response(message))


def _adopt_batch_results(ctx: CallContext, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                         result: Any) -> Any:
    batch_id = kwargs.get("message_batch_id") or (args[0] if args else "unknown")
    route, _ = _where(instance)
    return RecordingIterator(result, BatchRecorder(ctx, route.provider, "anthropic.messages", str(batch_id)),
                             _batch_item)


def _batch_worst_case(ctx: CallContext, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The worst case of `messages.batches.create(requests=[{custom_id, params}, ...])`."""
    requests = given(kwargs.get("requests"))
    if not isinstance(requests, (list, tuple)):
        return None
    route, _ = _where(instance)
    return batch_worst_case(ctx, route.provider, [
        BatchRequest(given_str(field(params, "model")), given(field(params, "messages")),
                     given_int(field(params, "max_tokens")), given(field(params, "system")), given(field(params, "tools")))
        for params in (field(item, "params") for item in requests)])


_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages")
_BATCHES_MODULE = "anthropic.resources.messages.batches"


class AnthropicInstrumentor(LLMInstrumentor):
    """Cost spans for the `anthropic` SDK, next to (and parent of) its own built-in spans: `messages` and
    `beta.messages`, each with `create`, `parse` (structured outputs, which sends without `create`) and
    the `stream()` helper."""

    dependencies = ("anthropic >= 1.0",)  # 0.x Stream types reject any proxy in isinstance()
    error_base = generated_client_error("anthropic")
    targets = tuple(
        target
        for module in _MODULES
        for target in (
            Target(module, "Messages.create", MESSAGES),
            Target(module, "AsyncMessages.create", MESSAGES, is_async=True),
            Target(module, "Messages.parse", MESSAGES),
            Target(module, "AsyncMessages.parse", MESSAGES, is_async=True),
            Target(module, "Messages.stream", wrapper_factory=_stream_helper_wrapper(is_async=False)),
            Target(module, "AsyncMessages.stream", wrapper_factory=_stream_helper_wrapper(is_async=True)),
        )
    ) + (
        # Message Batches: each succeeded result priced at the batch rate as the app reads it
        Target(_BATCHES_MODULE, "Batches.results",
               wrapper_factory=results_wrapper(_adopt_batch_results, is_async=False)),
        Target(_BATCHES_MODULE, "AsyncBatches.results",
               wrapper_factory=results_wrapper(_adopt_batch_results, is_async=True)),
        # creating a batch whose worst case would pass a budget is refused before it is sent
        Target(_BATCHES_MODULE, "Batches.create", wrapper_factory=admit_wrapper(_batch_worst_case, is_async=False)),
        Target(_BATCHES_MODULE, "AsyncBatches.create",
               wrapper_factory=admit_wrapper(_batch_worst_case, is_async=True)),
    )


"""Amazon Bedrock through boto3 and aiobotocore: the `bedrock-runtime` client's `converse`,
`converse_stream`, `invoke_model` and `invoke_model_with_response_stream`.

Knows botocore's shapes and nothing else. boto3 builds its client classes at run time, so there is no
`converse` method to wrap ahead of time: we wrap `BaseClient._make_api_call`, through which every
operation of every client goes, and pass everything but these four operations straight through.

Usage: Converse reports it in Bedrock's own shape, where `inputTokens` EXCLUDES cache reads and
writes (see `usage_from_bedrock_converse`). InvokeModel bodies are each model family's own format,
so we read the counts Bedrock adds for every family instead: the `X-Amzn-Bedrock-*-Token-Count`
response headers, or a stream's closing `amazon-bedrock-invocationMetrics`, in the same
cache-excluding arithmetic. We never read (and so never consume) an InvokeModel response body.
The service tier billed is the one the response reports.
"""

from __future__ import annotations

from dataclasses import replace

import json
from collections.abc import Callable
from typing import Any

from otel_llm_cost.instrumentation._call import (
    CallContext,
    Endpoint,
    Outcome,
    Request,
    estimated_usage,
    read_request,
    run_async,
    run_sync,
)
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._refusal import Answer, ErrorBase, aws_event_stream, json_body
from otel_llm_cost.instrumentation._read import field, given_int, given_str, text
from otel_llm_cost.usage import usage_from_bedrock_converse

__all__ = ["BedrockInstrumentor"]

_SERVICE = "bedrock-runtime"


def _model_id(model_id: Any) -> str | None:
    """`us.anthropic.claude-...` from an inference-profile or foundation-model ARN; ids stay as given."""
    if not isinstance(model_id, str) or not model_id:
        return None
    return model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id


def _params(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    if client.meta.service_model.service_name != _SERVICE:
        return None
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return params if isinstance(params, dict) else None


def _request(params: dict[str, Any], kwargs: dict[str, Any], operation: str = "chat", **fields: Any) -> Request:
    """What every Bedrock runtime request shares; the operation's own fields come in `fields`."""
    return Request(operation=operation, provider="aws.bedrock", api="bedrock.converse",
                   model=_model_id(params.get("modelId")), kwargs=params, model_key="modelId", **fields)


def _is_embedding(params: dict[str, Any]) -> bool:
    """An embedding model (`amazon.titan-embed-text-v2:0`, `cohere.embed-english-v3`) writes no tokens."""
    model = params.get("modelId")
    return isinstance(model, str) and "embed" in model.rsplit("/", 1)[-1]


def _read_request(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    params = _params(client, args, kwargs)
    if params is None:
        return None
    return _request(
        params,
        kwargs,
        max_tokens=given_int(field(params.get("inferenceConfig"), "maxTokens")),
        stream=args[0] == "ConverseStream",
        service_tier=text(params.get("serviceTier"), "type"),
        prompt=params.get("messages"),
        system=params.get("system"),
        tools=params.get("toolConfig"),
    )


def _read_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    stop = text(response, "stopReason")
    return Outcome(
        usage=usage_from_bedrock_converse(usage) if usage is not None else None,
        response_id=text(field(response, "ResponseMetadata"), "RequestId"),
        finish_reasons=(stop,) if stop else (),
        service_tier=text(field(response, "serviceTier"), "type"),
    )


class _ConverseStream:
    """Events are one-key dicts. `messageStop` carries the stop reason; the closing `metadata`
    event carries the usage and the service tier."""

    __slots__ = ("_request", "_metadata", "_stop", "_deltas")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._metadata: Any = None
        self._stop: str | None = None
        self._deltas = 0

    def observe(self, event: Any) -> bool:
        if type(event) is not dict:
            return True
        if "contentBlockDelta" in event:
            self._deltas += 1
        elif "messageStop" in event:
            self._stop = text(event["messageStop"], "stopReason")
        elif "metadata" in event:
            self._metadata = event["metadata"]
        return True

    def outcome(self, complete: bool) -> Outcome:
        finish = (self._stop,) if self._stop else ()
        usage = field(self._metadata, "usage")
        if usage is None:
            return Outcome(usage=estimated_usage(self._request, self._deltas), finish_reasons=finish, estimated=True)
        tier = text(field(self._metadata, "serviceTier"), "type")
        return Outcome(usage=usage_from_bedrock_converse(usage), finish_reasons=finish, service_tier=tier)


def _answer_converse(request: Request, refusal: str) -> Answer:
    """A refused Converse call: one assistant text, `end_turn`, zero usage; ConverseStream's events."""
    usage = {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    if not request.stream:
        return json_body({"output": {"message": {"role": "assistant", "content": [{"text": refusal}]}},
                          "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 0}})
    return aws_event_stream([
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": refusal}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": usage, "metrics": {"latencyMs": 0}}),
    ])


CONVERSE = Endpoint(_read_request, _read_response, _ConverseStream, stream_key="stream", answer_refusal=_answer_converse)


# --- InvokeModel: the body is the model family's own format; the counts are Bedrock's ---


def _invoke_body(params: dict[str, Any]) -> dict[str, Any]:
    """The request body as JSON, when the app passed bytes or a string (a file object is left unread)."""
    body = params.get("body")
    if isinstance(body, (bytes, bytearray, str)) and len(body) < 8_000_000:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _read_invoke_request(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    params = _params(client, args, kwargs)
    if params is None:
        return None
    body = _invoke_body(params)
    return _request(
        params,
        kwargs,
        # Anthropic and Mistral `max_tokens`, Meta `max_gen_len`, Nova and Titan nested limits
        max_tokens=given_int(body.get("max_tokens"), body.get("max_gen_len"),
                             field(body.get("inferenceConfig"), "max_new_tokens"),
                             field(body.get("textGenerationConfig"), "maxTokenCount")),
        stream=args[0] == "InvokeModelWithResponseStream",
        service_tier=given_str(params.get("serviceTier")),
        prompt=body.get("messages") or body.get("prompt") or body.get("inputText") or params.get("body"),
        system=body.get("system"),
        tools=body.get("tools"),
    )


_COUNT_HEADERS = {
    "inputTokens": "x-amzn-bedrock-input-token-count",
    "outputTokens": "x-amzn-bedrock-output-token-count",
    "cacheReadInputTokens": "x-amzn-bedrock-cache-read-input-token-count",
    "cacheWriteInputTokens": "x-amzn-bedrock-cache-write-input-token-count",
}
_METRIC_COUNTS = {
    "inputTokens": "inputTokenCount",
    "outputTokens": "outputTokenCount",
    "cacheReadInputTokens": "cacheReadInputTokenCount",
    "cacheWriteInputTokens": "cacheWriteInputTokenCount",
}


def _counts(values: Any, names: dict[str, str]) -> dict[str, Any] | None:
    """Bedrock's counts in Converse's shape, or None when the model family reports none."""
    if not isinstance(values, dict) or names["inputTokens"] not in values:
        return None
    counts = {key: values[name] for key, name in names.items() if name in values}
    return {key: int(value) if isinstance(value, str) and value.isdigit() else value for key, value in counts.items()}


def _read_invoke_response(response: Any, writes: bool = True) -> Outcome:
    """`writes`: False for an embedding model, whose response carries an input count only."""
    metadata = field(response, "ResponseMetadata")
    counts = _counts(field(metadata, "HTTPHeaders"), _COUNT_HEADERS)
    if counts is not None and not writes:
        counts.setdefault("outputTokens", 0)
    return Outcome(
        usage=usage_from_bedrock_converse(counts) if counts is not None else None,
        response_id=text(metadata, "RequestId"),
        service_tier=text(response, "serviceTier"),
    )


_METRICS_MARKER = b"amazon-bedrock-invocationMetrics"


class _InvokeStream:
    """`{"chunk": {"bytes": ...}}` events; only the closing chunk, which carries Bedrock's
    invocation metrics, is parsed."""

    __slots__ = ("_request", "_metrics", "_chunks")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._metrics: Any = None
        self._chunks = 0

    def observe(self, event: Any) -> bool:
        data = field(field(event, "chunk"), "bytes")
        if isinstance(data, bytes):
            self._chunks += 1
            if _METRICS_MARKER in data:
                try:
                    self._metrics = json.loads(data).get(_METRICS_MARKER.decode())
                except (ValueError, AttributeError):
                    pass
        return True

    def outcome(self, complete: bool) -> Outcome:
        counts = _counts(self._metrics, _METRIC_COUNTS)
        if counts is None:
            return Outcome(usage=estimated_usage(self._request, self._chunks), estimated=True)
        return Outcome(usage=usage_from_bedrock_converse(counts))


def _read_embedding_request(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    """InvokeModel of an embedding model (`_endpoint` routes it here): Titan `inputText`, Cohere `texts`."""
    params = _params(client, args, kwargs)
    if params is None:
        return None
    body = _invoke_body(params)
    return _request(params, kwargs, operation="embeddings", max_tokens=0,
                    prompt=body.get("inputText") or body.get("texts") or params.get("body"))


INVOKE_MODEL = Endpoint(_read_invoke_request, _read_invoke_response, _InvokeStream, stream_key="body")
INVOKE_EMBEDDING = Endpoint(_read_embedding_request, lambda response: _read_invoke_response(response, writes=False))

_ENDPOINTS = {
    "Converse": CONVERSE,
    "ConverseStream": CONVERSE,
    "InvokeModel": INVOKE_MODEL,
    "InvokeModelWithResponseStream": INVOKE_MODEL,
}


def _endpoint(args: tuple[Any, ...]) -> Endpoint | None:
    """The endpoint of an operation (`_make_api_call(name, params)`), or None for every other AWS call."""
    endpoint = _ENDPOINTS.get(args[0]) if args else None
    if endpoint is INVOKE_MODEL and len(args) > 1 and isinstance(args[1], dict) and _is_embedding(args[1]):
        return INVOKE_EMBEDDING
    return endpoint


def _api_call_wrapper(ctx: CallContext, is_async: bool = False) -> Callable[..., Any]:
    """Routes the four Bedrock runtime operations to their endpoint; every other AWS call passes
    straight through after one dict lookup. botocore's `_make_api_call` is sync, aiobotocore's a coroutine."""

    def sync_wrapper(wrapped: Callable[..., Any], client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        endpoint = _endpoint(args)
        request = read_request(ctx, endpoint, client, args, kwargs) if endpoint is not None else None
        if request is None:
            return wrapped(*args, **kwargs)
        return run_sync(ctx, endpoint, request, lambda: wrapped(*args, **kwargs))  # type: ignore[arg-type]

    async def async_wrapper(wrapped: Callable[..., Any], client: Any, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        endpoint = _endpoint(args)
        request = read_request(ctx, endpoint, client, args, kwargs) if endpoint is not None else None
        if request is None:
            return await wrapped(*args, **kwargs)
        # aiobotocore's transport is not one a refused answer is served through: a refusal raises
        return await run_async(ctx, replace(endpoint, answer_refusal=None), request,  # type: ignore[arg-type]
                               lambda: wrapped(*args, **kwargs))

    return async_wrapper if is_async else sync_wrapper


class BedrockInstrumentor(LLMInstrumentor):
    """Cost spans for Bedrock's Converse and InvokeModel APIs through boto3 / botocore."""

    dependencies = ("botocore >= 1.34.116",)
    error_base = ErrorBase("botocore.exceptions:ClientError", lambda refusal: {
        "response": {"Error": {"Code": "BudgetExceeded", "Message": str(refusal)},
                     "ResponseMetadata": {"HTTPStatusCode": 402}},
        "operation_name": "Converse"})
    targets = (
        Target("botocore.client", "BaseClient._make_api_call", wrapper_factory=_api_call_wrapper),
        # aiobotocore's clients override it with a coroutine
        Target("aiobotocore.client", "AioBaseClient._make_api_call",
               wrapper_factory=lambda ctx: _api_call_wrapper(ctx, is_async=True)),
    )

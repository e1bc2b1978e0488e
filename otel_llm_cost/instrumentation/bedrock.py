"""Amazon Bedrock through boto3: the `bedrock-runtime` client's `converse` and `converse_stream`.

Knows botocore's shapes and nothing else. boto3 builds its client classes at run time, so there is no
`converse` method to wrap ahead of time: we wrap `BaseClient._make_api_call`, through which every
operation of every client goes, and pass everything but Bedrock's Converse operations straight
through. Usage: `inputTokens` EXCLUDES cache reads and writes (see `usage_from_bedrock_converse`).
The service tier billed is the one the response reports (`serviceTier.type`).
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, estimated_usage
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import field, given_int, text
from otel_llm_cost.usage import usage_from_bedrock_converse

__all__ = ["BedrockInstrumentor"]

_SERVICE = "bedrock-runtime"
_OPERATIONS = {"Converse": False, "ConverseStream": True}  # operation -> streams


def _model_id(model_id: Any) -> str | None:
    """`us.anthropic.claude-...` from an inference-profile or foundation-model ARN; ids stay as given."""
    if not isinstance(model_id, str) or not model_id:
        return None
    return model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id


def _read_request(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    operation = args[0] if args else kwargs.get("operation_name")
    if operation not in _OPERATIONS or client.meta.service_model.service_name != _SERVICE:
        return None
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    if not isinstance(params, dict):
        return None
    return Request(
        operation="chat",
        provider="aws.bedrock",
        api="bedrock.converse",
        model=_model_id(params.get("modelId")),
        kwargs=kwargs,
        max_tokens=given_int(field(params.get("inferenceConfig"), "maxTokens")),
        stream=_OPERATIONS[operation],
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


CONVERSE = Endpoint(_read_request, _read_response, _ConverseStream, stream_key="stream")


class BedrockInstrumentor(LLMInstrumentor):
    """Cost spans for Bedrock's Converse API through boto3 / botocore."""

    dependencies = ("botocore >= 1.34.116",)
    targets = (Target("botocore.client", "BaseClient._make_api_call", CONVERSE),)

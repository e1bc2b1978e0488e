"""The gRPC side of the fake provider: the APIs whose SDKs speak gRPC, served with each SDK's own
protobuf classes, so the bytes on the wire are what the real service sends.

* `xai_api.Chat` (xai-sdk): `GetCompletion` and the `GetCompletionChunk` stream; each chunk carries the
  usage so far (the prompt), the last the whole usage and `cost_in_usd_ticks` when asked for;
* `google.ai.generativelanguage.v1beta.GenerativeService` (google-generativeai's default transport);
* `google.cloud.aiplatform.v1` and `v1beta1` `PredictionService` (the Vertex AI SDK's async client).

A service whose SDK is not installed is not served. The server shares the HTTP fake's model behaviours
and request counts (`fake.request_count("xai_api.Chat/GetCompletion")`), and speaks plaintext HTTP/2
on loopback: clients use an insecure channel.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

from otel_llm_cost.testing.fake._model import ModelBehaviour, _split, _State

__all__ = ["GrpcFake"]


class GrpcFake:
    """Started by `FakeProvider.grpc_address` on first use; stopped with it."""

    def __init__(self, state: _State) -> None:
        import grpc

        self._state = state
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers(tuple(_handlers(grpc, self)))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)

    # --- what every service shares ---
    def counts(self, path: str, model: str, max_tokens: int) -> tuple[ModelBehaviour, int, int]:
        with self._state.lock:
            self._state.requests[path] += 1
            behaviour = self._state.behaviours.get(model) or self._state.behaviours.get("*") or ModelBehaviour()
        output = min(behaviour.output_tokens, max_tokens) if max_tokens > 0 else behaviour.output_tokens
        return behaviour, behaviour.input_tokens if behaviour.input_tokens is not None else 10, output


def _handlers(grpc: Any, fake: GrpcFake) -> Iterator[Any]:
    for service, module, methods in _SERVICES:
        name, _, attribute = module.partition(":")  # xai_sdk picks its protos by protobuf's version
        try:
            types = importlib.import_module(name)
        except ImportError:
            continue
        types = getattr(types, attribute) if attribute else types
        handlers = {}
        for method, (request_type, build, streamed) in methods.items():
            request_class = getattr(types, request_type)
            path = f"{service}/{method}"
            behaviour = _behaviour(build, fake, path, types)
            decode = getattr(request_class, "FromString", None) or request_class.deserialize
            make = grpc.unary_stream_rpc_method_handler if streamed else grpc.unary_unary_rpc_method_handler
            handlers[method] = make(behaviour, request_deserializer=decode, response_serializer=_encode)
        yield grpc.method_handlers_generic_handler(service, handlers)


def _behaviour(build: Callable[..., Any], fake: GrpcFake, path: str, types: Any) -> Callable[[Any, Any], Any]:
    def handle(request: Any, context: Any) -> Any:
        return build(fake, path, types, request)

    return handle


def _encode(message: Any) -> bytes:
    serialize = getattr(message, "SerializeToString", None)
    return serialize() if serialize is not None else type(message).serialize(message)


# --- xAI ---


def _xai_usage(types: Any, input_tokens: int, output: int, behaviour: ModelBehaviour, final: bool) -> Any:
    from xai_sdk.proto import usage_pb2

    if not final:
        return usage_pb2.SamplingUsage(prompt_tokens=input_tokens, prompt_text_tokens=input_tokens)
    usage = usage_pb2.SamplingUsage(
        prompt_tokens=input_tokens, prompt_text_tokens=input_tokens, completion_tokens=output,
        reasoning_tokens=behaviour.reasoning_tokens, cached_prompt_text_tokens=behaviour.cache_read_tokens,
        total_tokens=input_tokens + output + behaviour.reasoning_tokens)
    if behaviour.usage_cost is not None:  # xAI reports cost in ticks of 1e-10 USD
        usage.cost_in_usd_ticks = round(behaviour.usage_cost * 10**10)
    return usage


def _xai_completion(fake: GrpcFake, path: str, types: Any, request: Any) -> Any:
    from xai_sdk.proto import sample_pb2

    behaviour, input_tokens, output = fake.counts(path, request.model, request.max_tokens)
    message = types.CompletionMessage(content=behaviour.text, role=2)  # ROLE_ASSISTANT
    return types.GetChatCompletionResponse(
        id=str(uuid.uuid4()), model=request.model, usage=_xai_usage(types, input_tokens, output, behaviour, True),
        outputs=[types.CompletionOutput(finish_reason=sample_pb2.REASON_STOP, index=0, message=message)])


def _xai_chunks(fake: GrpcFake, path: str, types: Any, request: Any) -> Iterator[Any]:
    from xai_sdk.proto import sample_pb2

    behaviour, input_tokens, output = fake.counts(path, request.model, request.max_tokens)
    pieces = _split(behaviour.text, behaviour.chunks)
    response_id = str(uuid.uuid4())
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        chunk = types.CompletionOutputChunk(delta=types.Delta(content=piece, role=2), index=0,
                                            finish_reason=sample_pb2.REASON_STOP if last else 0)
        yield types.GetChatCompletionChunk(id=response_id, model=request.model, outputs=[chunk],
                                           usage=_xai_usage(types, input_tokens, output, behaviour, last))


# --- Gemini over gRPC: the Gemini API's GenerativeService and Vertex AI's PredictionService ---


def _gemini_response(types: Any, request: Any, fake: GrpcFake, path: str) -> Iterator[Any]:
    model = request.model.rsplit("models/", 1)[-1]
    behaviour, input_tokens, output = fake.counts(path, model, request.generation_config.max_output_tokens or 0)
    pieces = _split(behaviour.text, behaviour.chunks)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        usage = {"prompt_token_count": input_tokens}
        if last:
            usage.update(candidates_token_count=output, total_token_count=input_tokens + output,
                         cached_content_token_count=behaviour.cache_read_tokens)
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        if last:
            candidate["finish_reason"] = "STOP"
        yield types.GenerateContentResponse(candidates=[candidate], usage_metadata=usage, model_version=model)


def _gemini_whole(fake: GrpcFake, path: str, types: Any, request: Any) -> Any:
    chunks = list(_gemini_response(types, request, fake, path))
    last = chunks[-1]
    last.candidates[0].content.parts[0].text = "".join(c.candidates[0].content.parts[0].text for c in chunks)
    return last


def _gemini_stream(fake: GrpcFake, path: str, types: Any, request: Any) -> Iterator[Any]:
    yield from _gemini_response(types, request, fake, path)


_GEMINI_METHODS = {"GenerateContent": ("GenerateContentRequest", _gemini_whole, False),
                   "StreamGenerateContent": ("GenerateContentRequest", _gemini_stream, True)}

_SERVICES: tuple[tuple[str, str, dict[str, tuple[str, Callable[..., Any], bool]]], ...] = (
    ("xai_api.Chat", "xai_sdk.proto:chat_pb2", {
        "GetCompletion": ("GetCompletionsRequest", _xai_completion, False),
        "GetCompletionChunk": ("GetCompletionsRequest", _xai_chunks, True)}),
    ("google.ai.generativelanguage.v1beta.GenerativeService", "google.ai.generativelanguage_v1beta.types",
     _GEMINI_METHODS),
    ("google.cloud.aiplatform.v1.PredictionService", "google.cloud.aiplatform_v1.types", _GEMINI_METHODS),
    ("google.cloud.aiplatform.v1beta1.PredictionService", "google.cloud.aiplatform_v1beta1.types", _GEMINI_METHODS),
)

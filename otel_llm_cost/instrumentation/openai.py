"""OpenAI: chat completions (and the `.stream()` helper, which calls `create`), responses, embeddings.

Knows the OpenAI SDK's request and response shapes and nothing else; the lifecycle is `_call.py`.
"""

from __future__ import annotations

import contextlib
import json
import time
import weakref
from dataclasses import replace
from decimal import Decimal
from typing import Any

from otel_llm_cost import _state
from otel_llm_cost._bounded import Bounded
from otel_llm_cost.instrumentation._batch import (
    BatchRecorder,
    BatchRequest,
    BatchResult,
    admit_wrapper,
    batch_worst_case,
    results_wrapper,
)
from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, RequestReader, estimated_usage
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._refusal import Answer, generated_client_error, json_body, refusal_id, sse
from otel_llm_cost.instrumentation._read import (
    asking_stream_usage,
    choice_finish_reasons,
    field,
    given,
    given_int,
    given_str,
    text,
    upload_handle,
    wav_seconds,
)
from otel_llm_cost.providers import Route, reported_cost, route_of
from otel_llm_cost.usage import (
    Usage,
    usage_from_audio_seconds,
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
    usage_from_openai_tokens,
)

__all__ = ["OpenAIInstrumentor"]


_ROUTES: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Route]] = weakref.WeakKeyDictionary()
"""Client -> (its base URL object, the provider overrides, the route): a client keeps its host, so the
route is worked out once per client, not on every call (again if `base_url` or the overrides change)."""


def _route(instance: Any) -> Route:
    """Who the client really talks to: api.openai.com, Azure, or any OpenAI-compatible host."""
    client = getattr(instance, "_client", None)
    base_url = getattr(client, "_base_url", None) or getattr(client, "base_url", "")  # skip the property
    overrides = _state.settings().providers
    try:
        known = _ROUTES.get(client)
    except TypeError:  # not weakly referenceable: work it out every time
        known = None
    if known is not None and known[0] is base_url and known[1] is overrides:
        return known[2]
    if type(client).__name__.startswith("Azure"):
        server = route_of(str(base_url))
        route = Route("azure.ai.openai", server.host, server.port)  # the client's class says Azure, whatever the host
    else:
        route = route_of(str(base_url), overrides)
    with contextlib.suppress(TypeError):
        _ROUTES[client] = (base_url, overrides, route)
    return route


def _provider_cost(usage: Any) -> Decimal | None:
    """OpenRouter reports each call's cost in `usage.cost`; with your own key (`is_byok`) what you pay is
    that plus the upstream provider's `cost_details.upstream_inference_cost`."""
    cost = reported_cost(field(usage, "cost"))
    if cost is None or field(usage, "is_byok") is not True:
        return cost
    upstream = reported_cost(field(field(usage, "cost_details"), "upstream_inference_cost"))
    return cost + upstream if upstream is not None else None  # half the bill is no bill: use our price


# --- chat completions ---

_REJECTS_STREAM_OPTIONS: set[tuple[str | None, int | None]] = set()
"""Hosts that answered 400 to `stream_options` (older Azure API versions, some OpenAI-compatible
servers): their streams are sent as the app wrote them, and their usage is estimated."""
_MAX_REMEMBERED_HOSTS = 1024


def read_chat_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                      ask_stream_usage: bool = True) -> Request:
    """A Chat Completions request, also of SDKs cut from the same cloth (groq). `ask_stream_usage`:
    add `stream_options.include_usage` to a stream whose server would not report usage otherwise."""
    stream = given(kwargs.get("stream")) is True
    route = _route(instance)
    asking = None
    rejects = (route.host, route.port) in _REJECTS_STREAM_OPTIONS
    if stream and ask_stream_usage and _state.settings().stream_usage and not rejects:
        asking = asking_stream_usage(kwargs)
    send_kwargs, hide_usage_chunk = (kwargs, False) if asking is None else (asking, True)
    return Request(
        operation="chat",
        provider=route.provider,
        api="openai.chat",
        model=given_str(kwargs.get("model")),
        kwargs=send_kwargs,
        max_tokens=given_int(kwargs.get("max_completion_tokens"), kwargs.get("max_tokens")),
        stream=stream,
        service_tier=given_str(kwargs.get("service_tier")),
        prompt=given(kwargs.get("messages")),
        tools=given(kwargs.get("tools")),
        hide_usage_chunk=hide_usage_chunk,
        server_address=route.host,
        server_port=route.port,
    )


def _resend_without_stream_options(request: Request, error: BaseException) -> bool:
    """A 400 that names `stream_options`, which we added to a request that had none: send the app's
    own request instead. (When the app sent options of its own, the 400 is what it would get anyway.)"""
    if not request.hide_usage_chunk or request.kwargs.get("stream_options") != {"include_usage": True}:
        return False
    if getattr(error, "status_code", None) != 400 or "stream_options" not in str(error):
        return False
    request.kwargs = {k: v for k, v in request.kwargs.items() if k != "stream_options"}
    request.hide_usage_chunk = False
    if len(_REJECTS_STREAM_OPTIONS) < _MAX_REMEMBERED_HOSTS:
        _REJECTS_STREAM_OPTIONS.add((request.server_address, request.server_port))
    return True


def read_chat_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    return Outcome(
        usage=usage_from_openai_chat(usage) if usage is not None else None,
        response_model=text(response, "model"),
        response_id=text(response, "id"),
        finish_reasons=choice_finish_reasons(response),
        service_tier=text(response, "service_tier"),
        provider_cost=_provider_cost(usage),
    )


class ChatStream:
    """Reads chunks; the final usage chunk (empty `choices`) is hidden when we asked for it."""

    __slots__ = ("_request", "_usage", "_model", "_id", "_tier", "_finish", "_deltas")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._usage: Any = None
        self._model: str | None = None
        self._id: str | None = None
        self._tier: str | None = None
        self._finish: list[str] = []
        self._deltas = 0

    def observe(self, chunk: Any) -> bool:
        """Once per chunk, so it reads as little as it can. Nearly every chunk is one choice's delta,
        neither the first, nor a finish, nor carrying usage: for those (as SDK objects) it only counts."""
        stored = getattr(chunk, "__dict__", None)
        if stored is not None and self._id is not None and not self.usage_elsewhere:
            choices = stored.get("choices")
            if type(choices) is list and len(choices) == 1 and stored.get("usage", "") is None \
                    and getattr(choices[0], "finish_reason", "") is None:  # usage stored elsewhere: not here
                self._deltas += 1
                return True
        return self._observe(chunk, stored if stored is not None and "choices" in stored else None)

    def _observe(self, chunk: Any, stored: dict[str, Any] | None) -> bool:
        """Any chunk: a pydantic chunk's fields straight from its `__dict__` (`stored`); the tier from the
        first chunk and from the chunks that end a choice or carry usage (OpenAI repeats it on every chunk)."""
        first = self._id is None
        if first:
            self._id, self._model = text(chunk, "id"), text(chunk, "model")
        choices = stored["choices"] if stored is not None else field(chunk, "choices")
        ending = False
        if choices:
            self._deltas += 1
            if type(choices) is list:
                for choice in choices:
                    reason = field(choice, "finish_reason")
                    if type(reason) is str:
                        self._finish.append(reason)
                        ending = True
        if stored is not None and "usage" in stored and not self.usage_elsewhere:
            usage = stored["usage"]
        else:  # a dict, a chunk keeping usage elsewhere (LiteLLM's), or an SDK's other place (groq's)
            usage = self.usage_of(chunk)
        if first or ending or usage is not None:
            self._tier = text(chunk, "service_tier") or self._tier
        if usage is not None:
            self._usage = usage
        # the chunk we asked for follows the finish reasons with no choices; hidden even when a server
        # sends its usage as null (an Azure content-filter chunk has no choices too, but comes first)
        return not (self._request.hide_usage_chunk and not choices and self._finish)

    usage_elsewhere = False
    """True for a subclass whose `usage_of` looks elsewhere too (groq's `x_groq.usage`): its chunks' usage
    is always read through it. Set from the class itself, so no subclass can forget it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.usage_elsewhere = cls.usage_of is not ChatStream.usage_of

    @staticmethod
    def usage_of(chunk: Any) -> Any:
        """Where a chunk carries the usage so far (a subclass knows other places)."""
        return field(chunk, "usage")

    def outcome(self, complete: bool) -> Outcome:
        if self._usage is not None:
            usage, estimated = usage_from_openai_chat(self._usage), False
        else:
            usage, estimated = estimated_usage(self._request, self._deltas), True
        return Outcome(usage, self._model, self._id, tuple(self._finish), self._tier, estimated,
                       _provider_cost(self._usage))


def _structured(kwargs: dict[str, Any]) -> bool:
    """Structured output (`parse()`, a JSON schema): a refusal goes in `refusal`, as the model's own do."""
    response_format = kwargs.get("response_format", kwargs.get("text_format"))
    if isinstance(response_format, type):
        return True
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return True
    text_config = kwargs.get("text")
    return isinstance(text_config, dict) and (text_config.get("format") or {}).get("type") == "json_schema"


def _zero_chat_usage() -> dict[str, Any]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def answer_chat(request: Request, refusal: str) -> Answer:
    """A refused Chat Completions call: one assistant message, `stop`, zero usage (streamed as chunks,
    the usage chunk only when the app itself asked for it)."""
    key = "refusal" if _structured(request.kwargs) else "content"
    base = {"id": refusal_id(), "created": int(time.time()), "model": request.model or ""}
    if not request.stream:
        message = {"role": "assistant", "content": None, "refusal": None, key: refusal}
        return json_body({**base, "object": "chat.completion", "usage": _zero_chat_usage(),
                          "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}]})
    chunk = {**base, "object": "chat.completion.chunk"}
    deltas = [{"role": "assistant", "content": ""}, {key: refusal}, {}]
    events = [{**chunk, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": "stop" if not delta else None}]} for delta in deltas]
    options = request.kwargs.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") and not request.hide_usage_chunk:
        events.append({**chunk, "choices": [], "usage": _zero_chat_usage()})
    return sse(((None, event) for event in events), done=True)


CHAT = Endpoint(read_chat_request, read_chat_response, ChatStream, resend=_resend_without_stream_options,
                answer_refusal=answer_chat)


# --- legacy completions: the chat wire shape, with a `prompt` ---


def _read_completions_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    request = read_chat_request(instance, args, kwargs)
    request.operation = "text_completion"
    request.prompt = given(kwargs.get("prompt"))
    return request


def _answer_completions(request: Request, refusal: str) -> Answer:
    """A refused legacy completion: the text as the completion, `stop`, zero usage."""
    base = {"id": refusal_id(), "object": "text_completion", "created": int(time.time()), "model": request.model or ""}
    if not request.stream:
        return json_body({**base, "usage": _zero_chat_usage(),
                          "choices": [{"index": 0, "text": refusal, "finish_reason": "stop", "logprobs": None}]})
    return sse(((None, {**base, "choices": [{"index": 0, "text": piece, "finish_reason": finish, "logprobs": None}]})
                for piece, finish in ((refusal, None), ("", "stop"))), done=True)


COMPLETIONS = Endpoint(_read_completions_request, read_chat_response, ChatStream,
                       resend=_resend_without_stream_options, answer_refusal=_answer_completions)


# --- responses ---


def _route_fields(instance: Any) -> dict[str, Any]:
    route = _route(instance)
    return {"provider": route.provider, "server_address": route.host, "server_port": route.port}


def _read_responses_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    return Request(
        operation="chat",
        **_route_fields(instance),
        api="openai.responses",
        model=given_str(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=given_int(kwargs.get("max_output_tokens")),
        stream=given(kwargs.get("stream")) is True,
        service_tier=given_str(kwargs.get("service_tier")),
        prompt=given(kwargs.get("input")),
        system=given(kwargs.get("instructions")),
        tools=given(kwargs.get("tools")),
    )


def _web_searches(response: Any) -> int:
    """Web-search tool calls in a response's output: each is billed per call, on top of the tokens."""
    output = field(response, "output")
    if not isinstance(output, list):
        return 0
    return sum(1 for item in output if text(item, "type") == "web_search_call")


def _read_responses_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    status = text(response, "status")
    parsed = usage_from_openai_responses(usage) if usage is not None else None
    searches = _web_searches(response)
    if parsed is not None and searches:
        parsed = replace(parsed, web_search_requests=searches)
    return Outcome(
        usage=parsed,
        response_model=text(response, "model"),
        response_id=text(response, "id"),
        finish_reasons=(status,) if status else (),
        service_tier=text(response, "service_tier"),
        provider_cost=_provider_cost(usage),  # OpenRouter reports `usage.cost` on the Responses API too
    )


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStream:
    """Usage arrives with the final `response.completed` (or incomplete / failed) event."""

    __slots__ = ("_request", "_final", "_deltas")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._final: Outcome | None = None
        self._deltas = 0

    def observe(self, event: Any) -> bool:
        kind = text(event, "type")
        if kind == "response.output_text.delta":
            self._deltas += 1
        elif kind in _FINAL_RESPONSE_EVENTS:
            self._final = _read_responses_response(field(event, "response"))
        return True

    def outcome(self, complete: bool) -> Outcome:
        if self._final is not None and self._final.usage is not None:
            return self._final
        return Outcome(usage=estimated_usage(self._request, self._deltas), estimated=True)


def _answer_responses(request: Request, refusal: str) -> Answer:
    """A refused Responses call: one completed assistant message (a `refusal` part for structured
    output), zero usage; streamed as the API streams one message, event by event."""
    part = {"type": "refusal", "refusal": refusal} if _structured(request.kwargs) else \
        {"type": "output_text", "text": refusal, "annotations": []}
    message = {"type": "message", "id": refusal_id(), "status": "completed", "role": "assistant",
               "content": [part]}
    usage = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}
    response_id, created = refusal_id(), int(time.time())

    def response(status: str, output: list[Any]) -> dict[str, Any]:
        return {"id": response_id, "object": "response", "created_at": created,
                "model": request.model or "", "status": status, "output": output, "usage": usage,
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
                "incomplete_details": None, "instructions": None, "metadata": {}}

    if not request.stream:
        return json_body(response("completed", [message]))
    where = {"item_id": message["id"], "output_index": 0}
    empty = {**part, "text": ""} if part["type"] == "output_text" else {**part, "refusal": ""}
    delta, done = ("response.output_text.delta", "response.output_text.done") if part["type"] == "output_text" \
        else ("response.refusal.delta", "response.refusal.done")
    text_key = "text" if part["type"] == "output_text" else "refusal"
    steps: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", [])},
        {"type": "response.in_progress", "response": response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **where, "content_index": 0, "part": empty},
        {"type": delta, **where, "content_index": 0, "delta": refusal, "logprobs": []},
        {"type": done, **where, "content_index": 0, text_key: refusal, "logprobs": []},
        {"type": "response.content_part.done", **where, "content_index": 0, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": response("completed", [message])},
    ]
    return sse((step["type"], {**step, "sequence_number": number}) for number, step in enumerate(steps))


RESPONSES = Endpoint(_read_responses_request, _read_responses_response, _ResponsesStream,
                     answer_refusal=_answer_responses)


# --- embeddings ---


def _read_embeddings_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    return Request(
        operation="embeddings",
        **_route_fields(instance),
        api="openai.embeddings",
        model=given_str(kwargs.get("model")),
        kwargs=kwargs,
        max_tokens=0,
        prompt=given(kwargs.get("input")),
    )


def _read_embeddings_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    return Outcome(
        usage=usage_from_openai_embeddings(usage) if usage is not None else None,
        response_model=text(response, "model"),
    )


EMBEDDINGS = Endpoint(_read_embeddings_request, _read_embeddings_response)

# --- images and audio: billed in tokens (gpt-image-1, gpt-4o-transcribe, gpt-4o-mini-tts) or in units the
#     request or response states (dall-e per image, whisper-1 per second of audio, tts-1 per character) ---


def _image_units(model: str | None, kwargs: dict[str, Any]) -> Usage | None:
    """dall-e bills each image by quality and size, which the request states (dall-e-2 has one quality)."""
    if model is None or not model.startswith("dall-e"):
        return None
    quality = given_str(kwargs.get("quality")) if model == "dall-e-3" else None
    size = given_str(kwargs.get("size")) or "1024x1024"
    return Usage(images=given_int(kwargs.get("n")) or 1, image_kind=f"{quality or 'standard'}/{size}")


def _read_image_request(operation: str, default_model: str | None = None) -> RequestReader:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        model = given_str(kwargs.get("model")) or default_model
        return Request(operation=operation, api="openai.tokens", model=model, kwargs=kwargs,
                       stream=given(kwargs.get("stream")) is True, prompt=given(kwargs.get("prompt")),
                       units=_image_units(model, kwargs), **_route_fields(instance))

    return read


def _read_audio_text_request(operation: str) -> RequestReader:
    """Transcriptions and translations. whisper-1 bills the audio's length: a WAV upload's header gives it
    before sending (the budget's worst case, and the usage when the response reports none)."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        model = given_str(kwargs.get("model"))
        seconds = wav_seconds(given(kwargs.get("file"))) if model and model.startswith("whisper") else None
        return Request(operation=operation, api="openai.tokens", model=model, kwargs=kwargs, max_tokens=0,
                       stream=given(kwargs.get("stream")) is True, prompt=given(kwargs.get("prompt")),
                       units=Usage(audio_seconds=seconds) if seconds is not None else None, **_route_fields(instance))

    return read


def _read_speech_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    """tts-1 bills the characters to speak; gpt-4o-mini-tts bills tokens, which only an `sse` stream reports."""
    model, spoken = given_str(kwargs.get("model")), given_str(kwargs.get("input"))
    units = Usage(input_characters=len(spoken)) if model and model.startswith("tts-1") and spoken else None
    return Request(operation="speech", api="openai.tokens", model=model, kwargs=kwargs, prompt=spoken,
                   units=units, **_route_fields(instance))


def _read_media_response(response: Any) -> Outcome:
    """Token usage, or whisper-1's `{"type": "duration", "seconds": ...}`, or a verbose translation's
    `duration`. dall-e reports nothing: the request's `units` are charged."""
    usage = field(response, "usage")
    kind = text(usage, "type")
    if kind == "duration":
        parsed = usage_from_audio_seconds(field(usage, "seconds"))
    elif usage is not None and kind in (None, "tokens"):
        parsed = usage_from_openai_tokens(usage)
    else:
        duration = field(response, "duration")
        parsed = usage_from_audio_seconds(duration) if duration is not None else None
    return Outcome(usage=parsed, response_model=text(response, "model"))


def _read_speech_response(response: Any) -> Outcome:
    """An `sse` speech stream read whole by the SDK: the usage is on its `speech.audio.done` event."""
    content = field(response, "content") if type(response).__name__ == "HttpxBinaryResponseContent" else None
    if not isinstance(content, bytes) or b"speech.audio.done" not in content[-4096:]:
        return Outcome()
    last = content.rstrip().rsplit(b"\n", 1)[-1].removeprefix(b"data:")
    return _read_media_response(json.loads(last))


class _MediaStream:
    """gpt-image-1 and gpt-4o-transcribe streams: the usage is on the last event (`*.completed`,
    `transcript.text.done`)."""

    __slots__ = ("_request", "_final")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._final: Outcome | None = None

    def observe(self, event: Any) -> bool:
        if field(event, "usage") is not None:
            self._final = _read_media_response(event)
        return True

    def outcome(self, complete: bool) -> Outcome:
        if self._final is not None and self._final.usage is not None:
            return self._final
        return Outcome(usage=estimated_usage(self._request, 0), estimated=True)


IMAGES = Endpoint(_read_image_request("image_generation"), _read_media_response, _MediaStream)
IMAGE_VARIATIONS = Endpoint(_read_image_request("image_generation", default_model="dall-e-2"), _read_media_response)
TRANSCRIPTIONS = Endpoint(_read_audio_text_request("transcription"), _read_media_response, _MediaStream)
TRANSLATIONS = Endpoint(_read_audio_text_request("translation"), _read_media_response)
SPEECH = Endpoint(_read_speech_request, _read_speech_response)


# --- Batch API: results priced at the batch rate when the app reads the output file ---

_BATCH_OF_FILE: Bounded[str, str] = Bounded(10_000)
"""Output file id -> batch id, learned when the app retrieves a batch."""
_BATCH_INPUT_COST: Bounded[str, Decimal | None] = Bounded(10_000)
"""Uploaded batch input file id -> its worst case, to check at `batches.create`."""


def _remember_batch(ctx: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], batch: Any) -> Any:
    output, batch_id = text(batch, "output_file_id"), text(batch, "id")
    if output and batch_id:
        _BATCH_OF_FILE.put(output, batch_id)
    return batch


def _batch_line(line: Any) -> BatchResult | None:
    """One line of a batch output file: a 2xx response body is billed, at the batch rate."""
    response = field(line, "response")
    status, body = field(response, "status_code"), field(response, "body")
    if not isinstance(body, dict) or type(status) is not int or status >= 400:
        return None
    kind = body.get("object")
    if kind == "chat.completion":
        outcome, operation = read_chat_response(body), "chat"
    elif kind == "response":
        outcome, operation = _read_responses_response(body), "chat"
    elif kind == "list":
        outcome, operation = _read_embeddings_response(body), "embeddings"
    else:
        return None
    return BatchResult(str(field(line, "custom_id")), operation, text(body, "model"), outcome)


def _upload_bytes(upload: Any) -> bytes | None:
    """The bytes of an upload given as bytes, a (name, bytes, ...) tuple or a path. A file object is
    never read here: that would consume the app's stream before the SDK sends it."""
    try:
        with upload_handle(upload) as handle:
            return handle.read() if handle is not None else None
    except OSError:
        return None


def _batch_input_requests(raw: bytes) -> list[BatchRequest]:
    requests = []
    for line in raw.splitlines():
        if line.strip():
            body = field(json.loads(line), "body")
            requests.append(BatchRequest(given_str(field(body, "model")),
                                         given(field(body, "messages")) or given(field(body, "input")),
                                         given_int(field(body, "max_completion_tokens"), field(body, "max_tokens"),
                                                   field(body, "max_output_tokens")),
                                         given(field(body, "instructions")), given(field(body, "tools"))))
    return requests


def _adopt_batch_upload(ctx: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], uploaded: Any) -> Any:
    file_id = text(uploaded, "id")
    if kwargs.get("purpose") != "batch" or not file_id:
        return uploaded
    raw = _upload_bytes(kwargs.get("file"))
    if raw is not None:
        _BATCH_INPUT_COST.put(file_id, batch_worst_case(ctx, _route(instance).provider, _batch_input_requests(raw)))
    return uploaded


def _batch_create_cost(ctx: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Decimal | None:
    return _BATCH_INPUT_COST.get(str(kwargs.get("input_file_id")))


def _adopt_file_content(ctx: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], content: Any) -> Any:
    """The app reads a file; when it is a batch's output, its results are priced (the bytes are the
    SDK's, already read: nothing more is fetched, and the app gets the very same object)."""
    raw = getattr(content, "content", None)
    if not isinstance(raw, bytes) or b'"custom_id"' not in raw[:4096]:
        return content
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    if not lines or "response" not in lines[0]:
        return content  # a batch input file: requests, not results
    file_id = str(kwargs.get("file_id") or (args[0] if args else "unknown"))
    recorder = BatchRecorder(ctx, _route(instance).provider, "openai.chat", _BATCH_OF_FILE.get(file_id, file_id))
    recorder.add_all(result for result in map(_batch_line, lines) if result is not None)
    return content


_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
_EMBEDDINGS_MODULE = "openai.resources.embeddings"
_COMPLETIONS_MODULE = "openai.resources.completions"


class OpenAIInstrumentor(LLMInstrumentor):
    """Cost spans for the `openai` SDK. `OpenAIInstrumentor().instrument()`; `uninstrument()` restores it."""

    dependencies = ("openai >= 1.40",)
    error_base = generated_client_error("openai")
    targets = (
        Target(_CHAT_MODULE, "Completions.create", CHAT),
        Target(_CHAT_MODULE, "AsyncCompletions.create", CHAT, is_async=True),
        # structured outputs: `parse` sends without going through `create`
        Target(_CHAT_MODULE, "Completions.parse", CHAT),
        Target(_CHAT_MODULE, "AsyncCompletions.parse", CHAT, is_async=True),
        Target(_RESPONSES_MODULE, "Responses.create", RESPONSES),
        Target(_RESPONSES_MODULE, "AsyncResponses.create", RESPONSES, is_async=True),
        Target(_RESPONSES_MODULE, "Responses.parse", RESPONSES),
        Target(_RESPONSES_MODULE, "AsyncResponses.parse", RESPONSES, is_async=True),
        Target(_COMPLETIONS_MODULE, "Completions.create", COMPLETIONS),
        Target(_COMPLETIONS_MODULE, "AsyncCompletions.create", COMPLETIONS, is_async=True),
        Target(_EMBEDDINGS_MODULE, "Embeddings.create", EMBEDDINGS),
        Target(_EMBEDDINGS_MODULE, "AsyncEmbeddings.create", EMBEDDINGS, is_async=True),
        *(Target(f"openai.resources.{module}", f"{prefix}{cls}.{method}", endpoint, is_async=a)
          for module, cls, method, endpoint in (("images", "Images", "generate", IMAGES),
                                                ("images", "Images", "edit", IMAGES),
                                                ("images", "Images", "create_variation", IMAGE_VARIATIONS),
                                                ("audio.transcriptions", "Transcriptions", "create", TRANSCRIPTIONS),
                                                ("audio.translations", "Translations", "create", TRANSLATIONS),
                                                ("audio.speech", "Speech", "create", SPEECH))
          for prefix, a in (("", False), ("Async", True))),
        # the Batch API: price results when the output file is read; check budgets when a batch is created
        *(Target(f"openai.resources.{module}", f"{prefix}{cls}.{method}", wrapper_factory=make(handler, is_async=a))
          for module, cls, method, make, handler in (
              ("files", "Files", "content", results_wrapper, _adopt_file_content),
              ("files", "Files", "create", results_wrapper, _adopt_batch_upload),
              ("batches", "Batches", "create", admit_wrapper, _batch_create_cost),
              ("batches", "Batches", "retrieve", results_wrapper, _remember_batch))
          for prefix, a in (("", False), ("Async", True))),
    )

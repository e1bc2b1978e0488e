"""A loopback HTTP server that speaks each provider's wire format, SSE streams included.

Tests, benchmarks and the demo point the REAL SDK clients at it (``base_url=fake.openai_url`` ...),
so every byte goes through the SDK's own HTTP, SSE and parsing code. It speaks:

* OpenAI: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings`` (JSON and SSE);
* Anthropic: ``/v1/messages`` (JSON and SSE), and as Claude on Vertex AI (``:rawPredict``,
  ``:streamRawPredict``) and on Bedrock (``/model/{id}/invoke``);
* Cohere: ``/v2/chat`` (JSON and SSE); Mistral shares OpenAI's chat path, in its own dialect;
* Gemini: ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``;
* Bedrock: ``/model/{modelId}/converse``, ``/converse-stream`` (AWS binary event stream), ``/invoke``
  and ``/invoke-with-response-stream`` (an Anthropic Messages body; counts in headers and invocation metrics).

Usage is configurable per model (cache reads and writes, reasoning, audio); faults can be injected
(429, 500, malformed JSON, an HTML 200, a reset mid-body, a stream cut mid-way, slow responses), and
the server can reject ``stream_options`` as some OpenAI-compatible ones do; every request is counted.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeProvider", "ModelBehaviour", "Fault"]


@dataclass
class ModelBehaviour:
    """What the fake reports for one model. `input_tokens=None` counts the prompt (4 characters a token)."""

    input_tokens: int | None = None
    output_tokens: int = 12
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    chunks: int = 4
    service_tier: str | None = None
    text: str = "Hello from the fake provider."
    null_stream_usage: bool = False
    """The final chunk of an OpenAI stream that asked for usage carries `"usage": null` (some servers)."""
    usage_cost: float | None = None
    """OpenRouter: `usage.cost`, the call's cost in USD credits, on every response and final chunk."""
    byok_upstream_cost: float | None = None
    """OpenRouter with your own provider key: `is_byok` and `cost_details.upstream_inference_cost`."""
    cost_header: str | None = None
    """A LiteLLM proxy: `x-litellm-response-cost` on the response."""
    final_chunk_usage: bool = False
    """Together, Fireworks, Cerebras: a stream's final (finish) chunk carries `usage`, unasked; their SDKs
    do not even take `stream_options`."""
    groq_stream_usage: bool = False
    """Groq: a stream's final chunk carries `x_groq.usage`, unasked."""
    compaction_steps: list[tuple[int, int]] | None = None
    """Anthropic server-side compaction: (input, output) of each step; the top-level usage is the last
    step's only, and `usage.iterations` lists them all, as the API reports it."""
    output_only_delta: bool = False
    """Anthropic streams: `message_delta` usage carries output_tokens only (the SDK then has None for the
    rest), as many API versions send it."""
    web_searches: int = 0
    """OpenAI Responses: `web_search_call` items in the output, each billed per call."""
    embed_tokens: int | None = None
    """Gemini API embeddings: the `usageMetadata.promptTokenCount` newer models report (None: no usage)."""
    traffic_type: str | None = None
    """Vertex AI: `usageMetadata.trafficType` (ON_DEMAND_FLEX for Flex PayGo)."""


@dataclass
class Fault:
    """A fault for the next `times` requests: an HTTP status, malformed JSON, a cut stream, or a delay."""

    status: int | None = None
    malformed: bool = False
    cut_after_chunks: int | None = None
    delay: float = 0.0
    times: int = 1
    body: Any = None
    """Send this JSON body (status 200) instead of the normal response: for malformed shapes."""
    html: bool = False
    """Answer 200 with an HTML page, as a captive portal or a misrouted proxy does."""
    reset_mid_body: bool = False
    """Send the headers and half of a JSON body, then reset the connection."""


@dataclass
class _State:
    behaviours: dict[str, ModelBehaviour] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0
    keep_bodies: bool = True
    reject_stream_options: bool = False
    downloads: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """GET path -> (body, content type): batch objects, batch output files, Message Batch results."""


class _CutStream(Exception):
    """Raised inside the handler to drop the connection mid-stream."""


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps(
        [body.get(k) for k in ("messages", "input", "system", "contents", "prompt") if body.get(k) is not None]
    )
    return max(1, len(text) // 4)


class FakeProvider:
    """Start with `with FakeProvider() as fake:`; then `fake.openai_url`, `fake.anthropic_url`, ..."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    @property
    def gemini_url(self) -> str:
        return self.url

    @property
    def bedrock_url(self) -> str:
        return self.url

    # --- behaviour ---
    def set_model(self, model: str, **behaviour: Any) -> ModelBehaviour:
        with self._state.lock:
            self._state.behaviours[model] = ModelBehaviour(**behaviour)
            return self._state.behaviours[model]

    def inject(self, fault: Fault) -> None:
        with self._state.lock:
            self._state.faults.append(fault)

    def set_delay(self, seconds: float) -> None:
        self._state.delay = seconds

    def add_openai_batch(self, batch_id: str, results: list[tuple[str, str, int, int, int]]) -> str:
        """A completed OpenAI batch of chat completions: (custom_id, model, input, output, status) each.
        Serves `/v1/batches/{id}` and its output file's `/v1/files/{id}/content`; returns the file id."""
        file_id = f"file-{batch_id}-out"
        lines = []
        for custom_id, model, input_tokens, output, status in results:
            body = {"id": f"chatcmpl-{custom_id}", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": input_tokens, "completion_tokens": output,
                              "total_tokens": input_tokens + output}} if status < 400 else \
                {"error": {"message": "bad request", "type": "invalid_request_error"}}
            lines.append({"id": f"batch_req_{custom_id}", "custom_id": custom_id, "error": None,
                          "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": body}})
        batch = {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-in",
                 "completion_window": "24h", "status": "completed", "output_file_id": file_id, "created_at": 1,
                 "request_counts": {"total": len(results), "completed": len(results), "failed": 0}}
        with self._state.lock:
            self._state.downloads[f"/v1/batches/{batch_id}"] = (json.dumps(batch).encode(), "application/json")
            self._state.downloads[f"/v1/files/{file_id}/content"] = (
                b"".join(json.dumps(line).encode() + b"\n" for line in lines), "application/octet-stream")
        return file_id

    def add_anthropic_batch(self, batch_id: str, results: list[tuple[str, str, int, int, bool]]) -> None:
        """An ended Message Batch: (custom_id, model, input, output, succeeded) each; serves the batch and
        its `results_url` (JSONL)."""
        lines = []
        for custom_id, model, input_tokens, output, succeeded in results:
            message = {"id": f"msg_{custom_id}", "type": "message", "role": "assistant", "model": model,
                       "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": output,
                                                        "cache_read_input_tokens": 0,
                                                        "cache_creation_input_tokens": 0}}
            result = {"type": "succeeded", "message": message} if succeeded else \
                {"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "x"}}}
            lines.append({"custom_id": custom_id, "result": result})
        base = f"/v1/messages/batches/{batch_id}"
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "ended",
                 "request_counts": {"processing": 0, "succeeded": len(results), "errored": 0, "canceled": 0,
                                    "expired": 0},
                 "created_at": "2026-11-25T10:00:00Z", "expires_at": "2026-11-26T10:00:00Z",
                 "ended_at": "2026-11-25T11:00:00Z", "archived_at": None, "cancel_initiated_at": None,
                 "results_url": f"{self.url}{base}/results"}
        with self._state.lock:
            self._state.downloads[base] = (json.dumps(batch).encode(), "application/json")
            self._state.downloads[f"{base}/results"] = (
                b"".join(json.dumps(line).encode() + b"\n" for line in lines), "application/binary")

    def reject_stream_options(self, reject: bool = True) -> None:
        """Answer 400 to any request carrying `stream_options`, as older Azure API versions and some
        OpenAI-compatible servers do."""
        self._state.reject_stream_options = reject

    def keep_request_bodies(self, keep: bool) -> None:
        self._state.keep_bodies = keep

    # --- observations ---
    def request_count(self, path_fragment: str = "") -> int:
        with self._state.lock:
            return sum(n for path, n in self._state.requests.items() if path_fragment in path)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return list(self._state.bodies)

    def reset(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
            self._state.bodies.clear()
            self._state.faults.clear()
            self._state.behaviours.clear()
            self._state.delay = 0.0
            self._state.reject_stream_options = False
            self._state.downloads.clear()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that disconnects mid-response is normal here, not an error to print."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ---
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        with self.state.lock:
            self.state.requests[path] += 1
            found = self.state.downloads.get(path)
        if found is None:
            return self._send_json(404, {"error": {"message": f"no route for GET {path}", "type": "not_found"}})
        self._send_bytes(200, found[0], found[1])

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:  # a multipart upload: its simple form fields, and an uploaded WAV's length
            body = {name.decode(): value.decode(errors="replace") for name, value in
                    re.findall(rb'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', raw)}
            body["audio_seconds"] = _wav_seconds(raw)
        with self.state.lock:
            self.state.requests[path] += 1
            if self.state.keep_bodies:
                self.state.bodies.append({"path": path, "body": body})
            fault = self._take_fault()
        delay = self.state.delay + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault and fault.status:
            return self._send_json(fault.status, _error_body(fault.status))
        if fault and fault.body is not None:
            return self._send_json(200, fault.body)
        if fault and fault.malformed:
            return self._send_bytes(200, b'{"id": "broken", "choices": [', "application/json")
        if fault and fault.html:
            return self._send_bytes(200, b"<html><body><h1>Sign in to continue</h1></body></html>", "text/html")
        if self.state.reject_stream_options and "stream_options" in body:
            return self._invalid_request("Unrecognized request argument supplied: stream_options")
        if fault and fault.reset_mid_body:
            return self._reset_mid_body()
        try:
            self._route(path, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (an app that stopped reading)
        except _CutStream:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _reset_mid_body(self) -> None:
        """Promise a JSON body, send half of it, then drop the connection (a reset mid-response)."""
        data = json.dumps({"id": "chatcmpl-reset", "object": "chat.completion", "choices": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _take_fault(self) -> Fault | None:
        if not self.state.faults:
            return None
        fault = self.state.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.state.faults.pop(0)
        return fault

    def _behaviour(self, model: str) -> ModelBehaviour:
        return self.state.behaviours.get(model) or self.state.behaviours.get("*") or ModelBehaviour()

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self._send_request_ids()
        self.end_headers()
        self.wfile.write(data)

    def _send_request_ids(self) -> None:
        """Each provider's request-id header (OpenAI, Anthropic, AWS), as the real APIs send them."""
        request_id = f"req_{uuid.uuid4().hex[:12]}"
        for name in ("x-request-id", "request-id", "x-amzn-RequestId"):
            self.send_header(name, request_id)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _invalid_request(self, message: str, param: str | None = None, code: str | None = None) -> None:
        """OpenAI's 400 for a request it refuses: nothing is billed."""
        self._send_json(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}})

    def _send_sse(self, events: Iterator[tuple[str | None, Any]], fault: Fault | None) -> None:
        def frames() -> Iterator[bytes]:
            for event, data in events:
                text = "" if event is None else f"event: {event}\n"
                text += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
                yield text.encode()

        self._send_chunked(frames(), fault, "text/event-stream")

    def _send_eventstream(self, events: Iterator[tuple[str, Any]], fault: Fault | None) -> None:
        """AWS's binary event stream (Bedrock `converse-stream`), one message per event."""
        self._send_chunked((_eventstream_message(kind, payload) for kind, payload in events), fault,
                           "application/vnd.amazon.eventstream")

    def _send_chunked(self, frames: Iterator[bytes], fault: Fault | None, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self._send_request_ids()
        self.end_headers()
        for index, frame in enumerate(frames):
            if fault and fault.cut_after_chunks is not None and index >= fault.cut_after_chunks:
                self.wfile.flush()
                raise _CutStream()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routing ---
    def _route(self, path: str, body: dict[str, Any], fault: Fault | None) -> None:
        if path.endswith("/chat/completions"):
            return self._openai_chat(body, fault)
        if path.endswith("/v1/batches") or path.endswith("/v1/messages/batches"):
            return self._create_batch(path, body)
        if path.endswith(("/images/generations", "/images/edits", "/images/variations")):
            return self._openai_images(path, body, fault)
        if path.endswith(("/audio/transcriptions", "/audio/translations")):
            return self._openai_audio_text(path, body, fault)
        if path.endswith("/audio/speech"):
            return self._openai_speech(body, fault)
        if path.endswith("/v2/rerank"):
            return self._cohere_rerank(body)
        if path.endswith("/v1/rerank"):
            return self._voyage_rerank(body)
        if path.endswith("/v1/files"):  # a multipart upload; the fake keeps no content
            return self._send_json(200, {"id": f"file-{uuid.uuid4().hex[:12]}", "object": "file", "bytes": 1,
                                         "created_at": int(time.time()), "filename": "batch.jsonl",
                                         "purpose": "batch", "status": "processed"})
        if path.endswith("/v1/completions"):
            return self._openai_completions(body, fault)
        if path.endswith("/responses"):
            return self._openai_responses(body, fault)
        if path.endswith("/embeddings") and path != "/api/embeddings":  # Ollama's older API shares the suffix
            return self._openai_embeddings(body)
        if path.endswith("/v1/messages"):
            return self._anthropic_messages(body, fault)
        if path.endswith("/v2/chat"):
            return self._cohere_chat(body, fault)
        if path.endswith("/v2/embed"):
            return self._cohere_embed(body)
        if path in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
            return self._ollama(path.rsplit("/", 1)[1], body, fault)
        vertex_claude = re.match(r".*/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$", path)
        if vertex_claude:  # Claude on Vertex AI: a Messages body without `model`, which the URL names
            return self._anthropic_messages({**body, "model": unquote(vertex_claude.group(1))}, fault)
        embed = re.match(r".*/models/([^/:]+):(batchEmbedContents|embedContent)$", path)
        if embed:  # older Gemini embedding models report no usage; newer ones (gemini-embedding-2) do
            count = len(body.get("requests") or [body])
            payload: dict[str, Any] = {"embeddings": [{"values": [0.1, 0.2, 0.3]} for _ in range(count)]}
            reported = self._behaviour(unquote(embed.group(1))).embed_tokens
            if reported is not None:
                payload["usageMetadata"] = {"promptTokenCount": reported, "totalTokenCount": reported}
            return self._send_json(200, payload)
        gemini = re.match(r".*/models/([^/:]+):(generateContent|streamGenerateContent)$", path)
        if gemini:
            return self._gemini(unquote(gemini.group(1)), body, gemini.group(2) == "streamGenerateContent", fault)
        bedrock = re.match(r"^/model/(.+)/(converse|converse-stream|invoke|invoke-with-response-stream)$", path)
        if bedrock:
            model_id, operation = _bedrock_model(unquote(bedrock.group(1))), bedrock.group(2)
            if operation.startswith("invoke"):
                return self._bedrock_invoke(model_id, body, operation != "invoke", fault)
            return self._bedrock_converse(model_id, body, operation == "converse-stream", fault)
        self._send_json(404, {"error": {"message": f"no route for {path}", "type": "not_found"}})

    def _counts(self, body: dict[str, Any]) -> tuple[ModelBehaviour, int, int]:
        model = str(body.get("model", ""))
        behaviour = self._behaviour(model)
        input_tokens = behaviour.input_tokens if behaviour.input_tokens is not None else _prompt_tokens(body)
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
        output = behaviour.output_tokens
        if isinstance(limit, int) and limit > 0:
            output = min(output, limit)
        return behaviour, input_tokens, output

    # --- OpenAI ---
    def _openai_usage(self, b: ModelBehaviour, input_tokens: int, output: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": input_tokens,
            "completion_tokens": output,
            "total_tokens": input_tokens + output,
            "prompt_tokens_details": {"cached_tokens": b.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": min(b.reasoning_tokens, output), "audio_tokens": 0},
        }
        if b.usage_cost is not None:  # OpenRouter's usage accounting, always on
            usage["cost"] = b.usage_cost
            usage["is_byok"] = b.byok_upstream_cost is not None
            usage["cost_details"] = {"upstream_inference_cost": b.byok_upstream_cost}
        return usage

    def _openai_chat(self, body: dict[str, Any], fault: Fault | None) -> None:
        """OpenAI chat completions; also Mistral's dialect (same path, told apart by its SDK's
        User-Agent): usage always arrives on the final content chunk and reports the service tier."""
        b, input_tokens, output = self._counts(body)
        model = body.get("model", "")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        created = int(time.time())
        tier = b.service_tier or body.get("service_tier") or "default"
        mistral = "mistral" in (self.headers.get("User-Agent") or "").lower()
        usage = self._openai_usage(b, input_tokens, output)
        if mistral:
            usage = {k: v for k, v in usage.items() if k != "completion_tokens_details"}
            usage["service_tier"] = b.service_tier or body.get("service_tier") or "standard"
        cost_headers = {"x-litellm-response-cost": b.cost_header} if b.cost_header else None
        if not body.get("stream"):
            return self._send_json(200, headers=cost_headers, payload={
                "id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "service_tier": tier,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": b.text}, "finish_reason": "stop",
                             "logprobs": None}],
                "usage": usage,
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[tuple[str | None, Any]]:
            base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "service_tier": tier}
            pieces = _split(b.text, b.chunks)
            for index, piece in enumerate(pieces):
                delta = {"content": piece} if index else {"role": "assistant", "content": piece}
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]}
                if include_usage:
                    chunk["usage"] = None
                yield None, chunk
            final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]}
            if include_usage or mistral or b.final_chunk_usage:
                final["usage"] = usage if mistral or b.final_chunk_usage else None
            if b.groq_stream_usage:
                final["x_groq"] = {"id": f"req_{completion_id[-12:]}", "usage": usage}
            yield None, final
            if include_usage and not mistral:
                yield None, {**base, "choices": [], "usage": None if b.null_stream_usage else usage}
            yield None, "[DONE]"

        self._send_sse(events(), fault)

    def _openai_images(self, path: str, body: dict[str, Any], fault: Fault | None) -> None:
        """gpt-image-1 reports token usage (streamed: on the `*.completed` event); dall-e reports none and is
        billed per image. As the real API, dall-e-3 draws one image a call and only in its own sizes."""
        b, input_tokens, output = self._counts(body)
        model = str(body.get("model") or "dall-e-2")
        count = int(body.get("n") or 1)
        if model.startswith("dall-e"):
            sizes = _DALLE_SIZES["dall-e-3" if model == "dall-e-3" else "dall-e-2"]
            size = body.get("size") or "1024x1024"
            if size not in sizes or (model == "dall-e-3" and count != 1):
                return self._invalid_request(f"Invalid size {size!r} or n={count} for {model}.", "size",
                                             "invalid_value")
            return self._send_json(200, {"created": int(time.time()),
                                         "data": [{"url": f"https://fake.invalid/{i}.png"} for i in range(count)]})
        usage = {"input_tokens": input_tokens, "output_tokens": output, "total_tokens": input_tokens + output,
                 "input_tokens_details": {"text_tokens": input_tokens - b.cache_read_tokens,
                                          "image_tokens": b.cache_read_tokens}}
        if str(body.get("stream")).lower() == "true":
            kind = "image_edit" if path.endswith("/edits") else "image_generation"

            def events() -> Iterator[tuple[str | None, Any]]:
                yield f"{kind}.partial_image", {"type": f"{kind}.partial_image", "b64_json": "aGVsbG8=",
                                                "partial_image_index": 0, "created_at": int(time.time()),
                                                "size": "1024x1024", "quality": "low", "background": "opaque",
                                                "output_format": "png"}
                yield f"{kind}.completed", {"type": f"{kind}.completed", "b64_json": "aGVsbG8=",
                                            "created_at": int(time.time()), "size": "1024x1024", "quality": "low",
                                            "background": "opaque", "output_format": "png", "usage": usage}

            return self._send_sse(events(), fault)
        self._send_json(200, {"created": int(time.time()), "data": [{"b64_json": "aGVsbG8="}] * count,
                              "usage": usage})

    def _openai_audio_text(self, path: str, body: dict[str, Any], fault: Fault | None) -> None:
        """Transcriptions and translations. gpt-4o-transcribe bills tokens (streamed: on
        `transcript.text.done`); whisper-1 bills the audio's duration, which a transcription reports in
        `usage` and a translation only as `duration` in `verbose_json`. Text formats are plain text."""
        b, input_tokens, output = self._counts(body)
        model, fmt = str(body.get("model", "")), body.get("response_format") or "json"
        seconds = body.get("audio_seconds") or 42.5
        translation = path.endswith("/translations")
        if translation and model != "whisper-1":
            return self._invalid_request(f"Model {model} is not supported for translations.", "model")
        if model == "whisper-1":
            usage: dict[str, Any] = {"type": "duration", "seconds": seconds}
        else:
            usage = {"type": "tokens", "input_tokens": input_tokens, "output_tokens": output,
                     "total_tokens": input_tokens + output,
                     "input_token_details": {"audio_tokens": input_tokens, "text_tokens": 0}}
        if fmt in ("text", "srt", "vtt"):
            return self._send_bytes(200, b.text.encode(), "text/plain; charset=utf-8")
        if str(body.get("stream")).lower() == "true" and model != "whisper-1":

            def events() -> Iterator[tuple[str | None, Any]]:
                for piece in _split(b.text, b.chunks):
                    yield None, {"type": "transcript.text.delta", "delta": piece}
                yield None, {"type": "transcript.text.done", "text": b.text, "usage": usage}

            return self._send_sse(events(), fault)
        payload: dict[str, Any] = {"text": b.text}
        if fmt == "verbose_json":
            payload.update(task="translate" if translation else "transcribe", language="english",
                           duration=seconds, segments=[])
        if not translation:
            payload["usage"] = usage
        self._send_json(200, payload)

    def _openai_speech(self, body: dict[str, Any], fault: Fault | None) -> None:
        """Speech: the audio itself. tts-1 bills characters and refuses `sse`; gpt-4o-mini-tts bills tokens,
        reported only on the `speech.audio.done` event of an `sse` stream."""
        b = self._behaviour(str(body.get("model", "")))
        model, text = str(body.get("model", "")), str(body.get("input", ""))
        sse = body.get("stream_format") == "sse"
        if sse and model.startswith("tts-1"):
            return self._invalid_request(f"stream_format 'sse' is not supported for {model}.", "stream_format")
        audio = b"ID3\x04\x00" + bytes(len(text) * 8)
        if not sse:
            return self._send_bytes(200, audio, "audio/mpeg")
        input_tokens = b.input_tokens if b.input_tokens is not None else max(1, len(text) // 4)
        usage = {"input_tokens": input_tokens, "output_tokens": b.output_tokens,
                 "total_tokens": input_tokens + b.output_tokens}

        def events() -> Iterator[tuple[str | None, Any]]:
            for start in range(0, len(audio), 64):
                yield None, {"type": "speech.audio.delta", "audio": base64.b64encode(audio[start:start + 64]).decode()}
            yield None, {"type": "speech.audio.done", "usage": usage}

        self._send_sse(events(), fault)

    def _create_batch(self, path: str, body: dict[str, Any]) -> None:
        """OpenAI `POST /v1/batches` and Anthropic `POST /v1/messages/batches`: a batch, in progress."""
        batch_id = f"batch_{uuid.uuid4().hex[:12]}"
        if "messages" in path:
            return self._send_json(200, {
                "id": f"msg{batch_id}", "type": "message_batch", "processing_status": "in_progress",
                "request_counts": {"processing": len(body.get("requests") or []), "succeeded": 0, "errored": 0,
                                   "canceled": 0, "expired": 0},
                "created_at": "2026-11-25T10:00:00Z", "expires_at": "2026-11-26T10:00:00Z", "ended_at": None,
                "archived_at": None, "cancel_initiated_at": None, "results_url": None})
        self._send_json(200, {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
                              "input_file_id": body.get("input_file_id"), "completion_window": "24h",
                              "status": "validating", "created_at": int(time.time())})

    def _openai_completions(self, body: dict[str, Any], fault: Fault | None) -> None:
        """The legacy Completions API: `choices[].text`; with `stream_options.include_usage`, a last chunk
        with no choices and the usage."""
        b, input_tokens, output = self._counts(body)
        base = {"id": f"cmpl-{uuid.uuid4().hex[:16]}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", "")}
        usage = self._openai_usage(b, input_tokens, output)
        if not body.get("stream"):
            return self._send_json(200, {**base, "choices": [{"text": b.text, "index": 0, "logprobs": None,
                                                              "finish_reason": "length"}], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[tuple[str | None, Any]]:
            pieces = _split(b.text, b.chunks)
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                yield None, {**base, "choices": [{"text": piece, "index": 0, "logprobs": None,
                                                  "finish_reason": "length" if last else None}], "usage": None}
            if include_usage:
                yield None, {**base, "choices": [], "usage": usage}
            yield None, "[DONE]"

        self._send_sse(events(), fault)

    def _openai_responses(self, body: dict[str, Any], fault: Fault | None) -> None:
        b, input_tokens, output = self._counts(body)
        response_id = f"resp_{uuid.uuid4().hex[:16]}"
        message_id = f"msg_{uuid.uuid4().hex[:16]}"
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": b.cache_read_tokens, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": min(b.reasoning_tokens, output)},
            "total_tokens": input_tokens + output,
        }
        if b.usage_cost is not None:  # OpenRouter reports its cost on the Responses API too
            usage["cost"] = b.usage_cost

        def response(status: str, text: str, with_usage: bool) -> dict[str, Any]:
            content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
            searches = [{"type": "web_search_call", "id": f"ws_{i}", "status": "completed",
                         "action": {"type": "search", "query": "q"}} for i in range(b.web_searches)]
            message = {"type": "message", "id": message_id, "status": "completed", "role": "assistant",
                       "content": content}
            return {
                "id": response_id, "object": "response", "created_at": int(time.time()), "model": body.get("model"),
                "status": status, "output": [*searches, message] if text else [],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "service_tier": b.service_tier or body.get("service_tier") or "default",
                "usage": usage if with_usage else None,
            }

        if not body.get("stream"):
            return self._send_json(200, response("completed", b.text, True))

        def events() -> Iterator[tuple[str | None, Any]]:
            # the API's order for one message: the item and its part open, text deltas, then each closes
            where = {"item_id": message_id, "output_index": 0, "content_index": 0}
            part = {"type": "output_text", "text": b.text, "annotations": []}
            item = {"type": "message", "id": message_id, "status": "completed", "role": "assistant", "content": [part]}
            steps: list[dict[str, Any]] = [
                {"type": "response.created", "response": response("in_progress", "", False)},
                {"type": "response.in_progress", "response": response("in_progress", "", False)},
                {"type": "response.output_item.added", "output_index": 0,
                 "item": {**item, "status": "in_progress", "content": []}},
                {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
                *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                  for piece in _split(b.text, b.chunks)),
                {"type": "response.output_text.done", **where, "text": b.text, "logprobs": []},
                {"type": "response.content_part.done", **where, "part": part},
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                {"type": "response.completed", "response": response("completed", b.text, True)},
            ]
            for seq, step in enumerate(steps):
                yield step["type"], {**step, "sequence_number": seq}

        self._send_sse(events(), fault)

    def _openai_embeddings(self, body: dict[str, Any]) -> None:
        """OpenAI embeddings; also Mistral's (same path, `inputs` not `input`, and an `id`)."""
        _, input_tokens, _ = self._counts(body)
        inputs = body.get("input", body.get("inputs"))
        count = len(inputs) if isinstance(inputs, list) else 1
        payload: dict[str, Any] = {
            "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)],
            "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
        }
        if "mistral" in (self.headers.get("User-Agent") or "").lower():
            payload["id"] = f"embd-{uuid.uuid4().hex[:16]}"
        self._send_json(200, payload)

    def _cohere_embed(self, body: dict[str, Any]) -> None:
        """Cohere v2 embed: embeddings by type; what is billed is `meta.billed_units.input_tokens`."""
        _, input_tokens, _ = self._counts({**body, "messages": body.get("texts")})
        texts = body.get("texts") or []
        vectors = [[0.1, 0.2, 0.3] for _ in texts]
        self._send_json(200, {
            "id": str(uuid.uuid4()), "texts": texts, "response_type": "embeddings_by_type",
            "embeddings": {kind: vectors for kind in body.get("embedding_types") or ["float"]},
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": input_tokens}},
        })

    def _voyage_rerank(self, body: dict[str, Any]) -> None:
        """Voyage AI rerank: billed by tokens, the query counted once for each document, plus the documents."""
        documents = body.get("documents") or []
        behaviour = self._behaviour(str(body.get("model", "")))
        tokens = behaviour.input_tokens if behaviour.input_tokens is not None else sum(
            max(1, len(str(body.get("query", ""))) // 4) + max(1, len(str(doc)) // 4) for doc in documents)
        top = body.get("top_k") or len(documents)
        self._send_json(200, {
            "object": "list", "model": body.get("model"), "usage": {"total_tokens": tokens},
            "data": [{"index": i, "relevance_score": round(1 - i / (len(documents) + 1), 4)}
                     for i in range(min(top, len(documents)))],
        })

    def _cohere_rerank(self, body: dict[str, Any]) -> None:
        """Cohere v2 rerank: billed in search units, one per query over up to 100 documents."""
        documents = body.get("documents") or []
        top = body.get("top_n") or len(documents)
        self._send_json(200, {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, "relevance_score": round(1 - i / (len(documents) + 1), 4)}
                        for i in range(min(top, len(documents)))],
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"search_units": max(1, -(-len(documents) // 100))}},
        })

    # --- Anthropic ---
    def _anthropic_usage(self, b: ModelBehaviour, input_tokens: int, output: int) -> dict[str, Any]:
        uncached = max(0, input_tokens - b.cache_read_tokens - b.cache_write_tokens - b.cache_write_1h_tokens)
        return {
            "input_tokens": uncached,
            "cache_read_input_tokens": b.cache_read_tokens,
            "cache_creation_input_tokens": b.cache_write_tokens + b.cache_write_1h_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": b.cache_write_tokens,
                               "ephemeral_1h_input_tokens": b.cache_write_1h_tokens},
            "output_tokens": output,
            "service_tier": b.service_tier or "standard",
        }

    def _anthropic_messages(self, body: dict[str, Any], fault: Fault | None) -> None:
        message = self._anthropic_message(body, str(body.get("model", "")))
        if not body.get("stream"):
            return self._send_json(200, message)
        self._send_sse(self._anthropic_events(message, self._behaviour(str(body.get("model", "")))), fault)

    def _anthropic_message(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        b, input_tokens, output = self._counts({**body, "model": model})
        usage = self._anthropic_usage(b, input_tokens, output)
        if b.compaction_steps:
            steps = [{"type": "compaction" if i < len(b.compaction_steps) - 1 else "message", "input_tokens": inp,
                      "output_tokens": out, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
                     for i, (inp, out) in enumerate(b.compaction_steps)]
            usage = {**usage, "input_tokens": steps[-1]["input_tokens"], "output_tokens": steps[-1]["output_tokens"],
                     "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "iterations": steps}
        return {"id": f"msg_{uuid.uuid4().hex[:16]}", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": b.text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": usage}

    def _anthropic_events(self, message: dict[str, Any], b: ModelBehaviour) -> Iterator[tuple[str, Any]]:
        usage = message["usage"]
        start_usage = {**usage, "output_tokens": 1}
        yield "message_start", {"type": "message_start",
                                "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}}
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
        for piece in _split(b.text, b.chunks):
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": piece}}
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        # message_delta usage is cumulative: it repeats the input counts, and output is the final total
        delta_usage = {k: usage[k] for k in ("input_tokens", "cache_read_input_tokens",
                                              "cache_creation_input_tokens", "output_tokens")}
        if b.output_only_delta:
            delta_usage = {"output_tokens": usage["output_tokens"]}
        if "iterations" in usage:
            delta_usage["iterations"] = usage["iterations"]
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                   "stop_sequence": None}, "usage": delta_usage}
        yield "message_stop", {"type": "message_stop"}

    # --- Ollama (native API) ---
    def _ollama(self, kind: str, body: dict[str, Any], fault: Fault | None) -> None:
        """Ollama's /api/chat, /api/generate and /api/embed. Streams by default (NDJSON); the counts come
        on the response or the final `done` line, and `prompt_eval_count` is left out when the whole
        prompt was served from Ollama's cache (`cache_read_tokens` >= the prompt here), as Ollama does."""
        b, input_tokens, output = self._counts(body)
        options = body.get("options") or {}
        if isinstance(options.get("num_predict"), int) and options["num_predict"] > 0:
            output = min(output, options["num_predict"])
        model = body.get("model", "")
        counts: dict[str, Any] = {"total_duration": 1_200_000, "load_duration": 100_000, "eval_duration": 900_000}
        if b.cache_read_tokens < input_tokens:
            counts["prompt_eval_count"] = input_tokens - b.cache_read_tokens
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        if kind == "embeddings":  # the older API: the vector alone, no counts
            return self._send_json(200, {"embedding": [0.1, 0.2, 0.3]})
        if kind == "embed":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            return self._send_json(200, {"model": model, "embeddings": [[0.1, 0.2, 0.3]] * count, **counts})

        def line(piece: str, done: bool) -> dict[str, Any]:
            content = {"message": {"role": "assistant", "content": piece}} if kind == "chat" else {"response": piece}
            final = {"done_reason": "stop", "eval_count": output, **counts} if done else {}
            return {"model": model, "created_at": created, **content, "done": done, **final}

        if body.get("stream") is False:
            return self._send_json(200, line(b.text, True))
        frames = (json.dumps(part).encode() + b"\n" for part in
                  [*(line(piece, False) for piece in _split(b.text, b.chunks)), line("", True)])
        self._send_chunked(frames, fault, "application/x-ndjson")

    # --- Cohere ---
    def _cohere_chat(self, body: dict[str, Any], fault: Fault | None) -> None:
        """Cohere v2 chat. `tokens` also counts the prompt template, which is not billed: 200 more here,
        so a parser that bills `tokens` instead of `billed_units` is caught."""
        b, input_tokens, output = self._counts(body)
        usage = {"billed_units": {"input_tokens": input_tokens, "output_tokens": output},
                 "tokens": {"input_tokens": input_tokens + 200, "output_tokens": output}}
        message_id = uuid.uuid4().hex
        if not body.get("stream"):
            return self._send_json(200, {
                "id": message_id, "finish_reason": "COMPLETE", "usage": usage,
                "message": {"role": "assistant", "content": [{"type": "text", "text": b.text}]},
            })

        def events() -> Iterator[tuple[str | None, Any]]:
            yield "message-start", {"type": "message-start", "id": message_id,
                                    "delta": {"message": {"role": "assistant", "content": []}}}
            yield "content-start", {"type": "content-start", "index": 0,
                                    "delta": {"message": {"content": {"type": "text", "text": ""}}}}
            for piece in _split(b.text, b.chunks):
                yield "content-delta", {"type": "content-delta", "index": 0,
                                        "delta": {"message": {"content": {"text": piece}}}}
            yield "content-end", {"type": "content-end", "index": 0}
            yield "message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}

        self._send_sse(events(), fault)

    # --- Gemini ---
    def _gemini(self, model: str, body: dict[str, Any], stream: bool, fault: Fault | None) -> None:
        config = body.get("generationConfig") or {}
        b, input_tokens, output = self._counts({**body, "model": model, "max_tokens": config.get("maxOutputTokens")})
        thoughts = b.reasoning_tokens
        usage = {"promptTokenCount": input_tokens, "candidatesTokenCount": output,
                 "totalTokenCount": input_tokens + output + thoughts}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if b.cache_read_tokens:
            usage["cachedContentTokenCount"] = b.cache_read_tokens
        if b.traffic_type:
            usage["trafficType"] = b.traffic_type

        call = _gemini_function_to_call(body)

        def candidate(text: str, finish: str | None) -> dict[str, Any]:
            part = {"functionCall": {"name": call, "args": {}}} if call else {"text": text}
            item: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            if finish:
                item["finishReason"] = finish
            return item

        if not stream:
            return self._send_json(200, {"candidates": [candidate(b.text, "STOP")], "usageMetadata": usage,
                                         "modelVersion": model, "responseId": uuid.uuid4().hex[:16]})

        def events() -> Iterator[tuple[str | None, Any]]:
            pieces = _split(b.text, b.chunks)
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                partial = {"promptTokenCount": input_tokens}
                yield None, {"candidates": [candidate(piece, "STOP" if last else None)],
                             "usageMetadata": usage if last else partial, "modelVersion": model}

        self._send_sse(events(), fault)

    # --- Bedrock ---
    def _bedrock_converse(self, model_id: str, body: dict[str, Any], stream: bool, fault: Fault | None) -> None:
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
        b, input_tokens, output = self._counts({**body, "model": model_id, "max_tokens": limit})
        cache_write = b.cache_write_tokens + b.cache_write_1h_tokens
        uncached = max(0, input_tokens - b.cache_read_tokens - cache_write)
        usage: dict[str, Any] = {"inputTokens": uncached, "outputTokens": output,
                                 "totalTokens": input_tokens + output}
        if b.cache_read_tokens:
            usage["cacheReadInputTokens"] = b.cache_read_tokens
        if cache_write:
            usage["cacheWriteInputTokens"] = cache_write
            usage["cacheDetails"] = [d for d in ({"ttl": "5m", "inputTokens": b.cache_write_tokens},
                                                 {"ttl": "1h", "inputTokens": b.cache_write_1h_tokens})
                                     if d["inputTokens"]]
        tier = {"type": b.service_tier or (body.get("serviceTier") or {}).get("type") or "default"}
        if not stream:
            return self._send_json(200, {
                "output": {"message": {"role": "assistant", "content": [{"text": b.text}]}},
                "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 5}, "serviceTier": tier,
            })

        def events() -> Iterator[tuple[str, Any]]:
            yield "messageStart", {"role": "assistant"}
            for piece in _split(b.text, b.chunks):
                yield "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
            yield "contentBlockStop", {"contentBlockIndex": 0}
            yield "messageStop", {"stopReason": "end_turn"}
            yield "metadata", {"usage": usage, "metrics": {"latencyMs": 5}, "serviceTier": tier}

        self._send_eventstream(events(), fault)

    def _bedrock_invoke(self, model_id: str, body: dict[str, Any], stream: bool, fault: Fault | None) -> None:
        """InvokeModel with an Anthropic Messages body. Usage is not in Bedrock's own shape: the counts
        come in `X-Amzn-Bedrock-*-Token-Count` headers, or, streamed, in the last chunk's
        `amazon-bedrock-invocationMetrics` (input excludes the cache, as in Converse). Embedding models
        (Titan `inputText`, Cohere `texts`) answer in their own shape with an input count only."""
        if "embed" in model_id:
            return self._bedrock_embed(model_id, body)
        message = self._anthropic_message(body, model_id)
        usage = message["usage"]
        counts = {"Input": usage["input_tokens"], "Output": usage["output_tokens"],
                  "Cache-Read-Input": usage["cache_read_input_tokens"],
                  "Cache-Write-Input": usage["cache_creation_input_tokens"]}
        tier = self._behaviour(model_id).service_tier or self.headers.get("X-Amzn-Bedrock-Service-Tier") or "default"
        if not stream:
            headers = {f"X-Amzn-Bedrock-{name}-Token-Count": str(n) for name, n in counts.items()}
            headers.update({"X-Amzn-Bedrock-Invocation-Latency": "5", "X-Amzn-Bedrock-Service-Tier": tier})
            return self._send_json(200, message, headers)
        metrics = {"inputTokenCount": counts["Input"], "outputTokenCount": counts["Output"],
                   "cacheReadInputTokenCount": counts["Cache-Read-Input"],
                   "cacheWriteInputTokenCount": counts["Cache-Write-Input"],
                   "invocationLatency": 5, "firstByteLatency": 1}

        def chunks() -> Iterator[tuple[str, Any]]:
            for kind, event in self._anthropic_events(message, self._behaviour(model_id)):
                if kind == "message_stop":
                    event = {**event, "amazon-bedrock-invocationMetrics": metrics}
                yield "chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode()}

        self._send_eventstream(chunks(), fault)

    def _bedrock_embed(self, model_id: str, body: dict[str, Any]) -> None:
        b = self._behaviour(model_id)
        texts = body.get("texts") if model_id.startswith("cohere.") else body.get("inputText")
        if not texts:
            return self._send_json(400, {"message": "Malformed input request: required key missing"},
                                   {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/"})
        count = b.input_tokens if b.input_tokens is not None else _prompt_tokens({"messages": texts})
        if model_id.startswith("cohere."):
            payload: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts, "response_type": "embeddings_floats",
                                       "embeddings": [[0.1, 0.2, 0.3] for _ in texts]}
        else:
            payload = {"embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": count}
        self._send_json(200, payload, {"X-Amzn-Bedrock-Input-Token-Count": str(count),
                                       "X-Amzn-Bedrock-Invocation-Latency": "3"})


_DALLE_SIZES = {"dall-e-2": ("256x256", "512x512", "1024x1024"), "dall-e-3": ("1024x1024", "1792x1024", "1024x1792")}


def _wav_seconds(raw: bytes) -> float | None:
    """The length of a WAV file inside a multipart upload, as the real API measures what it bills."""
    import io
    import wave

    start = raw.find(b"RIFF")
    if start < 0:
        return None
    try:
        with wave.open(io.BytesIO(raw[start:])) as audio:
            return audio.getnframes() / audio.getframerate()
    except Exception:  # wave raises RuntimeError, struct.error, EOFError... on arbitrary bytes
        return None


def _bedrock_model(model_id: str) -> str:
    """An inference-profile ARN serves the model it names."""
    return model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id


def _gemini_function_to_call(body: dict[str, Any]) -> str | None:
    """The first declared function, until the conversation holds a function response: so a client
    with automatic function calling makes exactly two requests."""
    answered = any("functionResponse" in part for content in body.get("contents") or []
                   for part in (content.get("parts") or []) if isinstance(part, dict))
    if answered:
        return None
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            return str(declaration.get("name"))
    return None


def _eventstream_message(event_type: str, payload: Any) -> bytes:
    """One message of AWS's event-stream encoding: prelude (lengths + CRC), string headers, JSON
    payload, message CRC. botocore's own decoder reads it on the client side."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        name_bytes, value_bytes = name.encode(), value.encode()
        headers += bytes([len(name_bytes)]) + name_bytes + b"\x07" + struct.pack(">H", len(value_bytes)) + value_bytes
    data = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(data) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + data
    return message + struct.pack(">I", zlib.crc32(message))


def _split(text: str, chunks: int) -> list[str]:
    """`text` in `chunks` pieces (repeating it when more chunks than characters are asked for)."""
    chunks = max(1, chunks)
    if len(text) < chunks:
        text = (text + " ") * (chunks // max(1, len(text)) + 1)
    size = len(text) // chunks
    pieces = [text[i * size:(i + 1) * size] for i in range(chunks - 1)]
    pieces.append(text[(chunks - 1) * size:])
    return pieces


def _error_body(status: int) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": f"fake provider injected HTTP {status}", "code": kind}}


def add_arguments(parser: Any) -> None:
    """The options of `otel-llm-cost fake-provider` and `python -m otel_llm_cost.testing.fake_provider`."""
    parser.add_argument("--port", type=int, default=8765, metavar="N",
                        help="loopback port to listen on (default: 8765; 0 picks a free one)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=field=value,...",
                        help="what the fake reports for a model, e.g. gpt-4o=input_tokens=1000,output_tokens=100 "
                             "(fields of ModelBehaviour; repeatable)")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop when standard input closes (for a harness that owns this process)")


def serve(args: Any) -> int:
    """Serve until Ctrl-C or SIGTERM (or stdin closing, when asked); print the base URLs first."""
    import signal
    import sys

    try:
        fake = FakeProvider(port=args.port)
    except OSError as error:
        print(f"otel-llm-cost: cannot listen on 127.0.0.1:{args.port} ({error.strerror or error}); "
              "pick another with --port", file=sys.stderr)
        return 2
    with fake:
        fake.keep_request_bodies(False)
        for spec in args.model:
            name, _, fields = spec.partition("=")
            values = dict(item.split("=", 1) for item in fields.split(",") if item)
            fake.set_model(name, **{k: (int(v) if v.isdigit() else v) for k, v in values.items()})
        print(fake.url, flush=True)
        if not args.until_stdin_closes:
            print(f"  OpenAI and every OpenAI-compatible SDK   base_url={fake.openai_url}\n"
                  f"  Anthropic                               base_url={fake.anthropic_url}\n"
                  f"  Gemini (google-genai)                   HttpOptions(base_url={fake.gemini_url!r})\n"
                  f"  Bedrock (boto3)                         endpoint_url={fake.bedrock_url}\n"
                  f"  Mistral, Cohere, Ollama                 server_url / base_url / host={fake.url}\n"
                  "serving until Ctrl-C", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            if args.until_stdin_closes:
                sys.stdin.read()
            else:
                while not stop.wait(0.5):
                    pass
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> None:
    """`python -m otel_llm_cost.testing.fake_provider`: the same as `otel-llm-cost fake-provider`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m otel_llm_cost.testing.fake_provider",
                                     description="A loopback server that speaks each LLM provider's wire format, "
                                                 "for trying an app (and these tests) offline.")
    add_arguments(parser)
    raise SystemExit(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

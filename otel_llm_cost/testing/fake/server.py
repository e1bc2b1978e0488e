"""The fake provider's server: `FakeProvider` (start, addresses, behaviours, observations), the
handler that routes each path to its wire format, and `otel-llm-cost fake-provider`."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from otel_llm_cost.testing.fake._model import Fault, ModelBehaviour, _State
from otel_llm_cost.testing.fake.anthropic import AnthropicWire
from otel_llm_cost.testing.fake.bedrock import BedrockWire, _bedrock_model
from otel_llm_cost.testing.fake.cohere import CohereWire
from otel_llm_cost.testing.fake.gemini import GeminiWire
from otel_llm_cost.testing.fake.ollama import OllamaWire
from otel_llm_cost.testing.fake.openai import OpenAIWire
from otel_llm_cost.testing.fake.replicate import _CREATE as _REPLICATE_CREATE, ReplicateWire
from otel_llm_cost.testing.fake.tgi import TGIWire
from otel_llm_cost.testing.fake.voyage import VoyageWire

__all__ = ["FakeProvider", "serve", "add_arguments", "main"]


class FakeProvider:
    """Start with `with FakeProvider() as fake:`; then `fake.openai_url`, `fake.anthropic_url`, ..."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._grpc: Any = None

    # --- lifecycle ---
    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._grpc is not None:
            self._grpc.stop()

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

    @property
    def grpc_address(self) -> str:
        """`127.0.0.1:port` of the gRPC APIs (xAI, Gemini and Vertex AI over gRPC; see `fake.grpc`),
        started on first use: plaintext, for an insecure channel."""
        if self._grpc is None:
            from otel_llm_cost.testing.fake.grpc import GrpcFake

            self._grpc = GrpcFake(self._state)
        return f"127.0.0.1:{self._grpc.port}"

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

    def add_hub_model(self, model_id: str, pipeline_tag: str, tags: tuple[str, ...] = (),
                      providers: dict[str, str] | None = None) -> None:
        """The Hugging Face Hub's `/api/models/{id}`, which huggingface_hub reads before its first call of
        a model (point `huggingface_hub.constants.ENDPOINT` here): its task, and `providers` (name ->
        the provider's own model id) as the `inferenceProviderMapping` the SDK routes by."""
        info: dict[str, Any] = {"id": model_id, "modelId": model_id, "pipeline_tag": pipeline_tag,
                                "tags": [pipeline_tag, *tags], "private": False, "downloads": 0, "likes": 0}
        if providers:
            task = "conversational" if pipeline_tag == "text-generation" else pipeline_tag
            info["inferenceProviderMapping"] = {name: {"status": "live", "providerId": served, "task": task}
                                                for name, served in providers.items()}
        with self._state.lock:
            self._state.downloads[f"/api/models/{model_id}"] = (json.dumps(info).encode(), "application/json")

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
    request_queue_size = 256
    """socketserver's default backlog of 5 resets connections when 64 threads call at once."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that disconnects mid-response is normal here, not an error to print."""


class _Handler(OpenAIWire, AnthropicWire, GeminiWire, BedrockWire, CohereWire, OllamaWire, VoyageWire, TGIWire,
               ReplicateWire):
    """Every wire format, routed by path."""

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
        replicate = _REPLICATE_CREATE.match(path)
        if replicate:
            return self._replicate_create(replicate, body)
        tgi = re.match(r".*/hf-inference/models/(.+?)(/pipeline/feature-extraction)?$", path)
        if tgi:
            if tgi.group(2):
                return self._tgi_features(body)
            return self._tgi_generate(unquote(tgi.group(1)), body, fault)
        bedrock = re.match(r"^/model/(.+)/(converse|converse-stream|invoke|invoke-with-response-stream)$", path)
        if bedrock:
            model_id, operation = _bedrock_model(unquote(bedrock.group(1))), bedrock.group(2)
            if operation.startswith("invoke"):
                return self._bedrock_invoke(model_id, body, operation != "invoke", fault)
            return self._bedrock_converse(model_id, body, operation == "converse-stream", fault)
        self._send_json(404, {"error": {"message": f"no route for {path}", "type": "not_found"}})


def add_arguments(parser: Any) -> None:
    """The options of `otel-llm-cost fake-provider` and `python -m otel_llm_cost.testing.fake`."""
    parser.add_argument("--port", type=int, default=8765, metavar="N",
                        help="loopback port to listen on (default: 8765; 0 picks a free one)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=field=value,...",
                        help="what the fake reports for a model, e.g. gpt-4o=input_tokens=1000,output_tokens=100 "
                             f"(repeatable); fields: {', '.join(_model_fields())}")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop when standard input closes (for a harness that owns this process)")
    parser.add_argument("--grpc", action="store_true",
                        help="also serve the gRPC APIs (xai-sdk; Gemini and Vertex AI over gRPC) on a port of their "
                             "own, printed at start (needs grpcio and the SDK's protobuf package)")


def serve(args: Any) -> int:
    """Serve until Ctrl-C or SIGTERM (or stdin closing, when asked); print the base URLs first."""
    import signal
    import sys

    try:
        models = [_parse_model(spec) for spec in args.model]
    except ValueError as error:
        print(f"otel-llm-cost: --model {error}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"otel-llm-cost: --port {args.port} is not a port (0 to 65535)", file=sys.stderr)
        return 2
    try:
        fake = FakeProvider(port=args.port)
    except OSError as error:
        print(f"otel-llm-cost: cannot listen on 127.0.0.1:{args.port} ({error.strerror or error}); "
              "pick another with --port", file=sys.stderr)
        return 2
    # SIGTERM ends the wait as Ctrl-C does, by raising in the main thread: a handler that set an Event
    # could run while the main thread held that Event's lock in wait(), and hang for ever
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with fake:
            return _serve(fake, args, models)
    except (KeyboardInterrupt, _Terminated):
        return 0


def _serve(fake: FakeProvider, args: Any, models: list[tuple[str, dict[str, Any]]]) -> int:
    """Print where each SDK finds the fake, then wait until told to stop."""
    import sys

    fake.keep_request_bodies(False)
    for name, behaviour in models:
        fake.set_model(name, **behaviour)
    print(fake.url, flush=True)
    grpc_line = ""
    if getattr(args, "grpc", False):
        try:
            grpc_line = (f"  xAI (xai-sdk), over gRPC                api_host={fake.grpc_address!r}, "
                         "use_insecure_channel=True\n")
        except ImportError as error:
            print(f"otel-llm-cost: cannot serve gRPC ({error}); pip install grpcio", file=sys.stderr)
            return 2
    if args.until_stdin_closes and grpc_line:
        print(fake.grpc_address, flush=True)
    if not args.until_stdin_closes:
        print(f"  OpenAI and every OpenAI-compatible SDK   base_url={fake.openai_url}\n"
              f"  Anthropic                               base_url={fake.anthropic_url}\n"
              f"  Gemini (google-genai)                   HttpOptions(base_url={fake.gemini_url!r})\n"
              f"  Bedrock (boto3)                         endpoint_url={fake.bedrock_url}\n"
              f"  Mistral, Cohere, Ollama                 server_url / base_url / host={fake.url}\n"
              f"{grpc_line}serving until Ctrl-C", flush=True)
    if args.until_stdin_closes:
        sys.stdin.read()
    else:
        while True:
            time.sleep(3600)
    return 0


class _Terminated(Exception):
    """SIGTERM arrived."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _model_fields() -> list[str]:
    import dataclasses

    return [field.name for field in dataclasses.fields(ModelBehaviour)]


def _parse_model(spec: str) -> tuple[str, dict[str, Any]]:
    """`NAME=field=value,...` as (name, fields of ModelBehaviour with their types); ValueError names the
    bad part in one line."""
    import dataclasses
    import typing

    name, _, fields = spec.partition("=")
    if not name or not fields:
        raise ValueError(f"{spec!r} is not NAME=field=value,... (e.g. gpt-4o=input_tokens=1000,output_tokens=100)")
    types = typing.get_type_hints(ModelBehaviour)
    known = {field.name for field in dataclasses.fields(ModelBehaviour)}
    behaviour: dict[str, Any] = {}
    for item in fields.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"{spec!r}: {item!r} is not field=value")
        if key not in known:
            raise ValueError(f"{spec!r}: unknown field {key!r}; fields: {', '.join(sorted(known))}")
        wanted = types[key]
        try:
            if wanted in (int, int | None):
                behaviour[key] = int(value)
            elif wanted in (float | None, float):
                behaviour[key] = float(value)
            elif wanted is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                behaviour[key] = value.lower() in ("true", "1")
            elif wanted in (str, str | None):
                behaviour[key] = value
            else:
                raise LookupError
        except ValueError:
            raise ValueError(f"{spec!r}: {key}={value!r} is not a valid {key}") from None
        except LookupError:
            raise ValueError(f"{spec!r}: field {key!r} cannot be set from the command line") from None
    return name, behaviour


def main(argv: list[str] | None = None) -> None:
    """`python -m otel_llm_cost.testing.fake`: the same as `otel-llm-cost fake-provider`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m otel_llm_cost.testing.fake",
                                     description="A loopback server that speaks each LLM provider's wire format, "
                                                 "for trying an app (and these tests) offline.")
    add_arguments(parser)
    raise SystemExit(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

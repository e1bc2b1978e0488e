"""OpenAI's wire format: Chat Completions, Responses, legacy completions, embeddings, images, audio
and the Batch API; Mistral, Groq and the OpenAI-compatible vendors share its chat path."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, ModelBehaviour, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["OpenAIWire"]


class OpenAIWire(Wire):
    """OpenAI's endpoints, answered as the API answers them."""

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


_DALLE_SIZES = {"dall-e-2": ("256x256", "512x512", "1024x1024"), "dall-e-3": ("1024x1024", "1792x1024", "1024x1792")}

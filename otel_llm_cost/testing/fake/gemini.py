"""The Gemini API (and Vertex AI): generateContent and its stream (SSE with `alt=sse`, else a JSON array)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["GeminiWire"]


class GeminiWire(Wire):
    """generateContent and its stream, as the Gemini API and Vertex AI send them."""

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

        if "alt=sse" in self.path:
            return self._send_sse(events(), fault)
        # without `alt=sse` the API streams one JSON array, an element at a time (the gapic REST transports
        # of google-generativeai and the Vertex AI SDK read it so)
        items = list(events())
        frames = (("[" if i == 0 else ",").encode() + json.dumps(data).encode() + (b"]" if i == len(items) - 1 else b"")
                  for i, (_, data) in enumerate(items))
        self._send_chunked(frames, fault, "application/json")


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

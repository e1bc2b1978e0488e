"""Ollama's native API: /api/chat, /api/generate, /api/embed and the older /api/embeddings (NDJSON streams)."""

from __future__ import annotations

import json
import time
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["OllamaWire"]


class OllamaWire(Wire):
    """Ollama's native endpoints."""

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

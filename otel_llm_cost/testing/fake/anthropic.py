"""Anthropic's Messages API, JSON and SSE, as the API itself, Claude on Vertex AI and on Bedrock send it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, ModelBehaviour, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["AnthropicWire"]


class AnthropicWire(Wire):
    """Messages, as the API, Vertex AI and Bedrock send them."""

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

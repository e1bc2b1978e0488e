"""Amazon Bedrock: Converse and ConverseStream (AWS binary event stream), InvokeModel and its stream."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, _prompt_tokens, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["BedrockWire"]


class BedrockWire(Wire):
    """The bedrock-runtime operations, with Bedrock's own token-count headers and metrics."""

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


def _bedrock_model(model_id: str) -> str:
    """An inference-profile ARN serves the model it names."""
    return model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id

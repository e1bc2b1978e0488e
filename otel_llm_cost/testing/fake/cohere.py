"""Cohere's v2 API: chat (JSON and its SSE events), embed, and rerank billed in search units."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["CohereWire"]


class CohereWire(Wire):
    """Cohere's v2 chat, embed and rerank."""

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

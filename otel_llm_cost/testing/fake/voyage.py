"""Voyage AI's rerank, billed by tokens (its embeddings share OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["VoyageWire"]


class VoyageWire(Wire):
    """Voyage AI's rerank."""

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

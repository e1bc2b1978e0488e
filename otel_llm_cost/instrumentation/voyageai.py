"""Voyage AI's SDK (`voyageai`): `embed` and `rerank` on `Client` and `AsyncClient`.

Knows voyageai's shapes and nothing else. Both report the tokens they bill in `total_tokens`: a
rerank is billed by the tokens of the query and documents together, so its usage is input tokens
alike. Named `voyageai`, priced at genai-prices' Voyage rates; a model it has no price for is unknown.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import count, given_str
from otel_llm_cost.instrumentation._refusal import ErrorBase
from otel_llm_cost.usage import Usage

__all__ = ["VoyageAIInstrumentor"]

# method: the operation, and the parameters that hold what is billed (before `model` when positional)
_SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "embed": ("embeddings", ("texts",)),
    "rerank": ("rerank", ("query", "documents")),
}


def _request_reader(method: str) -> Any:
    operation, billed = _SHAPES[method]

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        named = dict(zip((*billed, "model"), args))
        named.update(kwargs)
        return Request(operation=operation, provider="voyageai", api="voyageai", model=given_str(named.get("model")),
                       kwargs=kwargs, max_tokens=0, prompt=[named.get(name) for name in billed])

    return read


def _read_response(response: Any) -> Outcome:
    tokens = count(response, "total_tokens")
    if tokens is None:
        return Outcome(estimate_unreported=True)
    return Outcome(usage=Usage(input_tokens=tokens))


ENDPOINTS = {method: Endpoint(_request_reader(method), _read_response) for method in _SHAPES}


class VoyageAIInstrumentor(LLMInstrumentor):
    """Cost spans for Voyage AI's embeddings and reranking."""

    dependencies = ("voyageai >= 0.3",)
    error_base = ErrorBase("voyageai.error:VoyageError")
    targets = tuple(
        target
        for method, endpoint in ENDPOINTS.items()
        for target in (Target("voyageai.client", f"Client.{method}", endpoint),
                       Target("voyageai.client_async", f"AsyncClient.{method}", endpoint, is_async=True))
    )

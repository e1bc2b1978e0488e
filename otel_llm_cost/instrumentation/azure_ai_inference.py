"""Azure AI Inference (`azure-ai-inference`): `ChatCompletionsClient.complete` (plain and streamed) and
`EmbeddingsClient.embed`, sync and async.

Knows azure-ai-inference's shapes and nothing else. Its wire format is Chat Completions, so responses
and stream updates are read as OpenAI's are (its models read like OpenAI's objects). A call is named by
the endpoint it goes to: an Azure OpenAI deployment (`*.openai.azure.com`) is `azure.ai.openai`; every
other endpoint (Foundry, serverless, managed compute) is `azure.ai.inference`. Both are priced at the
rates Azure lists (genai-prices' `azure`). The client's own defaults (`model`, `max_tokens` given to
its constructor) count as much as the call's arguments; a body passed whole (`complete(body)`) is read
as the request.

Nothing is added to a request: Azure's endpoints send a stream's usage on its final update unasked.
The sync client sends through `requests` and the async one through aiohttp, transports we do not
answer for, so a refused call raises (`BudgetExceededError`, also an `azure.core.exceptions.AzureError`).
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import count, field, given, given_int, given_str
from otel_llm_cost.instrumentation._refusal import ErrorBase
from otel_llm_cost.instrumentation.openai import ChatStream, read_chat_response
from otel_llm_cost.providers import route_for_url
from otel_llm_cost.usage import Usage

__all__ = ["AzureAIInferenceInstrumentor"]


def _request_reader(operation: str, inputs: str) -> Any:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        body = args[0] if args and isinstance(args[0], dict) else given(kwargs.get("body"))
        named = {**body, **kwargs} if isinstance(body, dict) else kwargs

        def value(key: str) -> Any:
            found = given(named.get(key))
            return found if found is not None else getattr(instance, f"_{key}", None)

        route = route_for_url(str(field(getattr(instance, "_config", None), "endpoint") or ""),
                              default="azure.ai.inference")
        return Request(
            operation=operation,
            provider="azure.ai.openai" if (route.host or "").endswith(".openai.azure.com") else "azure.ai.inference",
            api="openai.chat" if operation == "chat" else "openai.embeddings",
            model=given_str(value("model")),
            kwargs=kwargs,
            max_tokens=given_int(value("max_tokens")) if operation == "chat" else 0,
            stream=given(named.get("stream")) is True,
            prompt=given(named.get(inputs)),
            tools=given(named.get("tools")),
            server_address=route.host,
            server_port=route.port,
        )

    return read


def _read_embeddings(response: Any) -> Outcome:
    tokens = count(field(response, "usage"), "prompt_tokens")
    if tokens is None:
        return Outcome(estimate_unreported=True)
    return Outcome(usage=Usage(input_tokens=tokens), response_model=given_str(field(response, "model")))


CHAT = Endpoint(_request_reader("chat", "messages"), read_chat_response, ChatStream)
EMBEDDINGS = Endpoint(_request_reader("embeddings", "input"), _read_embeddings)


class AzureAIInferenceInstrumentor(LLMInstrumentor):
    """Cost spans for Azure AI Inference's chat and embeddings clients."""

    dependencies = ("azure-ai-inference >= 1.0.0b1",)
    error_base = ErrorBase("azure.core.exceptions:AzureError", lambda refusal: {
        "message": str(refusal), "inner_exception": None, "continuation_token": None, "exc_type": None,
        "exc_value": None, "exc_traceback": None, "exc_msg": str(refusal)})
    targets = (
        Target("azure.ai.inference._patch", "ChatCompletionsClient.complete", CHAT),
        Target("azure.ai.inference.aio._patch", "ChatCompletionsClient.complete", CHAT, is_async=True),
        Target("azure.ai.inference._patch", "EmbeddingsClient.embed", EMBEDDINGS),
        Target("azure.ai.inference.aio._patch", "EmbeddingsClient.embed", EMBEDDINGS, is_async=True),
    )

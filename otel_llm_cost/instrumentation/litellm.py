"""LiteLLM: `completion`, `acompletion`, `embedding` and `aembedding`, streams included.

One span per LiteLLM call, named for the provider LiteLLM sends it to (`groq/llama-3.3-70b` is
`groq`), priced with our prices for that provider. LiteLLM often sends through another SDK we
instrument (the openai client for OpenAI-compatible providers); that inner call passes through (see
`_call._sending`), so each call is counted once. LiteLLM's own computed cost is used only when we know
no price for the model: ours is corrected where genai-prices is wrong and knows tiers, cache TTLs and
dates, so where both exist ours wins (README: "LiteLLM").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from otel_llm_cost import _state
from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request
from otel_llm_cost.instrumentation._refusal import Answer, Direct, generated_client_error, Resend, refusal_id
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import (
    asking_stream_usage,
    choice_finish_reasons,
    field,
    given,
    given_int,
    given_str,
    text,
)
from otel_llm_cost.instrumentation.openai import ChatStream
from otel_llm_cost.providers import reported_cost, semconv_provider
from otel_llm_cost.usage import usage_from_litellm

__all__ = ["LiteLLMInstrumentor"]

_PROVIDER_NAMES: dict[str, str] = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "text-completion-openai": "openai",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "cohere_chat": "cohere",
    "xai": "x_ai",
    "ollama_chat": "ollama",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "moonshot": "moonshot_ai",
}
"""LiteLLM's provider names that differ from the semantic conventions' (or genai-prices') ones."""


@functools.lru_cache(maxsize=1024)
def _route(model: str, custom_provider: str | None, api_base: str | None) -> tuple[str, str]:
    """(provider, model as the provider knows it), as LiteLLM itself resolves them."""
    import litellm

    try:
        resolved, provider, _, _ = litellm.get_llm_provider(model=model, custom_llm_provider=custom_provider,
                                                            api_base=api_base)
    except Exception:  # LiteLLM will refuse the call itself, with its own error
        return "litellm", model
    return _PROVIDER_NAMES.get(provider) or semconv_provider(provider), resolved


def _request_reader(operation: str, prompt_field: str) -> Any:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        named = dict(zip(("model", prompt_field), args))
        named.update(kwargs)
        model = given_str(named.get("model"))
        if model is None:
            return None
        api_base = given_str(named.get("api_base")) or given_str(named.get("base_url"))
        provider, provider_model = _route(model, given_str(named.get("custom_llm_provider")), api_base)
        stream = given(named.get("stream")) is True
        asking = asking_stream_usage(kwargs) if stream and _state.settings().stream_usage else None
        send_kwargs, hide = (kwargs, False) if asking is None else (asking, True)
        return Request(
            operation=operation,
            provider=provider,
            api="openai.chat",
            model=provider_model,
            kwargs=send_kwargs,
            max_tokens=0 if operation == "embeddings" else given_int(named.get("max_completion_tokens"),
                                                                     named.get("max_tokens")),
            stream=stream,
            prompt=given(named.get(prompt_field)),
            tools=given(named.get("tools")),
            hide_usage_chunk=hide,
        )

    return read


def _read_response(response: Any) -> Outcome:
    usage = field(response, "usage")
    hidden = field(response, "_hidden_params")
    return Outcome(
        usage=usage_from_litellm(usage) if usage is not None else None,
        response_model=text(response, "model"),
        response_id=text(response, "id"),
        finish_reasons=choice_finish_reasons(response),
        fallback_cost=reported_cost(hidden.get("response_cost")) if isinstance(hidden, Mapping) else None,
        fallback_source="litellm",
    )


class _LiteLLMStream(ChatStream):
    """LiteLLM's chunks are Chat Completions chunks; usage is on the last one when asked for."""

    __slots__ = ()

    def outcome(self, complete: bool) -> Outcome:
        outcome = super().outcome(complete)
        if self._usage is not None:
            outcome.usage = usage_from_litellm(self._usage)
        # the `cost` LiteLLM puts on a stream's usage is its own price table's, not the provider's bill
        outcome.fallback_cost, outcome.provider_cost = outcome.provider_cost, None
        outcome.fallback_source = "litellm"
        return outcome


def _answer(request: Request, refusal: str) -> Answer:
    """A refused completion: LiteLLM's own `ModelResponse`, zero usage; a stream is LiteLLM's own
    `mock_response` stream (no provider is called), which reports no usage."""
    if request.stream:  # without the usage chunk we may have asked for: the app did not
        return Resend({"mock_response": refusal, **({"stream_options": None} if request.hide_usage_chunk else {})})
    import litellm

    return Direct(litellm.ModelResponse(
        id=refusal_id(), model=request.model, object="chat.completion",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": refusal}}],
        usage=litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)))


COMPLETION = Endpoint(_request_reader("chat", "messages"), _read_response, _LiteLLMStream, answer_refusal=_answer)
EMBEDDING = Endpoint(_request_reader("embeddings", "input"), _read_response)


class LiteLLMInstrumentor(LLMInstrumentor):
    """Cost spans for `litellm`. Its functions are bound twice (`litellm.main.completion`, re-exported as
    `litellm.completion` when LiteLLM is imported): both are wrapped, and the nesting rule counts once."""

    dependencies = ("litellm >= 1.60",)
    error_base = generated_client_error("openai")  # LiteLLM's exceptions derive from openai's
    targets = tuple(
        target
        for module in ("litellm", "litellm.main")
        for target in (
            Target(module, "completion", COMPLETION),
            Target(module, "acompletion", COMPLETION, is_async=True),
            Target(module, "embedding", EMBEDDING),
            Target(module, "aembedding", EMBEDDING, is_async=True),
        )
    )

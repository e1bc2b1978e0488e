"""Hugging Face's `InferenceClient` and `AsyncInferenceClient`: `chat_completion`, also as the
OpenAI-style `client.chat.completions.create`, plain and streamed; `text_generation` (plain and
streamed) and `feature_extraction`.

Knows huggingface_hub's shapes and nothing else. A call is named and priced by the inference provider
that serves it, with the Hub model id the app passed: the client's `provider="together"` is
genai-prices' `huggingface_together`, `"fireworks-ai"` its `huggingface_fireworks-ai`, and so on.
Hugging Face's own `hf-inference` publishes no per-token price, and `auto` (the default) lets the Hub
choose the provider after the request leaves us: both are named `huggingface` and priced *unknown*,
never $0. A client pointed at a URL (`base_url=`, or a URL as `model`) is named by its host.

Chat completions are OpenAI's wire format on every provider: responses and stream chunks are read as
OpenAI's are, and a stream is asked for its usage chunk (hidden from an app that did not ask).
`text_generation` and `feature_extraction` return what the SDK keeps of the reply, which never holds
the prompt's count (TGI sends none; the SDK drops the usage other providers send): the input is
estimated from the request and the span marked estimated. The output is TGI's `generated_tokens` when
`details=True` brought it, else counted from the text (a stream: one token per event, as TGI sends).
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost import _state
from otel_llm_cost.estimate import estimate_text_tokens
from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request, UsageChunks
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import asking_stream_usage, count, field, given, given_int, given_str
from otel_llm_cost.instrumentation.openai import ChatStream, read_chat_response
from otel_llm_cost.providers import route_of
from otel_llm_cost.usage import Usage

__all__ = ["HuggingFaceInstrumentor"]

_UNPRICED_PROVIDERS = frozenset({None, "", "auto", "hf-inference"})


_URL = ("http://", "https://")


def provider_name(provider: Any, model: Any) -> tuple[str, str | None, int | None]:
    """The provider's name for spans and prices, and the server when the client was given a URL."""
    if isinstance(model, str) and model.startswith(_URL):
        route = route_of(model, _state.settings().providers, "huggingface")
        return route.provider, route.host, route.port
    if provider in _UNPRICED_PROVIDERS or not isinstance(provider, str):
        return "huggingface", None, None
    return f"huggingface_{provider}", None, None


def _models(instance: Any, kwargs: dict[str, Any]) -> tuple[Any, str | None]:
    """The client's own model (a Hub id or a URL) and the one this call uses (the call's wins)."""
    client_model = getattr(instance, "model", None)
    return client_model, given_str(kwargs.get("model")) or (client_model if isinstance(client_model, str) else None)


def _span_model(model: str | None) -> str | None:
    """A URL names a server, not a model: the span then has no model."""
    return None if model is not None and model.startswith(_URL) else model


def _read_chat_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    messages = args[0] if args else kwargs.get("messages")
    client_model, model = _models(instance, kwargs)
    provider, host, port = provider_name(getattr(instance, "provider", None), client_model)
    stream = given(kwargs.get("stream")) is True
    asking = asking_stream_usage(kwargs) if stream and _state.settings().stream_usage else None
    return Request(
        operation="chat",
        provider=provider,
        api="openai.chat",
        model=_span_model(model),
        kwargs=kwargs if asking is None else asking,
        max_tokens=given_int(kwargs.get("max_tokens")),
        stream=stream,
        prompt=given(messages),
        tools=given(kwargs.get("tools")),
        hide_usage_chunk=asking is not None,
        server_address=host,
        server_port=port,
    )


CHAT = Endpoint(_read_chat_request, read_chat_response, ChatStream)


def _task_reader(operation: str, first: str, max_tokens_key: str | None) -> Any:
    """A task that takes its input first (`prompt`, `text`), named and priced like chat."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        _, model = _models(instance, kwargs)
        provider, host, port = provider_name(getattr(instance, "provider", None), model)
        return Request(
            operation=operation,
            provider=provider,
            api=f"huggingface.{operation}",
            model=_span_model(model),
            kwargs=kwargs,
            max_tokens=given_int(kwargs.get(max_tokens_key)) if max_tokens_key else 0,
            stream=given(kwargs.get("stream")) is True,
            prompt=given(args[0] if args else kwargs.get(first)),
            server_address=host,
            server_port=port,
        )

    return read


def _finish_reason(item: Any) -> tuple[str, ...]:
    reason = field(field(item, "details"), "finish_reason")
    return (reason,) if isinstance(reason, str) else ()


def _read_generation(response: Any) -> Outcome:
    """`str`, or `TextGenerationOutput` (`details=True`): TGI's token count when it came, else the text's."""
    generated = count(field(response, "details"), "generated_tokens")
    if generated is None:
        text = response if isinstance(response, str) else field(response, "generated_text")
        generated = estimate_text_tokens(text) if isinstance(text, str) else 0
    return Outcome(usage=Usage(output_tokens=generated), estimate_unreported=True,
                   finish_reasons=_finish_reason(response))


TEXT_GENERATION = Endpoint(
    _task_reader("text_completion", "prompt", "max_new_tokens"), _read_generation,
    # TGI streams one token an event; the last carries `details` (finish reason, generated_tokens)
    UsageChunks(_read_generation, lambda chunk: False, _finish_reason),
)
FEATURE_EXTRACTION = Endpoint(_task_reader("embeddings", "text", None),
                              lambda response: Outcome(estimate_unreported=True))

_MODULE = "huggingface_hub.inference._client"
_ASYNC_MODULE = "huggingface_hub.inference._generated._async_client"


class HuggingFaceInstrumentor(LLMInstrumentor):
    """Cost spans for `huggingface_hub`'s inference clients, priced by the provider serving each call."""

    dependencies = ("huggingface_hub >= 0.28",)
    # no error_base: huggingface_hub has no base class of its own errors but HfHubHTTPError, which apps
    # check for 429 and 5xx statuses to retry; a refusal stays a plain BudgetExceededError here
    targets = (
        Target(_MODULE, "InferenceClient.chat_completion", CHAT),
        Target(_ASYNC_MODULE, "AsyncInferenceClient.chat_completion", CHAT, is_async=True),
        Target(_MODULE, "InferenceClient.text_generation", TEXT_GENERATION),
        Target(_ASYNC_MODULE, "AsyncInferenceClient.text_generation", TEXT_GENERATION, is_async=True),
        Target(_MODULE, "InferenceClient.feature_extraction", FEATURE_EXTRACTION),
        Target(_ASYNC_MODULE, "AsyncInferenceClient.feature_extraction", FEATURE_EXTRACTION, is_async=True),
    )

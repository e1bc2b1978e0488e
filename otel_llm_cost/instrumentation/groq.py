"""Groq: `chat.completions.create`, sync and async, plain and streamed.

The groq SDK speaks Chat Completions, so requests and responses are read as OpenAI's are. What differs
is the stream: Groq reports usage on the final chunk, unasked, in `x_groq.usage` (or in `usage`, when
the app asks with `stream_options`), so nothing is added to the request.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Request
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import field
from otel_llm_cost.instrumentation._refusal import generated_client_error
from otel_llm_cost.instrumentation.openai import ChatStream, answer_chat, read_chat_request, read_chat_response

__all__ = ["GroqInstrumentor"]


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    return read_chat_request(instance, args, kwargs, ask_stream_usage=False)


class _GroqChatStream(ChatStream):
    __slots__ = ()

    @staticmethod
    def usage_of(chunk: Any) -> Any:
        usage = field(chunk, "usage")
        return usage if usage is not None else field(field(chunk, "x_groq"), "usage")


CHAT = Endpoint(_read_request, read_chat_response, _GroqChatStream, answer_refusal=answer_chat)

_MODULE = "groq.resources.chat.completions"


class GroqInstrumentor(LLMInstrumentor):
    """Cost spans for the `groq` SDK. Its base URL (api.groq.com) names the provider `groq`."""

    dependencies = ("groq >= 0.11",)
    error_base = generated_client_error("groq")
    targets = (
        Target(_MODULE, "Completions.create", CHAT),
        Target(_MODULE, "AsyncCompletions.create", CHAT, is_async=True),
    )

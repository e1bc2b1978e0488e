"""What the SDKs of OpenAI-compatible providers share: the `together`, `cerebras-cloud-sdk` and
`fireworks-ai` SDKs are generated from the same template as openai's (`chat.completions.create` on a
`CompletionsResource`, sync and async) and speak Chat Completions on the wire.

So each of their files only declares its SDK: the provider it always is (the vendor's SDK talks to the
vendor, whichever of its hosts or a gateway in front of it), where its resource lives, and its base
error class. Requests, responses, streams and refused answers are read as OpenAI's are, but nothing is
added to a request: these SDKs take no `stream_options` (a TypeError), and their servers put the usage
on a stream's final chunk unasked.
"""

from __future__ import annotations

from typing import Any

from otel_llm_cost.instrumentation._call import Endpoint, Request
from otel_llm_cost.instrumentation._instrumentor import Target
from otel_llm_cost.instrumentation.openai import ChatStream, answer_chat, read_chat_request, read_chat_response

__all__ = ["vendor_chat", "vendor_targets"]


def vendor_chat(provider: str) -> Endpoint:
    """Chat Completions of a vendor's own SDK: named and priced as `provider`."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        request = read_chat_request(instance, args, kwargs, ask_stream_usage=False)
        request.provider = provider
        return request

    return Endpoint(read, read_chat_response, ChatStream, answer_refusal=answer_chat)


def vendor_targets(module: str, endpoint: Endpoint) -> tuple[Target, ...]:
    """The template's chat resource, sync and async."""
    return (Target(module, "CompletionsResource.create", endpoint),
            Target(module, "AsyncCompletionsResource.create", endpoint, is_async=True))

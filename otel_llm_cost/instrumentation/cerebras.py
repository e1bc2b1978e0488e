"""Cerebras's own SDK (`cerebras-cloud-sdk`): `chat.completions.create`, sync and async, streamed or not.

Always the provider `cerebras`, whichever host it is pointed at (api.cerebras.ai, or a gateway); the wire
format is Chat Completions, read as OpenAI's (see `openai_compatible`).
"""

from __future__ import annotations

from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor
from otel_llm_cost.instrumentation._refusal import generated_client_error
from otel_llm_cost.instrumentation.openai_compatible import vendor_chat, vendor_targets

__all__ = ["CerebrasInstrumentor"]


class CerebrasInstrumentor(LLMInstrumentor):
    """Cost spans for Cerebras's SDK, priced at genai-prices' `cerebras` rates."""

    dependencies = ("cerebras-cloud-sdk >= 1.0",)
    error_base = generated_client_error("cerebras.cloud.sdk")
    targets = vendor_targets("cerebras.cloud.sdk.resources.chat.completions", vendor_chat("cerebras"))

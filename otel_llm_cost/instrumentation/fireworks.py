"""Fireworks AI's own SDK (`fireworks-ai`): `chat.completions.create`, sync and async, streamed or not.

Always the provider `fireworks`, whichever host it is pointed at (api.fireworks.ai, or a gateway); the wire
format is Chat Completions, read as OpenAI's (see `openai_compatible`).
"""

from __future__ import annotations

from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor
from otel_llm_cost.instrumentation._refusal import generated_client_error
from otel_llm_cost.instrumentation.openai_compatible import vendor_chat, vendor_targets

__all__ = ["FireworksInstrumentor"]


class FireworksInstrumentor(LLMInstrumentor):
    """Cost spans for Fireworks AI's SDK, priced at genai-prices' `fireworks` rates."""

    dependencies = ("fireworks-ai >= 1.0",)
    error_base = generated_client_error("fireworks")
    targets = vendor_targets("fireworks.resources.chat.completions", vendor_chat("fireworks"))

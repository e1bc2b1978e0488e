"""Together AI's own SDK (`together`): `chat.completions.create`, sync and async, streamed or not.

Always the provider `together`, whichever host it is pointed at: its default api.together.ai and the
older api.together.xyz alike (genai-prices' pattern knows only the second). The wire format is Chat
Completions, read as OpenAI's (see `openai_compatible`).
"""

from __future__ import annotations

from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor
from otel_llm_cost.instrumentation._refusal import generated_client_error
from otel_llm_cost.instrumentation.openai_compatible import vendor_chat, vendor_targets

__all__ = ["TogetherInstrumentor"]


class TogetherInstrumentor(LLMInstrumentor):
    """Cost spans for Together AI's SDK, priced at genai-prices' `together` rates."""

    dependencies = ("together >= 1.5",)
    error_base = generated_client_error("together")
    targets = vendor_targets("together.resources.chat.completions", vendor_chat("together"))

"""The legacy Gemini SDK (`google-generativeai`, `import google.generativeai`): every
`GenerativeModel.generate_content` and chat turn, sync and async, streamed or not, over gRPC (its
default) or REST.

Knows where that SDK sends its requests and nothing else: the generated `GenerativeService` clients of
`google-ai-generativelanguage`, read as every gapic Gemini client is (`_gemini_gapic`). Named
`gcp.gemini`, priced at the Gemini API's rates. Google ended this SDK's support; apps still run it.
"""

from __future__ import annotations

from otel_llm_cost.instrumentation._gemini_gapic import GOOGLE_API_ERROR, gapic_targets
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor

__all__ = ["GoogleGenerativeAIInstrumentor"]


class GoogleGenerativeAIInstrumentor(LLMInstrumentor):
    """Cost spans for `google-generativeai` (and direct use of `google-ai-generativelanguage`)."""

    dependencies = ("google-ai-generativelanguage >= 0.6",)
    error_base = GOOGLE_API_ERROR
    targets = gapic_targets("gcp.gemini", "google.ai.generativelanguage_{version}", "generative_service", ("v1beta", "v1"))

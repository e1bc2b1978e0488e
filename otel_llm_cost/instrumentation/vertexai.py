"""The Vertex AI SDK's Gemini models (`google-cloud-aiplatform`, `vertexai.generative_models`): every
`GenerativeModel.generate_content` and chat turn, sync and async, streamed or not, over gRPC or REST.

Knows where that SDK sends its requests and nothing else: the generated `PredictionService` clients of
`aiplatform_v1` and `aiplatform_v1beta1`, read as every gapic Gemini client is (`_gemini_gapic`).
Named `gcp.vertex_ai`, priced at Vertex AI's rates.
"""

from __future__ import annotations

from otel_llm_cost.instrumentation._gemini_gapic import GOOGLE_API_ERROR, gapic_targets
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor

__all__ = ["VertexAIInstrumentor"]


class VertexAIInstrumentor(LLMInstrumentor):
    """Cost spans for `vertexai.generative_models` (and direct use of aiplatform's prediction clients)."""

    dependencies = ("google-cloud-aiplatform >= 1.38",)
    error_base = GOOGLE_API_ERROR
    targets = gapic_targets("gcp.vertex_ai", "google.cloud.aiplatform_{version}", "prediction_service", ("v1", "v1beta1"))

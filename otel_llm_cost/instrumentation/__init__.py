"""`instrument()` / `uninstrument()` for every supported SDK that is installed."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__all__ = ["instrument", "uninstrument", "INSTRUMENTORS"]

# SDK import name -> "module:InstrumentorClass"
INSTRUMENTORS: dict[str, str] = {
    "openai": "otel_llm_cost.instrumentation.openai:OpenAIInstrumentor",
    "anthropic": "otel_llm_cost.instrumentation.anthropic:AnthropicInstrumentor",
    "google.genai": "otel_llm_cost.instrumentation.google_genai:GoogleGenAIInstrumentor",
    "botocore": "otel_llm_cost.instrumentation.bedrock:BedrockInstrumentor",
    "mistralai": "otel_llm_cost.instrumentation.mistral:MistralInstrumentor",
    "cohere": "otel_llm_cost.instrumentation.cohere:CohereInstrumentor",
    "groq": "otel_llm_cost.instrumentation.groq:GroqInstrumentor",
    "ollama": "otel_llm_cost.instrumentation.ollama:OllamaInstrumentor",
    "litellm": "otel_llm_cost.instrumentation.litellm:LiteLLMInstrumentor",
    "huggingface_hub": "otel_llm_cost.instrumentation.huggingface:HuggingFaceInstrumentor",
    "together": "otel_llm_cost.instrumentation.together:TogetherInstrumentor",
    "cerebras.cloud.sdk": "otel_llm_cost.instrumentation.cerebras:CerebrasInstrumentor",
    "fireworks": "otel_llm_cost.instrumentation.fireworks:FireworksInstrumentor",
    "voyageai": "otel_llm_cost.instrumentation.voyageai:VoyageAIInstrumentor",
    "google.ai.generativelanguage": "otel_llm_cost.instrumentation.google_generativeai:GoogleGenerativeAIInstrumentor",
    "vertexai": "otel_llm_cost.instrumentation.vertexai:VertexAIInstrumentor",
    "claude_agent_sdk": "otel_llm_cost.instrumentation.claude_agent_sdk:ClaudeAgentSDKInstrumentor",
    "replicate": "otel_llm_cost.instrumentation.replicate:ReplicateInstrumentor",
    "xai_sdk": "otel_llm_cost.instrumentation.xai:XAIInstrumentor",
    "azure.ai.inference": "otel_llm_cost.instrumentation.azure_ai_inference:AzureAIInferenceInstrumentor",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)()


def _installed(sdk: str) -> bool:
    try:
        return importlib.util.find_spec(sdk) is not None
    except ImportError:  # `google.genai` when no `google` namespace package is installed at all
        return False


def instrument(**kwargs: Any) -> list[str]:
    """Instrument every installed SDK; returns their names. Instrumenting twice is harmless."""
    done = []
    for sdk, path in INSTRUMENTORS.items():
        if not _installed(sdk):
            continue
        instrumentor = _load(path)
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**kwargs)
        done.append(sdk)
    return done


def uninstrument() -> None:
    for sdk, path in INSTRUMENTORS.items():
        if _installed(sdk):
            instrumentor = _load(path)
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()

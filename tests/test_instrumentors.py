"""Every instrumentor wraps each of its targets, and `uninstrument()` puts back the very originals."""

from __future__ import annotations

import importlib

import pytest

from otel_llm_cost.instrumentation import INSTRUMENTORS
from otel_llm_cost.instrumentation._instrumentor import _resolve


def _instrumentor_class(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", INSTRUMENTORS.values(), ids=INSTRUMENTORS.keys())
def test_every_target_is_wrapped_then_restored_exactly(tracer_provider, settings, path):
    cls = _instrumentor_class(path)
    methods = [(_resolve(target), target.name.rsplit(".", 1)[-1]) for target in cls.targets]
    assert methods and all(owner is not None for owner, _ in methods), "a target is missing from this SDK version"
    originals = [owner.__dict__[name] for owner, name in methods]
    instrumentor = cls()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert all(owner.__dict__[name] is not original for (owner, name), original in zip(methods, originals))
    finally:
        instrumentor.uninstrument()
    assert all(owner.__dict__[name] is original for (owner, name), original in zip(methods, originals))


def test_each_instrumentor_has_its_own_entry_point_for_opentelemetry_instrument():
    """`opentelemetry-instrument` finds every one, under names that never clash with the official ones."""
    from importlib.metadata import entry_points

    ours = {ep.name: ep.value for ep in entry_points(group="opentelemetry_instrumentor") if ep.name.startswith("llm_cost_")}
    assert sorted(ours.values()) == sorted(INSTRUMENTORS.values())
    assert set(ours) == {"llm_cost_openai", "llm_cost_anthropic", "llm_cost_google_genai", "llm_cost_bedrock",
                         "llm_cost_mistral", "llm_cost_cohere", "llm_cost_groq", "llm_cost_ollama",
                         "llm_cost_litellm", "llm_cost_huggingface", "llm_cost_together", "llm_cost_cerebras",
                         "llm_cost_fireworks", "llm_cost_voyageai", "llm_cost_azure_ai_inference", "llm_cost_google_generativeai", "llm_cost_vertexai", "llm_cost_xai", "llm_cost_claude_agent_sdk", "llm_cost_replicate"}


def test_instrumenting_imports_no_sdk():
    """Each SDK is patched when the app first imports it: an app pays only for the SDKs it uses."""
    import subprocess
    import sys

    script = ("import sys\n"
              "from opentelemetry.sdk.trace import TracerProvider\n"
              "import otel_llm_cost as llm_cost\n"
              "llm_cost.instrument(tracer_provider=TracerProvider())\n"
              "print(sorted(m for m in ('openai', 'anthropic', 'google.genai', 'botocore', 'mistralai', 'cohere', "
              "'groq', 'ollama', 'litellm', 'aiobotocore') if m in sys.modules))\n"
              "import openai\n"
              "print(type(openai.resources.chat.completions.completions.Completions.__dict__['create']).__name__)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["[]", "FunctionWrapper"], done.stderr

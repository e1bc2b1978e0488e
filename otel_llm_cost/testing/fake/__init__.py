"""A loopback HTTP server that speaks each provider's wire format, SSE streams included.

Tests, benchmarks and the demo point the REAL SDK clients at it (``base_url=fake.openai_url`` ...),
so every byte goes through the SDK's own HTTP, SSE and parsing code. It speaks:

* OpenAI: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings`` (JSON and SSE);
* Anthropic: ``/v1/messages`` (JSON and SSE), and as Claude on Vertex AI (``:rawPredict``,
  ``:streamRawPredict``) and on Bedrock (``/model/{id}/invoke``);
* Cohere: ``/v2/chat`` (JSON and SSE); Mistral shares OpenAI's chat path, in its own dialect;
* Gemini: ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``;
* Bedrock: ``/model/{modelId}/converse``, ``/converse-stream`` (AWS binary event stream), ``/invoke``
  and ``/invoke-with-response-stream`` (an Anthropic Messages body; counts in headers and invocation metrics).

Usage is configurable per model (cache reads and writes, reasoning, audio); faults can be injected
(429, 500, malformed JSON, an HTML 200, a reset mid-body, a stream cut mid-way, slow responses), and
the server can reject ``stream_options`` as some OpenAI-compatible ones do; every request is counted.

One module per wire format (`openai`, `anthropic`, `gemini`, `bedrock`, `cohere`, `ollama`, `voyage`),
the HTTP plumbing they share (`_wire`), and the server that routes to them (`server`).
"""

from otel_llm_cost.testing.fake._model import Fault, ModelBehaviour
from otel_llm_cost.testing.fake.server import FakeProvider, add_arguments, main, serve

__all__ = ["FakeProvider", "ModelBehaviour", "Fault", "add_arguments", "serve", "main"]

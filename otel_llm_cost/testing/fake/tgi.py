"""Hugging Face's own inference wire (`hf-inference`, Text Generation Inference): `POST /models/{id}`
with `{"inputs", "parameters"}`, and the feature-extraction pipeline. TGI reports no prompt count, and
the generated-token count only when `details` is asked for, as the real servers do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.testing.fake._model import Fault, _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["TGIWire"]


class TGIWire(Wire):
    """Text generation (JSON, or SSE one token an event) and feature extraction."""

    def _tgi_generate(self, model: str, body: dict[str, Any], fault: Fault | None) -> None:
        parameters = body.get("parameters") or {}
        b, _, output = self._counts({**body, "model": model, "max_tokens": parameters.get("max_new_tokens")})
        details = {"finish_reason": "length" if output < b.output_tokens else "eos_token", "generated_tokens": output,
                   "seed": None}
        if not body.get("stream"):
            item: dict[str, Any] = {"generated_text": b.text}
            if parameters.get("details"):
                item["details"] = {**details, "prefill": [], "tokens": []}
            return self._send_json(200, [item])

        pieces = _split(b.text, output or 1)

        def events() -> Iterator[tuple[str | None, Any]]:
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                yield None, json.dumps({"index": index, "token": {"id": index, "text": piece, "logprob": -0.5,
                                                                  "special": False},
                                        "generated_text": b.text if last else None,
                                        "details": details if last else None})

        self._send_sse(events(), fault)

    def _tgi_features(self, body: dict[str, Any]) -> None:
        inputs = body.get("inputs")
        count = len(inputs) if isinstance(inputs, list) else 1
        self._send_json(200, [[0.1, 0.2, 0.3]] * count)

"""Replicate's predictions API: create by version (`/v1/predictions`), model
(`/v1/models/{owner}/{name}/predictions`) or deployment, and `GET /v1/predictions/{id}`.

As the real API does: a prediction created without `Prefer: wait` is `starting`; with it, it comes back
`processing` with its output but no `metrics` (the SDK's own comment says so); a GET finds it
`succeeded` with `metrics.input_token_count` / `output_token_count`. A language model's output is a list
of tokens."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from otel_llm_cost.testing.fake._model import _split
from otel_llm_cost.testing.fake._wire import Wire

__all__ = ["ReplicateWire"]

_CREATE = re.compile(r"^/v1/(?:predictions|models/([^/]+/[^/]+)/predictions|deployments/([^/]+/[^/]+)/predictions)$")


class ReplicateWire(Wire):
    """Create a prediction; the finished one is served at its GET URL."""

    def _replicate_create(self, match: re.Match[str], body: dict[str, Any]) -> None:
        model = match.group(1) or match.group(2) or str(body.get("version", ""))
        b, input_tokens, output = self._counts({"model": model, "prompt": (body.get("input") or {}).get("prompt"),
                                                "max_tokens": (body.get("input") or {}).get("max_tokens")})
        prediction_id = uuid.uuid4().hex[:20]
        tokens = _split(b.text, output or 1)
        base = {"id": prediction_id, "model": model, "version": body.get("version") or "hidden",
                "input": body.get("input") or {}, "logs": "", "error": None, "created_at": "2026-12-03T12:00:00Z",
                "urls": {"get": f"/v1/predictions/{prediction_id}", "cancel": f"/v1/predictions/{prediction_id}/cancel"}}
        done = {**base, "status": "succeeded", "output": tokens, "started_at": "2026-12-03T12:00:01Z",
                "completed_at": "2026-12-03T12:00:02Z",
                "metrics": {"input_token_count": input_tokens, "output_token_count": output, "predict_time": 0.9}}
        with self.state.lock:
            self.state.downloads[f"/v1/predictions/{prediction_id}"] = (json.dumps(done).encode(), "application/json")
        if "wait" in (self.headers.get("Prefer") or ""):
            created = {**base, "status": "processing", "output": tokens, "metrics": {}}
        else:
            created = {**base, "status": "starting", "output": None, "metrics": {}}
        self._send_json(201, created)

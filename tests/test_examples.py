"""The examples run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_agent_with_budget_stops_the_runaway_loop():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "agent_with_budget.py")], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert "stopped before step" in result.stdout and "BudgetExceeded" not in result.stderr
    assert "remaining $" in result.stdout


def test_fastapi_service_attributes_calls_per_request(fake, monkeypatch, tracer_provider):
    import importlib

    from fastapi.testclient import TestClient

    from otel_llm_cost import _setup, _state
    from otel_llm_cost.instrumentation import uninstrument

    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "offline")
    monkeypatch.setenv("OTEL_LLM_COST_USER_BUDGET_USD", "0.0002")
    previous = _state._settings
    _state._settings = None
    _setup.reset_for_tests()
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    fake.set_model("gpt-4o-mini", output_tokens=100)
    sys.path.insert(0, str(ROOT))
    try:
        service = importlib.import_module("examples.fastapi_service")
        with TestClient(service.app) as client:  # one event loop for the app's async client
            _exercise(client)
    finally:
        sys.path.remove(str(ROOT))
        uninstrument()
        _setup.reset_for_tests()
        _state._settings = previous


def _exercise(client) -> None:  # noqa: ANN001
    first = client.get("/ask", params={"q": "hello"}, headers={"x-session-id": "s1", "x-user-id": "alice"})
    assert first.status_code == 200 and first.json()["cost_usd"] is not None
    statuses = [client.get("/ask", params={"q": "again"}, headers={"x-session-id": "s1", "x-user-id": "alice"})
                .status_code for _ in range(5)]
    assert 429 in statuses  # alice's budget stops her; the refused calls were never sent
    other = client.get("/ask", params={"q": "hi"}, headers={"x-session-id": "s2", "x-user-id": "bob"})
    assert other.status_code == 200
    usage = client.get("/usage/s1").json()
    assert usage["calls"] == 1 + statuses.count(200) and usage["session_id"] == "s1"

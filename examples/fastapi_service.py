"""A FastAPI service: each request's session and user come from headers (or from W3C baggage sent by
an instrumented caller), so every LLM call it makes is attributed and budgeted per user.

    OTEL_LLM_COST_USER_BUDGET_USD=0.001 uvicorn examples.fastapi_service:app --port 8000
    curl -H 'x-session-id: s1' -H 'x-user-id: alice' 'localhost:8000/ask?q=hello'
    curl localhost:8000/usage/s1

Without OPENAI_BASE_URL it starts the project's offline fake provider, so it runs with no API key.
"""

from __future__ import annotations

import os

import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

import otel_llm_cost as llm_cost

llm_cost.configure()
app = FastAPI()
_client: openai.AsyncOpenAI | None = None


def client() -> openai.AsyncOpenAI:
    global _client
    if _client is None:
        if not os.environ.get("OPENAI_BASE_URL"):  # offline: the fake provider answers like the real API
            from otel_llm_cost.testing.fake import FakeProvider

            fake = FakeProvider().start()
            fake.set_model("gpt-4o-mini", input_tokens=400, output_tokens=150)
            os.environ["OPENAI_BASE_URL"] = fake.openai_url
            os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
        _client = openai.AsyncOpenAI(max_retries=0)
    return _client


@app.middleware("http")
async def llm_cost_session(request: Request, call_next):  # noqa: ANN001, ANN201
    """Headers name the session and user; otherwise incoming baggage (another service's session) does."""
    token = context.attach(W3CBaggagePropagator().extract(dict(request.headers)))
    try:
        session_id = request.headers.get("x-session-id")
        user_id = request.headers.get("x-user-id")
        if session_id or user_id:
            with llm_cost.session(session_id, user_id=user_id, feature="api"):
                return await call_next(request)
        return await call_next(request)
    finally:
        context.detach(token)


@app.exception_handler(llm_cost.BudgetExceededError)
async def over_budget(request: Request, error: llm_cost.BudgetExceededError) -> JSONResponse:
    return JSONResponse(status_code=429, content={"error": "budget exceeded", "budget": error.budget,
                                                  "limit_usd": str(error.limit)})


@app.get("/ask")
async def ask(q: str) -> dict[str, object]:
    reply = await client().chat.completions.create(
        model="gpt-4o-mini", max_tokens=200, messages=[{"role": "user", "content": q}])
    last = llm_cost.last_usage()
    return {"answer": reply.choices[0].message.content,
            "cost_usd": str(last.cost) if last and last.cost is not None else None}


@app.get("/usage/{session_id}")
async def usage(session_id: str) -> dict[str, object]:
    return llm_cost.session_usage(session_id).to_dict()

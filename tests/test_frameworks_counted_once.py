"""Real agent frameworks (pydantic-ai, openai-agents, LangGraph) over the fake provider, each with and
without LangSmith's OpenTelemetry export next to ours: every model request is counted exactly once in
our spans, the totals, the `llm_cost.calls` metric, the budget and the ledger, and the framework's
output is what it is without us.

Each run is its own process: LangSmith reads its settings at import, and the frameworks keep global
tracing state. "With LangSmith" is its OTel export switched on plus the framework's LangSmith
integration where it has one: LangGraph traces through LangChain's callbacks, openai-agents through
LangSmith's `OpenAIAgentsTracingProcessor`, pydantic-ai's OpenAI client is wrapped by `wrap_openai`.
Two requests of gpt-4o at 1,000 input and 100 output tokens cost $0.0035 each."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest
from conftest import IN_MEMORY_TELEMETRY, LANGSMITH_OTEL_EXPORT

pytest.importorskip("langsmith", reason="the peers extra installs langchain-openai, which brings langsmith")

_APP = f"""
import json, os, sys
framework, langsmith, url, ledger = sys.argv[1:5]
if langsmith == "on":
    os.environ.update({LANGSMITH_OTEL_EXPORT!r})
""" + IN_MEMORY_TELEMETRY + r"""
import otel_llm_cost as llm_cost
processor = llm_cost.configure(tracer_provider=provider, meter_provider=meter_provider, budget_usd="0.02",
                               ledger=f"sqlite:///{ledger}")

if framework == "pydantic-ai":
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
    if langsmith == "on":
        from langsmith.wrappers import wrap_openai
        client = wrap_openai(client)
    agent = Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client)))
    run = lambda: agent.run_sync("Hi").output
elif framework == "openai-agents":
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_trace_processors, set_tracing_disabled
    from openai import AsyncOpenAI
    if langsmith == "on":
        from langsmith.integrations.openai_agents_sdk import OpenAIAgentsTracingProcessor
        set_trace_processors([OpenAIAgentsTracingProcessor()])
    else:
        set_tracing_disabled(True)
    agent = Agent(name="assistant", model=OpenAIChatCompletionsModel(
        model="gpt-4o", openai_client=AsyncOpenAI(base_url=url, api_key="k", max_retries=0)))
    run = lambda: Runner.run_sync(agent, "Hi").final_output
else:
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    model = ChatOpenAI(model="gpt-4o", base_url=url, api_key="k", max_tokens=100, max_retries=0)
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "model")
    app = graph.compile()
    run = lambda: app.invoke({"messages": [("user", "Hi")]})["messages"][-1].content

outputs = [run() for _ in range(2)]
if langsmith == "on":
    from langchain_core.tracers.langchain import wait_for_all_tracers
    wait_for_all_tracers()  # LangSmith exports its runs after the fact, from a thread of its own
    from langsmith.run_trees import get_cached_client
    get_cached_client().flush()
provider.force_flush()
spans = exporter.get_finished_spans()
print(json.dumps({
    "outputs": outputs,
    "scopes": sorted({s.instrumentation_scope.name for s in spans}),
    "ours": sum(1 for s in spans if s.instrumentation_scope.name == "otel_llm_cost"),
    "totals": processor.totals.session(None).calls,
    "cost": str(processor.totals.session(None).cost),
    "metric": metric_sum("llm_cost.calls"),
    "spent": str(llm_cost.budget_remaining().spent),
}), flush=True)
"""


@pytest.mark.parametrize("langsmith", ["off", "on"])
@pytest.mark.parametrize("framework", ["pydantic-ai", "openai-agents", "langgraph"])
def test_each_request_is_counted_once_everywhere(fake, tmp_path, framework, langsmith):
    pytest.importorskip({"pydantic-ai": "pydantic_ai", "openai-agents": "agents", "langgraph": "langgraph"}[framework])
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    ledger = tmp_path / "usage.db"
    done = subprocess.run([sys.executable, "-c", _APP, framework, langsmith, fake.openai_url, str(ledger)],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["outputs"] == ["Hello from the fake provider."] * 2  # the framework's output is unchanged
    if langsmith == "on":
        assert "langsmith" in seen["scopes"], seen["scopes"]  # LangSmith's spans really were there
    assert fake.request_count("/chat/completions") == 2
    assert (seen["ours"], seen["totals"], seen["metric"]) == (2, 2, 2)
    assert Decimal(seen["cost"]) == Decimal(seen["spent"]) == Decimal("0.007")
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT COUNT(*), SUM(cost_e10) FROM llm_calls WHERE outcome != 'blocked'").fetchone()
    assert rows == (2, 70_000_000)

"""Frameworks that emit GenAI spans of their own, next to ours: each request is still one call in spans,
totals, metrics and budgets. LangSmith's OpenTelemetry export rebuilds its run tree after the fact (in a
trace of its own), pydantic-ai's instrumentation wraps our span, and chain or agent spans that sum usage
are never calls."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from conftest import IN_MEMORY_TELEMETRY, LANGSMITH_OTEL_EXPORT, our_spans
from opentelemetry import trace

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup

pytest.importorskip("langsmith", reason="the peers extra installs langchain-openai, which brings langsmith")

_LANGSMITH_APP = f"""
import os, sys
os.environ.update({LANGSMITH_OTEL_EXPORT!r})
""" + IN_MEMORY_TELEMETRY + r"""
import otel_llm_cost as llm_cost
processor = llm_cost.configure(tracer_provider=provider, meter_provider=meter_provider, budget_usd="0.0075")
from langchain_core.output_parsers import StrOutputParser
from langchain_openai import ChatOpenAI
chain = ChatOpenAI(model="gpt-4o", base_url=sys.argv[1], api_key="k", max_tokens=100, max_retries=0) | StrOutputParser()
for _ in range(2):
    chain.invoke("Hi")  # two calls of $0.0035 fit a $0.0075 budget, unless one is charged twice
from langchain_core.tracers.langchain import wait_for_all_tracers
wait_for_all_tracers()  # LangSmith exports its run tree after the fact, from a thread of its own
provider.force_flush()
scopes = sorted({s.instrumentation_scope.name for s in exporter.get_finished_spans()})
print(",".join(scopes), processor.totals.session(None).calls, metric_sum("llm_cost.calls"), llm_cost.budget_remaining().spent, flush=True)
"""


def test_langsmiths_otel_export_next_to_ours_counts_each_request_once(fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    done = subprocess.run([sys.executable, "-c", _LANGSMITH_APP, fake.openai_url], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    scopes, totals, metric_calls, spent = done.stdout.split()
    assert scopes == "langsmith,otel_llm_cost"  # LangSmith's spans really were there
    assert (int(totals), int(metric_calls), Decimal(spent)) == (2, 2, Decimal("0.007"))
    assert "no prices for provider 'langchain'" not in done.stderr and fake.request_count("") == 2


def test_a_chain_span_with_usage_is_not_a_call(tracer_provider, settings, fake, caplog):
    """A framework's chain or agent span sums its calls' usage: counting it would count them again."""
    _setup.reset_for_tests()
    processor = llm_cost.configure(tracer_provider=tracer_provider, instrument=False)
    try:
        tracer = trace.get_tracer("some-framework", tracer_provider=tracer_provider)
        usage = {"gen_ai.usage.input_tokens": 1_000, "gen_ai.usage.output_tokens": 100}
        with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
            for operation, system in (("chain", "langchain"), ("invoke_agent", "openai"), ("execute_tool", "openai")):
                tracer.start_span("outer", attributes={"gen_ai.operation.name": operation, "gen_ai.system": system,
                                                       **usage}).end()
            tracer.start_span("workflow", attributes={"traceloop.span.kind": "workflow", "gen_ai.system": "openai",
                                                      "gen_ai.request.model": "gpt-4o", **usage}).end()
            tracer.start_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                                         "gen_ai.request.model": "gpt-4o", **usage}).end()
        summary = processor.totals.session(None)
        assert (summary.calls, summary.cost) == (1, Decimal("0.0035"))  # only the inference span
        assert not [r for r in caplog.records if "no prices for provider" in r.getMessage()]
    finally:
        _setup.reset_for_tests()


def test_the_same_call_seen_by_two_foreign_instrumentations_is_still_counted_once(tracer_provider, settings, fake,
                                                                                   span_exporter):
    """Each of our calls stands for one span per instrumentation scope, however many scopes see it."""
    import openai

    _setup.reset_for_tests()
    processor = llm_cost.configure(tracer_provider=tracer_provider)
    try:
        fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
        client = openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        (first, second) = our_spans(span_exporter)
        for scope in ("langsmith", "another-framework"):  # after the fact, in traces of their own
            for ours in (first, second):
                tracer = trace.get_tracer(scope, tracer_provider=tracer_provider)
                foreign = tracer.start_span("ChatOpenAI", start_time=ours.start_time - 1_000, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1_000, "gen_ai.usage.output_tokens": 100})
                foreign.end(end_time=ours.end_time + 1_000)
        assert processor.totals.session(None).calls == 2 and processor.foreign_skipped == 4
        unrelated = trace.get_tracer("langsmith", tracer_provider=tracer_provider).start_span(
            "ChatOpenAI", attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000,
                                      "gen_ai.usage.output_tokens": 100})
        unrelated.end()  # a call we never saw (another process's): counted
        assert processor.totals.session(None).calls == 3
    finally:
        from otel_llm_cost.instrumentation import uninstrument

        uninstrument()
        _setup.reset_for_tests()


def test_pydantic_ai_instrumented_next_to_ours_counts_each_request_once(tracer_provider, settings, fake,
                                                                         span_exporter):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent, InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    _setup.reset_for_tests()
    processor = llm_cost.configure(tracer_provider=tracer_provider)
    try:
        fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
        Agent.instrument_all(InstrumentationSettings(tracer_provider=tracer_provider))
        agent = Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=fake.openai_url, api_key="k")))
        assert agent.run_sync("Hi").output == "Hello from the fake provider."
        scopes = {s.instrumentation_scope.name for s in span_exporter.get_finished_spans()}
        assert "pydantic-ai" in scopes and len(our_spans(span_exporter)) == 1
        summary = processor.totals.session(None)
        assert (summary.calls, summary.cost) == (1, Decimal("0.0035")) and fake.request_count("") == 1
    finally:
        Agent.instrument_all(False)
        from otel_llm_cost.instrumentation import uninstrument

        uninstrument()
        _setup.reset_for_tests()


def test_openllmetrys_langchain_instrumentation_next_to_ours_counts_each_request_once(tracer_provider, settings,
                                                                                      fake, span_exporter):
    """OpenLLMetry's LangChain instrumentation makes a `ChatOpenAI.chat` span with the call's model and
    usage (and workflow/task spans around it), inside the same trace as ours: each is one call."""
    pytest.importorskip("opentelemetry.instrumentation.langchain")
    from langchain_core.output_parsers import StrOutputParser
    from langchain_openai import ChatOpenAI
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    _setup.reset_for_tests()
    processor = llm_cost.configure(tracer_provider=tracer_provider)
    instrumentor = LangchainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
        chain = ChatOpenAI(model="gpt-4o", base_url=fake.openai_url, api_key="k", max_tokens=100,
                           max_retries=0) | StrOutputParser()
        assert [chain.invoke("Hi") for _ in range(2)] == ["Hello from the fake provider."] * 2
        foreign = [s for s in span_exporter.get_finished_spans()
                   if s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.langchain")]
        assert any("gen_ai.usage.input_tokens" in s.attributes for s in foreign)  # it did report the usage
        summary = processor.totals.session(None)
        assert (summary.calls, summary.cost) == (2, Decimal("0.007")) and len(our_spans(span_exporter)) == 2
        assert processor.foreign_skipped >= 2 and fake.request_count("") == 2
    finally:
        instrumentor.uninstrument()
        from otel_llm_cost.instrumentation import uninstrument

        uninstrument()
        _setup.reset_for_tests()

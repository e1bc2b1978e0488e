"""`track()`, the roll-up onto enclosing spans, and batch estimates, with real clients against the fake.

Prices: gpt-4o-mini $0.15 input / $0.60 output per 1M tokens (openai.com/api/pricing, 2026-11-25).
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from decimal import Decimal

import openai
import pytest
from conftest import our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup

MODEL = "gpt-4o-mini"
PER_CALL = 400 * Decimal("0.15") / 10**6 + 50 * Decimal("0.60") / 10**6  # $0.00009


@pytest.fixture
def configured(tracer_provider, settings, fake):
    _setup.reset_for_tests()
    llm_cost.configure(tracer_provider=tracer_provider)
    fake.set_model(MODEL, input_tokens=400, output_tokens=50)
    yield openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)
    from otel_llm_cost.instrumentation import uninstrument

    uninstrument()
    _setup.reset_for_tests()


def _ask(client, text: str = "Hi") -> str:
    reply = client.chat.completions.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def test_counts_include_failures_and_cost_is_exact(configured, span_exporter):
    client = configured

    def work(n: int) -> str:
        if n % 5 == 0:
            raise ValueError(f"item {n} is bad")
        return _ask(client)

    with llm_cost.track("nightly", progress=False) as job:
        results = job.map(work, range(20), workers=4)
        assert (job.calls, job.succeeded, job.failed, job.done) == (16, 16, 4, 20)  # live, inside the block
    assert [type(r).__name__ for r in results[:6]] == ["ValueError", "str", "str", "str", "str", "ValueError"]
    assert job.cost == PER_CALL * 16 and job.total == 20
    summary = job.summary()
    assert (summary.calls, summary.cost, summary.input_tokens) == (16, PER_CALL * 16, 6_400)
    job_span = next(s for s in span_exporter.get_finished_spans() if s.name == "llm_cost.job nightly")
    assert job_span.attributes["llm_cost.job.failed"] == 4
    assert Decimal(repr(job_span.attributes["llm_cost.rollup.cost"])) == PER_CALL * 16


def test_worker_threads_and_asyncio_tasks_keep_the_jobs_context(configured, fake, span_exporter):
    async_client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)

    async def three_tasks() -> None:
        async def one() -> None:
            await async_client.chat.completions.create(model=MODEL, max_tokens=50,
                                                       messages=[{"role": "user", "content": "Hi"}])
        await asyncio.gather(one(), one(), one())

    with llm_cost.session("s-7", user_id="ana"), llm_cost.track("mixed", progress=False) as job:
        job.map(lambda _: _ask(configured), range(4), workers=4)
        asyncio.run(three_tasks())
    calls = [s for s in our_spans(span_exporter) if s.name.startswith("chat")]
    assert len(calls) == 7 and job.calls == 7
    assert {(s.attributes["llm_cost.job"], s.attributes["llm_cost.tag.job"], s.attributes["session.id"],
             s.attributes["user.id"]) for s in calls} == {("mixed", "mixed", "s-7", "ana")}
    job_span = next(s for s in span_exporter.get_finished_spans() if s.name == "llm_cost.job mixed")
    assert {s.parent.span_id for s in calls} == {job_span.context.span_id}


def test_rollup_sums_onto_every_open_ancestor_and_forgets_ended_spans(configured, tracer_provider, span_exporter):
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /answer"):
        with tracer.start_as_current_span("invoke_agent planner"):
            _ask(configured)
            with tracer.start_as_current_span("execute_tool search"):
                _ask(configured)
                configured.chat.completions.create(model="acme-internal", messages=[{"role": "user", "content": "x"}])
        _ask(configured)
    spans = {s.name: s.attributes for s in span_exporter.get_finished_spans()}

    def rollup(name: str) -> tuple[Decimal, int, int]:
        a = spans[name]
        return Decimal(repr(a["llm_cost.rollup.cost"])), a["llm_cost.rollup.calls"], a["llm_cost.rollup.unpriced_calls"]

    assert rollup("execute_tool search") == (PER_CALL, 2, 1)
    assert rollup("invoke_agent planner") == (PER_CALL * 2, 3, 1)
    assert rollup("GET /answer") == (PER_CALL * 3, 4, 1)
    assert not any(k.startswith("gen_ai.usage.cost") for k in spans["GET /answer"])  # never counted twice
    assert _setup.runtime().processor._open == {}  # nothing kept once spans end


def test_the_job_budget_refuses_a_call_before_it_is_sent(configured, fake):
    with llm_cost.track("capped", progress=False, budget_usd=PER_CALL * 3) as job:
        outcomes = job.map(lambda _: _ask(configured), range(10), workers=1)
    refused = [r for r in outcomes if isinstance(r, llm_cost.BudgetExceededError)]
    assert fake.request_count("/chat/completions") == job.calls == 10 - len(refused)
    assert job.cost <= PER_CALL * 3 and refused and refused[0].budget == "job capped"
    assert llm_cost.budget_remaining() is None  # the job's budget ends with the job
    with llm_cost.track("capped", progress=False, budget_usd=PER_CALL * 3) as again:  # a new run, a new budget
        again.map(lambda _: _ask(configured), range(2), workers=1)
    assert again.failed == 0


def test_estimate_batch_is_the_sum_of_each_and_bounds_the_real_cost(configured, fake):
    fake.set_model(MODEL, output_tokens=50)  # input: the fake counts the prompt itself
    prompts = [[{"role": "user", "content": f"Summarise incident {n} in one line, with its root cause."}]
               for n in range(12)]
    estimate = llm_cost.estimate_batch(MODEL, prompts, max_tokens=50)
    singles = [llm_cost.estimate_cost(MODEL, p, max_tokens=50) for p in prompts]
    assert estimate.cost.total == sum(s.cost.total for s in singles)
    assert estimate.input_tokens == sum(s.input_tokens for s in singles) and estimate.output_tokens == 600
    with llm_cost.track("bounded", progress=False) as job:
        for prompt in prompts:
            configured.chat.completions.create(model=MODEL, max_tokens=50, messages=prompt)
    assert 0 < job.cost <= estimate.cost.total
    assert llm_cost.estimate_batch("acme-internal", prompts).cost is None


def test_progress_shows_on_a_terminal_only_unless_forced(configured, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain line, when tqdm is not installed
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with llm_cost.track("quiet", total=2) as job:  # "auto": stderr is no terminal here
        job.map(lambda _: _ask(configured), range(2))
    assert err.getvalue() == ""
    with llm_cost.track("shown", total=2, progress=True) as job:
        job.map(lambda _: _ask(configured), range(2), workers=1)
    assert err.getvalue().split("\r")[-1] == f"shown: 2/2 done, 0 failed, 2 calls, ${PER_CALL * 2:.6f}\n"


def test_cli_estimate_batch(tmp_path):
    batch = tmp_path / "prompts.jsonl"
    batch.write_text("\n".join([json.dumps("Summarise this."), json.dumps([{"role": "user", "content": "Hi"}]),
                                json.dumps({"messages": [{"role": "user", "content": "Hello"}]}), ""]))
    done = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "estimate", "--model", MODEL, "--batch",
                           str(batch), "--max-tokens", "100", "--json"], capture_output=True, text=True, timeout=60)
    data = json.loads(done.stdout)
    expected = llm_cost.estimate_batch(MODEL, ["Summarise this.", [{"role": "user", "content": "Hi"}],
                                               [{"role": "user", "content": "Hello"}]], max_tokens=100)
    assert data["prompts"] == 3 and data["cost_usd"] == f"{expected.cost.total:f}".rstrip("0")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n{"neither": 1}\n')
    failed = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "estimate", "--model", MODEL, "--batch",
                             str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "line 2" in failed.stderr


def test_cli_estimate_batch_uses_the_custom_pricing_file_as_a_single_estimate_does(tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."house-model"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n')
    batch = tmp_path / "prompts.jsonl"
    batch.write_text(json.dumps("Hi") + "\n")
    done = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "estimate", "--model", "house-model",
                           "--batch", str(batch), "--max-tokens", "10", "--json"], capture_output=True, text=True,
                          timeout=60, env={**__import__("os").environ, "OTEL_LLM_COST_PRICING_FILE": str(prices)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["price_source"] == "custom"


def test_two_runs_with_one_name_each_keep_their_own_budget(configured, fake):
    """Run 2 starts while run 1 is going and ends first: run 1's budget is neither replaced nor removed."""
    import threading

    first_started, second_done = threading.Event(), threading.Event()
    results: dict[str, list] = {}

    def first() -> None:
        with llm_cost.track("nightly", progress=False, budget_usd=PER_CALL * 3) as job:
            first_started.set()
            second_done.wait(30)
            results["first"] = [job, job.map(lambda _: _ask(configured), range(6), workers=1)]

    def second() -> None:
        first_started.wait(30)
        with llm_cost.track("nightly", progress=False, budget_usd=PER_CALL * 3) as job:
            results["second"] = [job, job.map(lambda _: _ask(configured), range(1), workers=1)]
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    (job1, outcomes1), (job2, _) = results["first"], results["second"]
    refused = [r for r in outcomes1 if isinstance(r, llm_cost.BudgetExceededError)]
    assert (job1.calls, len(refused), job1.cost) == (3, 3, PER_CALL * 3)
    assert (job2.calls, job2.failed, job2.cost) == (1, 0, PER_CALL)
    assert fake.request_count("/chat/completions") == 4 and llm_cost.budgets() == []


def test_a_jobs_budget_caps_the_calls_of_the_jobs_nested_in_it(configured, fake):
    with llm_cost.track("outer", progress=False, budget_usd=PER_CALL * 2) as outer:
        with llm_cost.track("inner", progress=False, budget_usd=1) as inner:  # a bigger budget of its own
            outcomes = inner.map(lambda _: _ask(configured), range(5), workers=1)
    refused = [r for r in outcomes if isinstance(r, llm_cost.BudgetExceededError)]
    assert (inner.calls, len(refused), outer.calls, outer.cost) == (2, 3, 2, PER_CALL * 2)
    assert {r.budget for r in refused} == {"job outer"} and fake.request_count("/chat/completions") == 2

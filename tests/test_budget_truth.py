"""Budgets that tell the truth on every store: a process sees its own calls at once, the refusal says
what is true, every store takes the app's path (Redis Cluster's scripts included), a store that is down
at start-up is an outage and not a failed start, and thresholds fire where a strict budget stops.

Each test drives the real OpenAI SDK through `llm_cost.configure()` against the fake provider, with the
store behind the same guard, settler and outage buffer an app's call goes through, on real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal as D

import openai
import pytest

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup
from otel_llm_cost.budget.leases import LEASE_SHARE, release_all_leases
from otel_llm_cost.budget.outage import _flush_at_exit
from otel_llm_cost.budget.stores import store_from_url
from tests.conftest import cost_of, our_spans

LIMIT = D("0.01")
MODEL = "gpt-4o"


@pytest.fixture(params=["memory", "sqlite", "redis", "cluster", "sentinel"])
def store_url(request, tmp_path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'budgets.db'}"
    return request.getfixturevalue({"redis": "redis_url", "cluster": "redis_cluster_url",
                                    "sentinel": "redis_sentinel_url"}[kind])


@pytest.fixture(params=["leases off", "leases on"])
def app(request, store_url, tracer_provider, settings, fake):
    """An app configured in code with `store_url` (leases off and on), its store emptied first (the
    servers are shared)."""
    if store_url != "memory":
        store_from_url(store_url).clear()
    _setup.reset_for_tests()
    llm_cost.configure(tracer_provider=tracer_provider, budget_store=store_url,
                       budget_lease=request.param == "leases on")
    yield openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
    from otel_llm_cost.instrumentation import uninstrument

    uninstrument()
    _setup.reset_for_tests()


def _call(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])


def test_a_sequential_app_is_refused_exactly_when_the_budget_has_no_room_on_every_store(
        app, store_url, span_exporter, fake):
    """Calls of a few milliseconds, one after another: each is refused only when its settled spend plus
    its worst case would pass the limit, the same call on every store; status, message and store agree."""
    fake.set_model(MODEL, input_tokens=8, output_tokens=30)
    llm_cost.set_budget(LIMIT, name="global")
    allowed = 0
    with pytest.raises(llm_cost.BudgetExceededError) as refused:
        for _ in range(100):
            _call(app)
            allowed += 1
    costs = [cost_of(span) for span in our_spans(span_exporter) if "gen_ai.usage.cost.amount" in span.attributes]
    spent = sum(costs, D(0))
    worst = refused.value.estimate
    assert len(costs) == allowed and fake.request_count("/chat/completions") == allowed
    assert spent + worst > LIMIT >= spent - costs[-1] + worst  # refused with no room; the last call had room
    assert len(set(costs)) == 1 and allowed == int((LIMIT - worst) / costs[0]) + 1  # as the memory store

    status = llm_cost.budget_remaining("global")
    assert (status.spent, status.reserved) == (spent, D(0))  # at once: nothing of the calls still held
    assert (refused.value.spent, refused.value.held) == (spent, D(0))
    assert f"spent ${spent.normalize():f}, this call up to" in str(refused.value)
    assert "held by calls in flight" not in str(refused.value)

    release_all_leases()  # what the process does at exit
    _flush_at_exit()
    if store_url != "memory":
        assert store_from_url(store_url).usage("global", "", "total") == (spent, D(0))


def test_a_limit_below_one_calls_worst_case_says_so(app, fake):
    llm_cost.set_budget(D("0.001"), name="tiny")
    with pytest.raises(llm_cost.BudgetExceededError) as refused:
        _call(app)
    assert "limit $0.001, this call alone needs up to $" in str(refused.value)
    assert fake.request_count("/chat/completions") == 0


def test_the_refusal_is_the_sdks_api_error_but_nothing_that_is_retried(app, fake):
    """`except openai.APIError:` is the handler apps write; it catches the refusal, and no retry logic
    (the SDK's, tenacity's, a framework's) sees a status or connection error to retry."""
    llm_cost.set_budget(0, name="zero")
    with pytest.raises(openai.APIError) as refused:
        _call(app)
    error = refused.value
    assert isinstance(error, llm_cost.BudgetExceededError)
    assert not isinstance(error, (openai.APIStatusError, openai.APIConnectionError))
    assert error.message == str(error) and error.body is None
    assert str(error.request.url).startswith(fake.openai_url.rsplit("/v1", 1)[0].replace("localhost", "127.0.0.1"))
    assert fake.request_count("/chat/completions") == 0


def test_anthropic_refusal_is_its_api_error(app, fake, anthropic_client):
    import anthropic

    llm_cost.set_budget(0, name="zero")
    with pytest.raises(anthropic.APIError) as refused:
        anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=100,
                                         messages=[{"role": "user", "content": "Hi"}])
    assert isinstance(refused.value, llm_cost.BudgetExceededError)
    assert not isinstance(refused.value, (anthropic.APIStatusError, anthropic.APIConnectionError))


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:{port}", "redis+sentinel://127.0.0.1:{port}/llm-cost",
                                 "redis://127.0.0.1:{port}/0"])
def test_a_store_that_is_down_at_start_up_follows_the_failure_policy(url, tracer_provider, settings, fake):
    """Start-up never fails because a store is down: `allow` sends the call, `refuse` refuses it with an
    error that is the SDK's own too."""
    from tests.conftest import _free_ports

    url = url.format(port=_free_ports(1)[0])
    for policy in ("allow", "refuse"):
        _setup.reset_for_tests()
        try:
            llm_cost.configure(tracer_provider=tracer_provider, budget_store=url, budget_store_failure=policy)
            llm_cost.set_budget(5, name="global")
            client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
            if policy == "allow":
                _call(client)
                assert llm_cost.budget_remaining("global").stale is True
            else:
                with pytest.raises(openai.APIError) as refused:
                    _call(client)
                assert isinstance(refused.value, llm_cost.BudgetStoreUnavailableError)
                assert isinstance(refused.value, openai.OpenAIError)
        finally:
            from otel_llm_cost.instrumentation import uninstrument

            uninstrument()
            _setup.reset_for_tests()
    assert fake.request_count("/chat/completions") == 1


def test_threshold_one_is_reached_at_the_first_refusal_of_a_strict_budget(app, fake):
    fake.set_model(MODEL, input_tokens=8, output_tokens=30)
    llm_cost.set_budget(LIMIT, name="global")
    reached: list[float] = []
    llm_cost.on_budget_threshold(lambda status, level: reached.append(level), at=(0.5, 1.0))
    with pytest.raises(llm_cost.BudgetExceededError):
        for _ in range(100):
            _call(app)
    runtime = _setup.runtime()
    runtime.guard.thresholds.drain()
    assert reached == [0.5, 1.0]  # spend never reached the limit: 1.0 came with the refusal
    assert llm_cost.budget_remaining("global").spent < LIMIT

    llm_cost.clear_budget("global")  # clears the claims too: the next crossing is told again
    llm_cost.set_budget(LIMIT, name="global")
    with pytest.raises(llm_cost.BudgetExceededError):
        for _ in range(100):
            _call(app)
    runtime.guard.thresholds.drain()
    assert reached == [0.5, 1.0, 0.5, 1.0]


def test_a_crossing_made_by_a_scripts_last_call_is_delivered_before_it_exits(fake, tmp_path, redis_url):
    store_from_url(redis_url).clear()
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        import time
        import openai
        import otel_llm_cost as llm_cost

        llm_cost.configure(budget_store={redis_url!r})
        llm_cost.set_budget(0.001, name="global")

        def told(status, level):
            time.sleep(0.3)  # a callback that takes a while (a webhook)
            print("crossed", level, flush=True)

        llm_cost.on_budget_threshold(told, at=(0.5,))
        client = openai.OpenAI(base_url={fake.openai_url!r}, api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=100,
                                       messages=[{{"role": "user", "content": "Hi"}}])
    """))
    fake.set_model("gpt-4o-mini", input_tokens=4000, output_tokens=10)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["crossed 0.5"]


_APP_RACER = r"""
import sys, threading
from decimal import Decimal
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_llm_cost as llm_cost

exporter, provider = InMemorySpanExporter(), TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
llm_cost.configure(tracer_provider=provider, budget_store=sys.argv[1])
llm_cost.set_pricing("race-model", 0, 1000)  # 100 output tokens: $0.10, worst case and actual alike
llm_cost.set_budget(10, name="global")
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
allowed, lock, barrier = [], threading.Lock(), threading.Barrier(16)

def worker():
    barrier.wait()
    for _ in range(4):
        try:
            client.chat.completions.create(model="race-model", max_tokens=100, messages=[{"role": "user", "content": ""}])
        except llm_cost.BudgetExceededError:
            continue
        with lock:
            allowed.append(1)

threads = [threading.Thread(target=worker) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
costs = [Decimal(repr(s.attributes["gen_ai.usage.cost.amount"])) for s in exporter.get_finished_spans()
         if "gen_ai.usage.cost.amount" in s.attributes]
print(len(allowed), sum(costs, Decimal(0)), flush=True)
"""


@pytest.mark.parametrize("lease", ["off", pytest.param("on", marks=pytest.mark.xfail(
    strict=False, reason="with leases, 101 of 100 calls were admitted in 2 of about 10 runs of this file after "
                         "the other budget test files, on Redis and Sentinel, with no outage logged: not yet "
                         "explained, so leases are opt-in (OTEL_LLM_COST_BUDGET_LEASE=on)"))])
@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster", "sentinel"])
def test_4_app_processes_of_16_threads_race_for_a_shared_budget(kind, lease, request, tmp_path, fake):
    """256 calls whose worst case and cost are $0.10 race for $10 through the app's path: never more than
    100 are sent, the store's spend equals the spans' costs, and nothing stays reserved after the processes
    exit. Without leases exactly 100 are sent; with them, at most the README's worst case is unusable:
    each of the 3 other processes' unused slice, at most LEASE_SHARE of the $10 (and the call it was
    taken with), so never fewer than 100 - 3 x 11 = 67."""
    url = f"sqlite:///{tmp_path / 'budgets.db'}" if kind == "sqlite" else request.getfixturevalue(
        {"redis": "redis_url", "cluster": "redis_cluster_url", "sentinel": "redis_sentinel_url"}[kind])
    store_from_url(url).clear()
    fake.set_model("race-model", input_tokens=0, output_tokens=100)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LLM_COST_BUDGET_LEASE": lease}
    racers = [subprocess.Popen([sys.executable, "-c", _APP_RACER, url, fake.openai_url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    allowed, costs, logs = 0, D(0), []
    for racer in racers:
        out, err = racer.communicate(timeout=180)
        assert racer.returncode == 0, err
        count, cost = out.split()
        allowed, costs = allowed + int(count), costs + D(cost)
        logs += [line for line in err.splitlines() if "otel-llm-cost" in line]
    print(f"race on {kind}, leases {lease}: {allowed} of 100 allowed")
    unusable_calls = 3 * int((D(10) * LEASE_SHARE + D("0.1")) / D("0.1"))
    assert (allowed == 100) if lease == "off" else (100 - unusable_calls <= allowed <= 100), (allowed, logs)
    assert fake.request_count("/chat/completions") == allowed
    assert costs == D(allowed) / 10 and store_from_url(url).usage("global", "", "total") == (costs, D(0))


def test_a_cluster_master_killed_mid_run_raises_nothing_and_its_spend_is_replayed_once(
        tmp_path, tracer_provider, settings, fake, span_exporter):
    """The master that owns the budget keys' slot is killed (SIGKILL) between calls and started again:
    the calls meanwhile go ahead (policy allow) and raise nothing, and once the cluster is whole again
    the store's spend is exactly the spans' costs: applied once, lost nowhere."""
    import signal

    from redis.cluster import RedisCluster

    from tests.conftest import _redis_processes, cluster_node_arguments, redis_cluster, wait_for_cluster

    with redis_cluster(tmp_path, persist=True) as (url, ports, processes):
        owner = RedisCluster(host="127.0.0.1", port=ports[0]).get_node_from_key("{llm_cost}:x").port
        index = ports.index(owner)
        _setup.reset_for_tests()
        try:
            # leases off: every call reaches the store, so the outage meets the calls
            llm_cost.configure(tracer_provider=tracer_provider, budget_store=url, budget_lease=False)
            llm_cost.set_budget(100, name="global")
            client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
            for _ in range(3):
                _call(client)
            processes[index].send_signal(signal.SIGKILL)
            processes[index].wait(timeout=10)
            for _ in range(4):  # the cluster is down: allowed, the spend queued
                _call(client)
            assert llm_cost.budget_remaining("global").stale is True
            processes += _redis_processes(tmp_path, cluster_node_arguments(owner, persist=True))
            wait_for_cluster(ports[0])
            deadline = time.monotonic() + 30
            while not _setup.runtime().guard.flush() or llm_cost.budget_remaining("global").stale:
                assert time.monotonic() < deadline, "the queued spend was never applied"
                time.sleep(0.1)
            _call(client)
            release_all_leases()
            _flush_at_exit()
            costs = sum((cost_of(s) for s in our_spans(span_exporter)), D(0))
            assert fake.request_count("/chat/completions") == 8
            assert store_from_url(url).usage("global", "", "total") == (costs, D(0))
        finally:
            from otel_llm_cost.instrumentation import uninstrument

            uninstrument()
            _setup.reset_for_tests()

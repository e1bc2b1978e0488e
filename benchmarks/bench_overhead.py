"""Per-call overhead of otel-llm-cost and its peers with the real OpenAI client, every mode in the same run.

    .venv-bench/bin/python benchmarks/bench_overhead.py [--rounds 7] [--calls 300] [--streams 60]

Measured as a separate process cannot: inside one process, the instrumentation switched off and on in
alternating batches, and the overhead is the median of the paired differences (on minus the adjacent
off). Separate processes on a small shared machine differ by more than the effect. Each mode still runs
in its own child process (a peer that patches for good cannot leak into the next mode), and the rounds
interleave the modes. A batch is timed as the CPU of the whole process (background threads included:
our budget settler, a peer's exporter) over its calls plus one metrics collection, so work deferred to
collection is paid for; the fake provider runs in another process.

Modes: ``bare span`` (one OTel span around the call, no attributes, no metrics); ``floor`` (a span
with the ~18 attributes our span carries, plus the same metric records ours makes, written naively: a
dict per record, straight into the OTel SDK); ``otel-llm-cost`` (`configure()`, metrics on); the same
with a global and a per-session budget on the ``memory``, ``SQLite`` and ``Redis`` stores (their
"off" is ours without budgets, so the ratio to ours is measured directly); and whichever peers are
installed: the official ``opentelemetry-instrumentation-genai-openai``, OpenLLMetry's
``opentelemetry-instrumentation-openai`` and OpenLIT (its events off and its pricing file local).
Every mode has the same tracer provider (a span processor that drops spans) and meter provider (an
in-memory reader).

Workloads: a non-stream chat completion (1,000 tokens in, 100 out) and a 100-chunk stream. We ask the
server for a stream's usage chunk when the app did not; what that one extra chunk costs the SDK to
parse is measured apart, as the uninstrumented stream with `stream_options.include_usage` set.

The lifecycle rows replace the HTTP round trip by ready SDK objects, in one process, to isolate our
own work from I/O: bare span, floor, and ours (`configure()`-equivalent pipeline) on the same response.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

warnings.filterwarnings("ignore")
MESSAGES = [{"role": "user", "content": "Say hello."}]
MODES = ("uninstrumented", "bare span", "floor", "otel-llm-cost", "budgets: memory", "budgets: SQLite",
         "budgets: Redis", "official genai-openai", "OpenLLMetry", "OpenLIT")
BUDGET_MODES = ("budgets: memory", "budgets: SQLite", "budgets: Redis")
PEER_MODULES = {"official genai-openai": "opentelemetry.instrumentation.genai.openai",
                "OpenLLMetry": "opentelemetry.instrumentation.openai", "OpenLIT": "openlit"}


def available_modes() -> list[str]:
    import importlib.util

    return [m for m in MODES if m not in PEER_MODULES or importlib.util.find_spec(PEER_MODULES[m]) is not None]


# --- the child: one mode, timed ---


def dropping_tracer_provider() -> Any:
    """A tracer provider whose spans go through a span processor to an exporter that drops them."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return provider


def _providers() -> tuple[Any, Any, Any]:
    """A child's global providers: spans dropped, metrics read in memory."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    tracer_provider = dropping_tracer_provider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider, reader


def floor_attributes(response: Any) -> dict[str, Any]:
    """The attributes our span carries for this response, computed naively."""
    usage = response.usage
    cost_in, cost_out = usage.prompt_tokens * 2.5e-6, usage.completion_tokens * 1e-5
    return {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.stream": False, "server.address": "127.0.0.1", "server.port": 8000,
        "gen_ai.response.model": response.model, "gen_ai.response.id": response.id,
        "gen_ai.response.finish_reasons": [c.finish_reason for c in response.choices],
        "gen_ai.usage.input_tokens": usage.prompt_tokens, "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cost.amount": cost_in + cost_out, "gen_ai.usage.cost.currency": "USD",
        "gen_ai.usage.cost.source": "local", "gen_ai.usage.cost": cost_in + cost_out,
        "llm_cost.cost.input": cost_in, "llm_cost.cost.output": cost_out,
        "llm_cost.pricing.source": "bundled", "llm_cost.pricing.model": "gpt-4o",
    }


class _Floor:
    """A span with our attributes and the metric records our call makes, in the plainest code."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, attributes: dict[str, Any]) -> None:
        from otel_llm_cost.metrics import CostMetrics

        self.tracer = tracer_provider.get_tracer("floor")
        self.instruments = CostMetrics(meter_provider)  # the same instruments, names and buckets
        self.attributes = attributes

    def run(self, call: Callable[[], Any]) -> Any:
        from opentelemetry.trace import SpanKind

        a, m = self.attributes, self.instruments
        started = time.perf_counter()
        with self.tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=a):
            result = call()
        labels = {k: a[k] for k in ("gen_ai.provider.name", "gen_ai.operation.name", "gen_ai.request.model",
                                    "gen_ai.response.model")}
        m.calls.add(1, {**labels, "llm_cost.outcome": "ok", "llm_cost.pricing.known": True})
        m.duration.record(time.perf_counter() - started, labels)
        m.token_usage.record(a["gen_ai.usage.input_tokens"], {**labels, "gen_ai.token.type": "input"})
        m.token_usage.record(a["gen_ai.usage.output_tokens"], {**labels, "gen_ai.token.type": "output"})
        m.tokens.add(a["gen_ai.usage.input_tokens"], {**labels, "llm_cost.token.type": "input"})
        m.tokens.add(a["gen_ai.usage.output_tokens"], {**labels, "llm_cost.token.type": "output"})
        m.cost.record(a["gen_ai.usage.cost.amount"], labels)
        return result


class _Switch:
    """A mode that can be switched off and on inside one process; `run(call)` makes one call."""

    def __init__(self, run: Callable[[Callable[[], Any]], Any], on: Callable[[], None], off: Callable[[], None]):
        self.run, self.on, self.off = run, on, off


def _nothing() -> None:
    return None


def _plain(call: Callable[[], Any]) -> Any:
    return call()


def _switch(mode: str, tracer_provider: Any, meter_provider: Any, client: Any, store_url: str | None) -> _Switch:
    """Set `mode` up, switched on; return how to switch it and run a call in it."""
    from opentelemetry.trace import SpanKind

    if mode in ("uninstrumented", "bare span", "floor"):
        if mode == "uninstrumented":
            return _Switch(_plain, _nothing, _nothing)
        if mode == "bare span":
            tracer = tracer_provider.get_tracer("bench")

            def spanned(call: Callable[[], Any]) -> Any:
                with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT):
                    return call()
            way = spanned
        else:
            way = _Floor(tracer_provider, meter_provider,
                         floor_attributes(client.chat.completions.create(model="gpt-4o", messages=MESSAGES))).run
        state = {"on": True}
        return _Switch(lambda call: way(call) if state["on"] else call(), lambda: state.update(on=True),
                       lambda: state.update(on=False))
    if mode == "otel-llm-cost" or mode in BUDGET_MODES:
        import otel_llm_cost
        from otel_llm_cost.instrumentation.openai import OpenAIInstrumentor

        otel_llm_cost.configure(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                budget_store=store_url or "memory")
        if mode in BUDGET_MODES:  # off: ours without budgets; on: a global and a per-session budget
            from otel_llm_cost import _setup

            def budgets_on() -> None:
                otel_llm_cost.set_budget(10_000_000, name="global")
                otel_llm_cost.set_budget(10_000_000, scope="session", name="per-session")

            def budgets_off() -> None:
                _setup._runtime.guard.remove()

            session = otel_llm_cost.session

            def in_session(call: Callable[[], Any]) -> Any:
                with session("bench-session", user_id="bench-user"):
                    return call()

            budgets_on()
            _count_round_trips(_setup._runtime.guard.store)
            return _Switch(in_session, budgets_on, budgets_off)
        instrumentor = OpenAIInstrumentor()
        return _Switch(_plain, lambda: instrumentor.instrument(tracer_provider=tracer_provider),
                       instrumentor.uninstrument)
    # OpenLLMetry's and OpenLIT's uninstrument() leave their wrapper in place, and instrument() adds another
    # on top (checked: a call makes 1, then 2, then 3 spans): they are switched by putting the SDK method
    # back as it was before they patched it, and their patched one again.
    from openai.resources.chat.completions import Completions

    bare = Completions.__dict__["create"]
    if mode == "OpenLIT":
        import openlit
        from openlit._instrumentors import MODULE_NAME_MAP
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as prices:  # no network
            json.dump({"chat": {"gpt-4o": {"promptPrice": 0.0025, "completionPrice": 0.01}}}, prices)
        openlit.init(pricing_json=prices.name, disable_events=True,
                     disabled_instrumentors=[name for name in MODULE_NAME_MAP if name != "openai"])
    else:
        import importlib

        peer = importlib.import_module(PEER_MODULES[mode]).OpenAIInstrumentor()
        peer.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        if mode == "official genai-openai":  # its uninstrument() restores the method exactly
            return _Switch(_plain, lambda: peer.instrument(tracer_provider=tracer_provider,
                                                           meter_provider=meter_provider), peer.uninstrument)
    patched = Completions.__dict__["create"]
    return _Switch(_plain, lambda: setattr(Completions, "create", patched),
                   lambda: setattr(Completions, "create", bare))


ROUND_TRIPS = [0, 0]
"""Store operations (reserve, read, batch of writes) made since the budgets' store was set up; and of
those, the ones the metrics collections made (the budget gauges read the store at every collection,
which the benchmark makes every window, where Prometheus would scrape every 15 s or so)."""


def _count_round_trips(store: Any) -> None:
    """Count every operation of the store under the lease and outage layers: each is a round trip."""
    while "store" in vars(store):  # LeasedStore -> OutageBuffer -> the store itself
        store = vars(store)["store"]
    for name in ("reserve", "usage", "keys", "apply_writes"):
        method = getattr(store, name)

        def counted(*args: Any, _method: Callable[..., Any] = method, **kwargs: Any) -> Any:
            ROUND_TRIPS[0] += 1
            return _method(*args, **kwargs)

        setattr(store, name, counted)


def _window(switch: _Switch, call: Callable[[], Any], n: int, reader: Any) -> float:
    """CPU of the whole process per call over `n` calls and one metrics collection, in µs."""
    gc.collect()
    start = time.process_time_ns()
    for _ in range(n):
        switch.run(call)
    before = ROUND_TRIPS[0]
    reader.collect()
    ROUND_TRIPS[1] += ROUND_TRIPS[0] - before
    return (time.process_time_ns() - start) / 1000 / n


def child(mode: str, url: str, calls: int, streams: int, store_url: str | None = None) -> dict[str, float]:
    """{workload: median of (on - off) over paired batches} and {workload + " off": median off}."""
    import openai

    tracer_provider, meter_provider, reader = _providers()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
    switch = _switch(mode, tracer_provider, meter_provider, client, store_url)
    workloads: dict[str, tuple[Callable[[], Any], int]] = {
        "non-stream": (lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES), calls),
        "stream": (lambda: sum(1 for _ in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True)), streams),
    }
    if mode == "uninstrumented":
        workloads["stream asking usage"] = (lambda: sum(1 for _ in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})), streams)
    for call, _ in workloads.values():
        for _ in range(10):  # warm-up, both ways
            switch.run(call)
    differences: dict[str, list[float]] = {name: [] for name in workloads}
    offs: dict[str, list[float]] = {name: [] for name in workloads}
    calls_on, trips_before = 0, ROUND_TRIPS[0] - ROUND_TRIPS[1]
    batches = 10
    for index in range(batches):  # off and on alternate, and which goes first alternates too
        for name, (call, n) in workloads.items():
            size = max(1, n // batches)
            timed = {}
            for state in (("off", "on") if index % 2 == 0 else ("on", "off")):
                (switch.off if state == "off" else switch.on)()
                timed[state] = _window(switch, call, size, reader)
                calls_on += size if state == "on" else 0
            switch.on()
            differences[name].append(timed["on"] - timed["off"])
            offs[name].append(timed["off"])
    result = {name: statistics.median(values) for name, values in differences.items()}
    result.update({f"{name} off": statistics.median(values) for name, values in offs.items()})
    if mode in BUDGET_MODES and mode != "budgets: memory":  # far from the limit, leased: well under one a call
        result["round trips per call"] = (ROUND_TRIPS[0] - ROUND_TRIPS[1] - trips_before) / calls_on
    return result


# --- the parent: interleaved rounds of children ---


@contextlib.contextmanager
def fake_provider_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost.testing.fake", "--port", "0", "--until-stdin-closes",
         "--model", "gpt-4o=input_tokens=1000,output_tokens=100,chunks=100"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


def _run_child(mode: str, url: str, calls: int, streams: int, store_url: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "OPENLIT")) or k == "OTEL_LLM_COST_BUDGET_LEASE"} | {
        "PYTHONWARNINGS": "ignore", "OTEL_SDK_DISABLED": "false",
        "PYTHONHASHSEED": "0"}  # the same dict layouts in every child: less noise between processes
    argv = [sys.executable, __file__, "--child", mode, "--url", url, "--calls", str(calls), "--streams", str(streams)]
    if store_url:
        argv += ["--store", store_url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{mode}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rounds: int, calls: int, streams: int, stores: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """{workload: {mode: median overhead over rounds, µs}}, with the uninstrumented call itself under
    "uninstrumented", the usage chunk's cost under "usage chunk", and for each budget mode its overhead
    beyond ours under "<mode> beyond ours". `stores`: the budget modes' store URLs (a mode without one is
    skipped)."""
    stores = stores or {}
    modes = [m for m in available_modes() if m not in BUDGET_MODES or m in stores]
    per_round: dict[str, dict[str, list[float]]] = {}
    with fake_provider_process() as url:
        for _ in range(rounds):
            for mode in modes:
                seen = _run_child(mode, url, calls, streams, stores.get(mode))
                for workload in ("non-stream", "stream"):
                    row = per_round.setdefault(workload, {})
                    if mode == "uninstrumented":
                        row.setdefault("uninstrumented", []).append(seen[f"{workload} off"])
                        if workload == "stream":
                            row.setdefault("usage chunk", []).append(seen["stream asking usage off"] - seen["stream off"])
                    elif mode in BUDGET_MODES:
                        row.setdefault(f"{mode} beyond ours", []).append(seen[workload])
                        if "round trips per call" in seen:
                            row.setdefault(f"{mode} round trips", []).append(seen["round trips per call"])
                    else:
                        row.setdefault(mode, []).append(seen[workload])
    result = {w: {m: statistics.median(v) for m, v in row.items()} for w, row in per_round.items()}
    for row in result.values():  # a budget mode in full: ours plus what its budgets add
        for mode in BUDGET_MODES:
            if f"{mode} beyond ours" in row and "otel-llm-cost" in row:
                row[mode] = row["otel-llm-cost"] + row[f"{mode} beyond ours"]
    return result


# --- lifecycle: no I/O, one process ---


def ready_responses() -> tuple[Any, list[Any]]:
    """A chat completion and a 100-chunk stream (plus its usage chunk) as the SDK parses them."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    response = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": usage,
    })
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    chunks = [ChatCompletionChunk.model_validate({**head, "choices": [
        {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop" if i == 99 else None}]})
        for i in range(100)]
    chunks.append(ChatCompletionChunk.model_validate({**head, "choices": [], "usage": usage}))
    return response, chunks


def measure_lifecycle(n: int = 20_000, batches: int = 10) -> dict[str, dict[str, float]]:
    """Median µs per call of each way, the SDK call replaced by a ready response; batches interleaved."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.trace import SpanKind

    from otel_llm_cost import _state
    from otel_llm_cost.budget.guard import BudgetGuard
    from otel_llm_cost.budget.stores import MemoryStore
    from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, wrap_endpoint
    from otel_llm_cost.instrumentation.openai import CHAT
    from otel_llm_cost.metrics import CostMetrics
    from otel_llm_cost.processor import CostSpanProcessor

    response, chunks = ready_responses()
    reader = InMemoryMetricReader()
    ours = dropping_tracer_provider()
    guard = BudgetGuard(MemoryStore())
    processor = CostSpanProcessor(guard=guard)
    processor.add_listener(CostMetrics(MeterProvider(metric_readers=[reader]), guard).record)
    ours.add_span_processor(processor)
    _state.set_budget_hook(guard)
    wrapper = wrap_endpoint(CallContext(tracer=ours.get_tracer(SCOPE_NAME)), CHAT, is_async=False)
    bare = dropping_tracer_provider().get_tracer("bench")
    floor = _Floor(dropping_tracer_provider(), MeterProvider(metric_readers=[InMemoryMetricReader()]),
                   floor_attributes(response))
    workloads = {
        "non-stream": ({"model": "gpt-4o", "messages": MESSAGES}, lambda **_: response, lambda r: r, n),
        "100-chunk stream": ({"model": "gpt-4o", "messages": MESSAGES, "stream": True},
                             lambda **_: iter(chunks), lambda r: sum(1 for _ in r), n // 20),
    }
    results: dict[str, dict[str, float]] = {}
    for workload, (kwargs, send, consume, calls) in workloads.items():
        def spanned(kwargs: dict[str, Any] = kwargs, send: Any = send, consume: Any = consume) -> Any:
            with bare.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT):
                return consume(send(**kwargs))

        ways = {
            "uninstrumented": lambda kwargs=kwargs, send=send, consume=consume: consume(send(**kwargs)),
            "bare span": spanned,
            "floor": lambda kwargs=kwargs, send=send, consume=consume: floor.run(lambda: consume(send(**kwargs))),
            "otel-llm-cost": lambda kwargs=kwargs, send=send, consume=consume: consume(wrapper(send, None, (), kwargs)),
        }
        medians: dict[str, list[float]] = {w: [] for w in ways}
        for _ in range(batches):
            for way, fn in ways.items():
                samples = []
                for _ in range(calls // batches):
                    begin = time.perf_counter_ns()
                    fn()
                    samples.append((time.perf_counter_ns() - begin) / 1000)
                medians[way].append(statistics.median(samples))
                reader.collect()
        results[workload] = {w: statistics.median(v) for w, v in medians.items()}
    _state.set_budget_hook(None)
    return results


def report(results: dict[str, dict[str, float]], lifecycle: dict[str, dict[str, float]]) -> str:
    lines = []
    for workload, values in lifecycle.items():
        lines.append(f"{workload}, lifecycle only (SDK objects ready, no I/O): median µs per call")
        base = values["uninstrumented"]
        for way, value in values.items():
            ratio = f"{(value - base) / (values['floor'] - base):5.2f}x floor" if way != "uninstrumented" else ""
            lines.append(f"  {way:18} {value:9.2f}   {ratio}")
    for workload, values in results.items():
        lines.append(f"\n{workload} via the fake provider: client CPU per call added (paired median over rounds)")
        lines.append(f"  {'uninstrumented':22} {values['uninstrumented']:9.1f} µs per call")
        floor = values["floor"]
        for mode, overhead in values.items():
            if mode not in ("uninstrumented", "usage chunk") and not mode.endswith("beyond ours"):
                lines.append(f"  {mode:22} +{overhead:8.1f} µs   {overhead / floor:5.2f}x floor")
        if "usage chunk" in values:
            chunk = values["usage chunk"]
            lines.append(f"  {'(the usage chunk)':22} +{chunk:8.1f} µs   otel-llm-cost without it: "
                         f"{(values['otel-llm-cost'] - chunk) / floor:5.2f}x floor")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--streams", type=int, default=150)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.calls, args.streams, args.store)))
        return
    print(report(measure(args.rounds, args.calls, args.streams), measure_lifecycle()))


if __name__ == "__main__":
    main()

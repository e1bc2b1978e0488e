"""Per-call overhead of otel-llm-cost against the fake provider, in one run, with the real OpenAI client.

Modes, each timed in interleaved rounds so drift in the machine's speed hits all of them alike:

* ``uninstrumented``: the bare client;
* ``bare span``: the client inside one manual OTel span (the floor any tracing pays);
* ``otel-llm-cost``: our instrumentation (span, usage, cost, budget hook);
* peers, when installed: the official ``opentelemetry-instrumentation-genai-openai`` and
  OpenLLMetry's ``opentelemetry-instrumentation-openai``.

Time is the CPU time of the calling thread (the fake provider runs in its own process), so loopback
scheduling noise does not drown a few tens of microseconds. Overhead is the median minus the
uninstrumented median; the headline is our overhead as a
ratio to the bare span's. Non-stream calls and 100-chunk streams are measured separately.

The launch path is measured as users run it: a child process per round, either plain ``python``
(uninstrumented, or one bare span per call on an SDK tracer provider) or ``opentelemetry-instrument
python`` with Prometheus metrics on and only our instrumentors loaded. Each child reports the median
client CPU per non-stream call.

    .venv/bin/python benchmarks/bench_overhead.py [--calls 40] [--rounds 25] [--launch-rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.instrumentation._instrumentor import _resolve
from otel_llm_cost.instrumentation.openai import OpenAIInstrumentor

warnings.filterwarnings("ignore")
MESSAGES = [{"role": "user", "content": "Say hello."}]


class _DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_DropExporter()))
    return provider


@contextlib.contextmanager
def _restored_methods() -> Iterator[None]:
    """Some peers' uninstrument() does not restore openai's methods; we put them back ourselves."""
    methods = [(_resolve(t), t.name.rsplit(".", 1)[-1]) for t in OpenAIInstrumentor.targets]
    before = [(owner, name, owner.__dict__[name]) for owner, name in methods if owner is not None]
    try:
        yield
    finally:
        for owner, name, original in before:
            setattr(owner, name, original)


def _peer(module: str) -> Any | None:
    try:
        return importlib.import_module(module).OpenAIInstrumentor()
    except Exception:
        return None


@contextlib.contextmanager
def _mode(name: str, provider: TracerProvider) -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """Yields how to run one call in this mode."""
    tracer = provider.get_tracer("bench")
    plain = lambda call: call()  # noqa: E731
    with _restored_methods():
        if name == "uninstrumented":
            yield plain
        elif name == "bare span":

            def spanned(call: Callable[[], Any]) -> Any:
                with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT):
                    return call()

            yield spanned
        elif name == "otel-llm-cost":
            instrument(tracer_provider=provider)
            try:
                yield plain
            finally:
                uninstrument()
        else:
            peer = _peer(PEERS[name])
            assert peer is not None
            peer.instrument(tracer_provider=provider)
            try:
                yield plain
            finally:
                peer.uninstrument()


PEERS = {
    "official genai-openai": "opentelemetry.instrumentation.genai.openai",
    "OpenLLMetry openai": "opentelemetry.instrumentation.openai",
}


def _time_calls(run: Callable[[Callable[[], Any]], Any], call: Callable[[], Any], n: int) -> list[float]:
    """CPU time of the calling thread per call, in µs: what instrumentation adds to the app, without the
    scheduling noise of loopback I/O (the fake provider runs in another process)."""
    samples = []
    for _ in range(n):
        start = time.thread_time_ns()
        run(call)
        samples.append((time.thread_time_ns() - start) / 1000)
    return samples


@contextlib.contextmanager
def _fake_provider_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost.testing.fake_provider",
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


def measure(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median over rounds of each mode's overhead within the round (paired, so drift cancels)."""
    modes = ["uninstrumented", "bare span", "otel-llm-cost"] + [p for p, m in PEERS.items() if _peer(m)]
    results: dict[str, dict[str, float]] = {}
    with _fake_provider_process() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
        workloads: dict[str, Callable[[], Any]] = {
            "non-stream": lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES),
            "100-chunk stream": lambda: sum(1 for _ in client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True)),
        }
        for workload, call in workloads.items():
            overheads: dict[str, list[float]] = {m: [] for m in modes}
            base_medians: list[float] = []
            for _ in range(rounds):
                medians = {}
                for mode in modes:
                    with _mode(mode, _provider()) as run:
                        _time_calls(run, call, 5)  # warm-up
                        gc.collect()
                        medians[mode] = statistics.median(_time_calls(run, call, calls))
                base_medians.append(medians["uninstrumented"])
                for mode in modes:
                    overheads[mode].append(medians[mode] - medians["uninstrumented"])
            results[workload] = {"uninstrumented": statistics.median(base_medians)} | {
                m: statistics.median(v) for m, v in overheads.items() if m != "uninstrumented"}
    return results


def _ready_responses() -> tuple[Any, list[Any]]:
    """A chat completion and a 100-chunk stream (plus its usage chunk) as the SDK parses them."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
             "prompt_tokens_details": {"cached_tokens": 500}}
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
    """The ways of calling, with the HTTP round trip replaced by ready SDK objects, so the per-call
    cost of the instrumentation itself is measured without I/O noise. Batches are interleaved."""
    from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, wrap_endpoint
    from otel_llm_cost.instrumentation.openai import CHAT

    response, chunks = _ready_responses()
    provider = _provider()
    tracer = provider.get_tracer("bench")
    wrapper = wrap_endpoint(CallContext(tracer=provider.get_tracer(SCOPE_NAME)), CHAT, is_async=False)
    workloads = {
        "non-stream": ({"model": "gpt-4o", "messages": MESSAGES}, lambda **_: response, lambda r: r, n),
        "100-chunk stream": ({"model": "gpt-4o", "messages": MESSAGES, "stream": True},
                             lambda **_: iter(chunks), lambda r: sum(1 for _ in r), n // 20),
    }
    results: dict[str, dict[str, float]] = {}
    for workload, (kwargs, send, consume, calls) in workloads.items():
        ours = _our_attributes(wrapper, send, kwargs, consume)

        def spanned(attributes: dict[str, Any] | None) -> Any:
            with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes=attributes):
                return consume(send(**kwargs))

        ways = {
            "uninstrumented": lambda: consume(send(**kwargs)),
            "bare span": lambda: spanned(None),
            # what the SDK alone charges for the attributes we set: the floor of any cost span
            "bare span + our attributes": lambda: spanned(ours),
            "otel-llm-cost": lambda: consume(wrapper(send, None, (), kwargs)),
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
        results[workload] = {w: statistics.median(v) for w, v in medians.items()}
    return results


def _our_attributes(wrapper: Callable[..., Any], send: Callable[..., Any], kwargs: dict[str, Any],
                    consume: Callable[[Any], Any]) -> dict[str, Any]:
    """The attributes our span carries for this call, captured from one real instrumented call."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, wrap_endpoint
    from otel_llm_cost.instrumentation.openai import CHAT

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    capture = wrap_endpoint(CallContext(tracer=provider.get_tracer(SCOPE_NAME)), CHAT, is_async=False)
    consume(capture(send, None, (), kwargs))
    return dict(exporter.get_finished_spans()[0].attributes or {})


LAUNCH_MODES = ("uninstrumented", "bare span", "opentelemetry-instrument + prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_child(mode: str, url: str, calls: int) -> float:
    """Run `calls` non-stream calls in a fresh process launched as `mode`; their median client CPU, µs."""
    argv = [sys.executable, __file__, "--child", mode, "--url", url, "--calls", str(calls)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if mode == LAUNCH_MODES[2]:
        argv = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *argv]
        env |= {
            "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(_free_port()),
            "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            # measure ours alone: the peers' "openai" entry points and the other official GenAI ones off
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,google-genai,botocore,aiobotocore",
            "OTEL_LLM_COST_BUDGET_USD": "1000000",
        }
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["median_us"])


def _child(mode: str, url: str, calls: int) -> None:
    """The workload of one launch-path child: warm up, time `calls` calls, print the median as JSON."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
    call = lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # noqa: E731
    run: Callable[[Callable[[], Any]], Any] = lambda c: c()  # noqa: E731
    if mode == "bare span":
        tracer = TracerProvider().get_tracer("bench")

        def run(c: Callable[[], Any]) -> Any:
            with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT):
                return c()

    _time_calls(run, call, 20)
    gc.collect()
    print(json.dumps({"mode": mode, "median_us": statistics.median(_time_calls(run, call, calls))}))


def measure_launch(calls: int, rounds: int) -> dict[str, float]:
    """Median over rounds of each launch mode's overhead over the uninstrumented child of that round."""
    overheads: dict[str, list[float]] = {m: [] for m in LAUNCH_MODES}
    with _fake_provider_process() as url:
        for _ in range(rounds):
            medians = {mode: _launch_child(mode, url, calls) for mode in LAUNCH_MODES}
            for mode in LAUNCH_MODES:
                overheads[mode].append(medians[mode] - medians["uninstrumented"])
            overheads["uninstrumented"][-1] = medians["uninstrumented"]
    return {m: statistics.median(v) for m, v in overheads.items()}


def report(results: dict[str, dict[str, float]], lifecycle: dict[str, dict[str, float]],
           launch: dict[str, float] | None = None) -> str:
    lines = []
    for workload, values in lifecycle.items():
        lines.append(f"{workload}, lifecycle only (SDK objects ready, no I/O): median us per call")
        base = values["uninstrumented"]
        bare = values["bare span"] - base
        for way, value in values.items():
            ratio = f"{(value - base) / bare:5.2f}x bare span" if way != "uninstrumented" else ""
            lines.append(f"  {way:28} {value:9.2f}   {ratio}")
    for workload, values in results.items():
        lines.append(f"\n{workload} via the fake provider: client CPU per call, overhead (paired median over rounds)")
        bare = values["bare span"]
        lines.append(f"  {'uninstrumented':24} {values['uninstrumented']:9.1f} us")
        for mode, overhead in values.items():
            if mode != "uninstrumented":
                ratio = f"{overhead / bare:5.2f}x" if bare > 0 else "  n/a"
                lines.append(f"  {mode:24} +{overhead:8.1f} us   {ratio} bare span")
    if launch:
        bare = launch["bare span"]
        lines.append("\nlaunch path, non-stream, one process per mode and round: client CPU per call")
        lines.append(f"  {'uninstrumented':38} {launch['uninstrumented']:9.1f} us")
        for mode in LAUNCH_MODES[1:]:
            overhead = launch[mode]
            ratio = f"{overhead / bare:5.2f}x bare span" if bare > 0 else ""
            lines.append(f"  {mode:38} +{overhead:8.1f} us   {ratio}   "
                         f"{(launch['uninstrumented'] + overhead) / launch['uninstrumented']:5.2f}x uninstrumented")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--launch-rounds", type=int, default=7)
    parser.add_argument("--launch-calls", type=int, default=300)
    parser.add_argument("--child", choices=LAUNCH_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.calls)
        return
    lifecycle = measure_lifecycle()
    launch = measure_launch(args.launch_calls, args.launch_rounds) if args.launch_rounds > 0 else None
    print(report(measure(args.calls, args.rounds), lifecycle, launch))


if __name__ == "__main__":
    main()

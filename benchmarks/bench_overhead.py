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

    .venv/bin/python benchmarks/bench_overhead.py [--calls 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
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


def measure_lifecycle(n: int = 20_000) -> dict[str, float]:
    """The same three ways of calling, with the HTTP round trip replaced by a ready SDK response object,
    so the per-call cost of the instrumentation itself is measured without I/O noise."""
    from openai.types.chat import ChatCompletion

    from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, wrap_endpoint
    from otel_llm_cost.instrumentation.openai import CHAT

    response = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                  "prompt_tokens_details": {"cached_tokens": 500}},
    })
    provider = _provider()
    tracer = provider.get_tracer("bench")
    wrapper = wrap_endpoint(CallContext(tracer=provider.get_tracer(SCOPE_NAME)), CHAT, is_async=False)
    kwargs = {"model": "gpt-4o", "messages": MESSAGES}

    def send(**_: Any) -> Any:
        return response

    def bare() -> Any:
        with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT):
            return send(**kwargs)

    ways = {"uninstrumented": lambda: send(**kwargs), "bare span": bare,
            "otel-llm-cost": lambda: wrapper(send, None, (), kwargs)}
    medians: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(5):
        for way, fn in ways.items():
            samples = []
            for _ in range(n // 5):
                start = time.perf_counter_ns()
                fn()
                samples.append((time.perf_counter_ns() - start) / 1000)
            medians[way].append(statistics.median(samples))
    return {w: statistics.median(v) for w, v in medians.items()}


def report(results: dict[str, dict[str, float]], lifecycle: dict[str, float]) -> str:
    lines = ["lifecycle only (SDK response object ready, no I/O): median us per call"]
    base = lifecycle["uninstrumented"]
    bare = lifecycle["bare span"] - base
    for way, value in lifecycle.items():
        ratio = f"{(value - base) / bare:5.2f}x bare span" if way != "uninstrumented" else ""
        lines.append(f"  {way:24} {value:8.2f}   {ratio}")
    for workload, values in results.items():
        lines.append(f"\n{workload} via the fake provider: client CPU per call, overhead (paired median over rounds)")
        bare = values["bare span"]
        lines.append(f"  {'uninstrumented':24} {values['uninstrumented']:9.1f} us")
        for mode, overhead in values.items():
            if mode != "uninstrumented":
                ratio = f"{overhead / bare:5.2f}x" if bare > 0 else "  n/a"
                lines.append(f"  {mode:24} +{overhead:8.1f} us   {ratio} bare span")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    lifecycle = measure_lifecycle()
    print(report(measure(args.calls, args.rounds), lifecycle))


if __name__ == "__main__":
    main()

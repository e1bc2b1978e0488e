"""What our Bedrock instrumentor costs the AWS calls that are NOT Bedrock.

boto3 builds its client classes at run time, so we wrap `BaseClient._make_api_call`, which every
operation of every AWS client goes through. This measures an S3 `list_buckets` call answered by
botocore's own `Stubber` (the full client path up to the HTTP send: parameter validation, the event
hooks, response parsing) without instrumentation, with ours, and with the official botocore
instrumentation for comparison, interleaved in the same run.

    .venv/bin/python benchmarks/bench_passthrough.py [--calls 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import boto3
from botocore.stub import Stubber
from opentelemetry.sdk.trace import TracerProvider

from otel_llm_cost.instrumentation.bedrock import BedrockInstrumentor

_RESPONSE = {"Buckets": [{"Name": "logs", "CreationDate": datetime(2026, 1, 1, tzinfo=UTC)}],
             "Owner": {"ID": "owner"}}


def _s3_call() -> tuple[Callable[[], object], Stubber]:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
    stubber = Stubber(client)
    stubber.activate()

    def call() -> object:
        stubber.add_response("list_buckets", _RESPONSE, {})
        return client.list_buckets()

    return call, stubber


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def _modes(provider: TracerProvider) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    ours = BedrockInstrumentor()
    modes = {"uninstrumented": (lambda: None, lambda: None),
             "otel-llm-cost": (lambda: ours.instrument(tracer_provider=provider), ours.uninstrument)}
    try:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        official = BotocoreInstrumentor()
        modes["official botocore"] = (lambda: official.instrument(tracer_provider=provider), official.uninstrument)
    except ImportError:
        pass
    return modes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    provider = TracerProvider()
    call, _ = _s3_call()
    modes = _modes(provider)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, (on, off) in modes.items():
            on()
            try:
                _per_call_us(call, args.calls // 10)  # warm up this mode
                samples[name].append(_per_call_us(call, args.calls))
            finally:
                off()
    base = statistics.median(samples["uninstrumented"])
    print(f"S3 list_buckets via botocore's Stubber, median of {args.rounds} rounds x {args.calls} calls")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:18} {median:8.1f} µs/call  {median - base:+7.2f} µs  ({median / base:.3f}x)")


if __name__ == "__main__":
    main()

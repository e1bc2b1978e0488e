"""`otel-llm-cost demo`: an offline agent workload through the real OpenAI, Anthropic, Google GenAI,
Mistral, Cohere and boto3 (Bedrock) clients.

It starts the fake provider, serves Prometheus `/metrics`, and runs several sessions: a cache-heavy
Claude conversation, a streamed answer, embeddings, a model with no known price, Gemini with
thinking, Mistral, Cohere and Claude on Bedrock (when those SDKs are installed), and a runaway agent that its
session budget stops. A `warn` budget is left over its limit on purpose, so the
budget dashboards and alerts have something to show. No API key, no network.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from datetime import UTC, datetime
from typing import Any

from otel_llm_cost._cli_error import CliError
from otel_llm_cost._money import column_usd, usd

__all__ = ["add_demo_command", "run_demo"]

MESSAGES = [{"role": "user", "content": "Summarise our Q3 incident reports in three bullet points."}]
DEMO_LEDGER = "otel-llm-cost-demo.db"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0: no /metrics server)")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be zero or more seconds")
    return seconds


def add_demo_command(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the offline demo workload and serve /metrics",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--port", type=_port, default=9464, help="Prometheus /metrics port (0: no server)")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address /metrics listens on: 0.0.0.0 lets a Prometheus in a container scrape it "
                           "(docker-compose.observability.yml's host.docker.internal:9464)")
    demo.add_argument("--duration", type=_seconds, default=0.0,
                      help="keep generating traffic for this many seconds (for Prometheus to scrape)")
    demo.add_argument("--interval", type=_seconds, default=2.0, help="seconds between rounds with --duration")
    demo.add_argument("--exit", action="store_true",
                      help="exit after the workload instead of serving /metrics until Ctrl-C")
    demo.add_argument("--quiet", action="store_true", help="no per-call progress")
    demo.add_argument("--ledger", default=f"sqlite:///{DEMO_LEDGER}", metavar="URL",
                      help="usage ledger to record every call in ('none': no ledger)")
    demo.set_defaults(handler=lambda args, book: run_demo(args))


def _progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _require_sdks() -> None:
    """The demo drives the real OpenAI and Anthropic clients: without them, say which extra installs them."""
    import importlib.util

    missing = [name for name in ("openai", "anthropic") if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(f"the demo needs the {' and '.join(missing)} SDK{'s' if len(missing) > 1 else ''}: "
                       "pip install 'otel-llm-cost[demo]'")


def run_demo(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    _require_sdks()
    import anthropic
    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    import otel_llm_cost as llm_cost
    from otel_llm_cost.testing.fake import FakeProvider

    readers = []
    if args.port:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        try:
            start_http_server(args.port, addr=args.host)
        except OSError as exc:
            raise CliError(f"cannot serve /metrics on {args.host}:{args.port} ({exc.strerror or exc}); "
                           f"pick another with --port") from None
        readers.append(PrometheusMetricReader())
    meter_provider = MeterProvider(metric_readers=readers)
    from opentelemetry.sdk.resources import Resource

    # a service name of its own, not `unknown_service:python`, in the ledger's `service_name` and in traces
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "otel-llm-cost-demo"}))
    ledger = None if args.ledger == "none" else args.ledger
    started = datetime.now(UTC)
    llm_cost.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, metric_tags="feature,job",
                       ledger=ledger, fallback_models={"gpt-4o": "gpt-4o-mini"})
    if ledger:
        _progress(args.quiet, f"recording every call in the usage ledger {ledger}")
    llm_cost.set_budget("0.25", scope="session", name="demo-per-session")
    llm_cost.set_budget("0.001", window="day", on_exceed="warn", name="demo-daily-soft")
    llm_cost.set_budget(100, window="month", name="demo-monthly")
    # the calls tagged for them: one budget answers with a refusal message, one falls back to a cheaper model
    llm_cost.set_budget("0.10", scope="tag", tag="polite", on_exceed="respond", name="demo-polite-agent")
    llm_cost.set_budget("0.02", scope="tag", tag="thrifty", on_exceed="fallback", name="demo-thrifty-digest")

    with FakeProvider() as fake:
        fake.set_model("claude-sonnet-4-5", input_tokens=60_000, cache_read_tokens=52_000, cache_write_tokens=6_000,
                       cache_write_1h_tokens=1_000, output_tokens=700)
        fake.set_model("gpt-4o", input_tokens=2_400, cache_read_tokens=1_024, output_tokens=350, chunks=24)
        fake.set_model("gpt-4o-mini", input_tokens=900, output_tokens=120)
        fake.set_model("o4-mini", input_tokens=3_000, output_tokens=2_500, reasoning_tokens=2_000)
        fake.set_model("text-embedding-3-small", input_tokens=5_000)
        fake.set_model("gpt-4.1", output_tokens=4_000)  # the runaway agent: its growing history is counted
        fake.set_model("acme-internal-llm", input_tokens=800, output_tokens=100)
        fake.set_model("gemini-2.5-flash", input_tokens=40_000, cache_read_tokens=30_000, output_tokens=600,
                       reasoning_tokens=1_500, chunks=6)
        fake.set_model(BEDROCK_CLAUDE, input_tokens=12_000, cache_read_tokens=8_000, output_tokens=400)
        fake.set_model("mistral-small-2603", input_tokens=6_000, output_tokens=450)
        fake.set_model("command-a-03-2025", input_tokens=3_000, output_tokens=300)
        oai = openai.OpenAI(base_url=fake.openai_url, api_key="offline-demo", max_retries=0)
        claude = anthropic.Anthropic(base_url=fake.anthropic_url, api_key="offline-demo", max_retries=0)
        others = _optional_clients(fake)
        skipped = [name for name in _OPTIONAL_SDKS if name not in others]
        if skipped:
            print(f"note: the {', '.join(_OPTIONAL_SDKS[name] for name in skipped)} step(s) are skipped: their SDKs "
                  "are not installed (pip install 'otel-llm-cost[demo]')", file=sys.stderr)
        if args.port:
            _progress(args.quiet, f"serving Prometheus metrics on http://{args.host}:{args.port}/metrics")
        deadline = time.monotonic() + args.duration
        rounds = 0
        while True:
            rounds += 1
            _round(rounds, oai, claude, others, args.quiet)
            if time.monotonic() >= deadline:
                break
            time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))

    print()
    print(llm_cost.session_usage(None).format("table"))
    print()
    statuses = list(llm_cost.budgets())
    name_width = max((len(status.name) for status in statuses), default=0)
    limit_width = max((len(usd(status.limit)) for status in statuses), default=0) + 1
    spent_width = max((len(column_usd(status.spent)) for status in statuses), default=0) + 1
    for status in statuses:
        key = f" (worst key {status.key!r}, {status.exhausted_keys} exhausted)" if status.scope != "global" else ""
        print(f"budget {status.name:{name_width}} {status.window:6} limit {'$' + usd(status.limit):>{limit_width}}  "
              f"spent {'$' + column_usd(status.spent):>{spent_width}}  utilization {status.utilization:8.1%}{key}")
    if ledger:
        print()
        print(llm_cost.usage_report(since=started, by="user").format("table"))
    _next_steps(args, ledger)
    if args.port and not args.exit:
        _serve_until_interrupted(args.port)
    return 0


def _cli_command() -> str:
    """How the user can run our command from here: `.venv/bin/otel-llm-cost` when the virtualenv is not
    activated, plain `otel-llm-cost` when it is on PATH."""
    import os
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).parent / "otel-llm-cost"
    if shutil.which("otel-llm-cost") == str(beside) or not beside.exists():
        return "otel-llm-cost"
    try:
        return os.path.relpath(beside)
    except ValueError:
        return str(beside)


def _next_steps(args: argparse.Namespace, ledger: str | None) -> None:
    print()
    print("Where to look next:")
    if args.port and not args.exit:
        print(f"  metrics   curl -s http://127.0.0.1:{args.port}/metrics | grep llm_cost_")
    if ledger:
        print(f"  ledger    {_cli_command()} report --ledger {ledger} --by session --since 1h")
    print("  Grafana   docker compose -f docker-compose.observability.yml up   (dashboards on http://localhost:3000)")
    print("  your app  OTEL_LLM_COST_BUDGET_USD=5 opentelemetry-instrument python app.py")


def _serve_until_interrupted(port: int) -> None:
    print(f"\nServing /metrics on http://127.0.0.1:{port}/metrics until Ctrl-C (--exit to stop right away).",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopped", flush=True)


BEDROCK_CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def _optional_clients(fake: Any) -> dict[str, Any]:
    """Gemini, Mistral, Cohere and Bedrock clients, when their SDKs are installed (the dev extra has them)."""
    clients: dict[str, Any] = {}
    try:
        from google import genai
        from google.genai import types

        clients["gemini"] = genai.Client(api_key="offline-demo", http_options=types.HttpOptions(base_url=fake.gemini_url))
    except ImportError:
        pass
    try:
        from mistralai.client import Mistral

        clients["mistral"] = Mistral(api_key="offline-demo", server_url=fake.url)
    except ImportError:
        pass
    try:
        import cohere

        clients["cohere"] = cohere.ClientV2(api_key="offline-demo", base_url=fake.url)
    except ImportError:
        pass
    try:
        import boto3

        clients["bedrock"] = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                                          aws_access_key_id="offline-demo", aws_secret_access_key="offline-demo")
    except ImportError:
        pass
    return clients


_OPTIONAL_SDKS = {"gemini": "Gemini (google-genai)", "mistral": "Mistral (mistralai)", "cohere": "Cohere (cohere)",
                  "bedrock": "Bedrock (boto3)"}
"""The demo's steps that need an SDK beyond openai and anthropic, by client name."""
_MODEL_WIDTH = len(BEDROCK_CLAUDE)  # the longest model id the demo calls


def _agent_loop(name: str, n: int, oai: Any, quiet: bool, show: Any) -> None:
    """An agent whose history grows every step, until its budget stops it: with `BudgetExceededError`
    (`raise`), or with the refusal message as the model's answer (`respond`)."""
    import otel_llm_cost as llm_cost

    history = list(MESSAGES)
    for step in range(1, 50):
        try:
            reply = oai.chat.completions.create(model="gpt-4.1", max_tokens=4_000, messages=history)
        except llm_cost.BudgetExceededError as stop:
            _progress(quiet, f"  [{n:>3}] {name} agent stopped at step {step}: {stop}")
            return
        if reply.id.startswith("llm_cost-refused-"):
            _progress(quiet, f"  [{n:>3}] {name} agent answered at step {step}: {reply.choices[0].message.content}")
            return
        show(f"{name} agent step {step}")
        history += [{"role": "assistant", "content": "Calling the search tool again."},
                    {"role": "user", "content": "Tool output: " + "log line with details; " * 1500}]


_RUN = datetime.now(UTC).strftime("%m%d-%H%M%S")
"""This run's mark in its session ids: a second run of the demo writes new sessions into the same ledger,
so `report --by session` never adds two runs' agents into one that seems to pass its budget."""


def _round(n: int, oai: Any, claude: Any, others: dict[str, Any], quiet: bool) -> None:
    import otel_llm_cost as llm_cost

    def show(label: str) -> None:
        last = llm_cost.last_usage()
        if last is not None:
            cost = f"${column_usd(last.cost)}" if last.cost is not None else "price unknown"
            _progress(quiet, f"  [{n:>3}] {label:34} {last.model:{_MODEL_WIDTH}} {last.input_tokens:>7,} in "
                             f"{last.output_tokens:>6,} out  {cost}")

    with llm_cost.session(f"support-{_RUN}-{n}", user_id="alice", feature="support"):
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=800, messages=MESSAGES,
                               system="You are a support agent with a long cached knowledge base.")
        show("cache-heavy Claude turn")
        with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=800, messages=MESSAGES) as stream:
            stream.get_final_message()
        show("cache-heavy Claude turn (stream)")
    with llm_cost.session(f"writer-{_RUN}-{n}", user_id="bob", feature="drafting"):
        text = "".join(chunk.choices[0].delta.content or "" for chunk in oai.chat.completions.create(
            model="gpt-4o", max_tokens=400, messages=MESSAGES, stream=True))
        show(f"streamed answer ({len(text)} chars)")
        oai.chat.completions.create(model="o4-mini", max_tokens=3_000, messages=MESSAGES)
        show("reasoning model")
        oai.embeddings.create(model="text-embedding-3-small", input=["incident 1", "incident 2"])
        show("embeddings")
    with llm_cost.session(f"internal-{_RUN}-{n}", user_id="carol", feature="search"):
        oai.chat.completions.create(model="acme-internal-llm", max_tokens=200, messages=MESSAGES)
        show("in-house model (no known price)")
        oai.responses.create(model="gpt-4o-mini", input="Classify this ticket.", max_output_tokens=200)
        show("responses API")
    with llm_cost.session(f"research-{_RUN}-{n}", user_id="erin", feature="research"):
        if "gemini" in others:
            chunks = list(others["gemini"].models.generate_content_stream(
                model="gemini-2.5-flash", contents="Compare the incident reports with last quarter's."))
            show(f"Gemini with thinking ({len(chunks)} chunks)")
        if "bedrock" in others:
            others["bedrock"].converse(modelId=BEDROCK_CLAUDE, messages=[
                {"role": "user", "content": [{"text": "Draft the postmortem summary."}]}],
                inferenceConfig={"maxTokens": 600})
            show("Claude on Bedrock (Converse)")
        if "mistral" in others:
            others["mistral"].chat.complete(model="mistral-small-2603", max_tokens=500, messages=MESSAGES)
            show("Mistral Small 4")
        if "cohere" in others:
            others["cohere"].chat(model="command-a-03-2025", max_tokens=500, messages=MESSAGES)
            show("Cohere Command A")
    with llm_cost.track("nightly-digest", progress=False) as job:  # a batch job: counted together
        job.map(lambda ticket: oai.chat.completions.create(
            model="gpt-4o-mini", max_tokens=200, messages=[{"role": "user", "content": f"Triage ticket {ticket}."}]),
            range(4), workers=4)
    _progress(quiet, f"  [{n:>3}] {'batch job nightly-digest (4 calls)':34} {'gpt-4o-mini':{_MODEL_WIDTH}} "
                     f"{'':>7}    {'':>6}      ${column_usd(job.cost)}")
    with llm_cost.session(f"runaway-agent-{_RUN}-{n}", user_id="dave", feature="agent"):
        _agent_loop("runaway", n, oai, quiet, show)
    # the same loop under a budget that answers instead of raising: the agent reads the refusal and stops
    with llm_cost.session(f"polite-agent-{_RUN}-{n}", user_id="dave", feature="agent", polite=f"run-{n}"):
        _agent_loop("polite", n, oai, quiet, show)
    # a user budget that falls back to a cheaper model rather than refusing
    with llm_cost.session(f"digest-{_RUN}-{n}", user_id="frank", feature="digest", thrifty=f"run-{n}"):
        for _ in range(3):
            oai.chat.completions.create(model="gpt-4o", max_tokens=400, messages=[
                {"role": "user", "content": "Summarise today's incidents: " + "incident notes " * 300}])
            show("digest (falls back when over budget)")

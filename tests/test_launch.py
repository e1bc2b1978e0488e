"""`opentelemetry-instrument python app.py`: an unmodified app gets cost spans, Prometheus metrics and
budgets from environment variables alone. Real subprocesses, real exporters, scraped over HTTP."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The official google-genai instrumentation (a dev dependency, for the coexistence tests) declares
# google-genai < 3 and says so on stderr at every launch; these tests read our own stderr lines.
_QUIET = {"PYTHONWARNINGS": "ignore", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "google-genai"}


def _launch(script: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [INSTRUMENT, sys.executable, str(ROOT / "examples" / script)],
        env={**os.environ, **_QUIET, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT)


def _scrape_when(process: subprocess.Popen, port: int, marker: str, timeout: float = 60) -> dict:
    """Wait for `marker` on the app's stdout, then scrape /metrics: {name: [(labels, value)]}."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        if marker in line or time.monotonic() > deadline:
            break
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _metrics_of(script: str, marker: str, **env: str) -> dict:
    """Launch `script` with Prometheus metrics on, wait for `marker` on its stdout, scrape, stop it."""
    port = _free_port()
    app = _launch(script, {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
                           "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **env})
    try:
        return _scrape_when(app, port, marker)
    finally:
        app.kill()
        app.wait()


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for lbl, v in samples.get(name, []) if all(lbl.get(k) == val for k, val in labels.items()))


def test_quickstart_under_opentelemetry_instrument_serves_cost_and_budget_metrics():
    samples = _metrics_of("quickstart.py", "quickstart done", OTEL_LLM_COST_BUDGET_USD="5",
                          QUICKSTART_HOLD_SECONDS="30")
    # 3 x gpt-4o-mini: 1,200 in (1,024 cached) + 150 out at $0.15 / $0.075 / $0.60 per 1M = $0.0001932
    per_call = Decimal(176) * Decimal("0.15") / 10**6 + Decimal(1024) * Decimal("0.075") / 10**6 + \
        Decimal(150) * Decimal("0.6") / 10**6
    spent = float(per_call * 3)
    assert _total(samples, "llm_cost_calls_total", llm_cost_outcome="ok") == 3  # once each, peers loaded too
    assert _total(samples, "gen_ai_client_operation_cost_USD_sum") == pytest.approx(spent, rel=1e-9)
    assert _total(samples, "gen_ai_client_operation_cost_USD_count") == 3
    assert _total(samples, "llm_cost_budget_limit_USD", llm_cost_budget_name="global") == 5
    assert _total(samples, "llm_cost_budget_spent_USD", llm_cost_budget_name="global") == pytest.approx(spent)
    assert _total(samples, "llm_cost_budget_remaining_USD") == pytest.approx(5 - spent)
    assert _total(samples, "llm_cost_budget_utilization") == pytest.approx(spent / 5)
    assert _total(samples, "llm_cost_tokens_total", llm_cost_token_type="cache_read") == 3 * 1024


def test_anthropic_native_spans_and_budget_in_one_launch_each_call_counted_once():
    samples = _metrics_of("agent_with_budget.py", "budget:", AGENT_HOLD_SECONDS="30")
    assert _total(samples, "llm_cost_calls_total", llm_cost_outcome="ok") == 3
    assert _total(samples, "llm_cost_calls_total", llm_cost_outcome="blocked") == 1
    assert _total(samples, "llm_cost_budget_blocked_total", llm_cost_budget_name="agent-session") == 1


_GEMINI_AND_BEDROCK_APP = """
import time

import boto3
from google import genai
from google.genai import types

from otel_llm_cost.testing.fake import FakeProvider

with FakeProvider() as fake:
    fake.set_model("gemini-2.5-flash", input_tokens=10_000, output_tokens=1_000)
    fake.set_model("amazon.nova-pro-v1:0", input_tokens=10_000, output_tokens=1_000)
    gemini = genai.Client(api_key="offline", http_options=types.HttpOptions(base_url=fake.gemini_url))
    gemini.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_url,
                           aws_access_key_id="offline", aws_secret_access_key="offline")
    bedrock.converse(modelId="amazon.nova-pro-v1:0", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    print("calls done", flush=True)
    time.sleep(30)
"""


def test_an_unmodified_gemini_and_bedrock_app_gets_cost_metrics(tmp_path):
    """The google-genai and Bedrock instrumentors load from their entry points alone; the official
    botocore instrumentation loads too, and each call is still counted once."""
    script = tmp_path / "app.py"
    script.write_text(_GEMINI_AND_BEDROCK_APP)
    samples = _metrics_of(str(script), "calls done")
    # Gemini 2.5 Flash $0.30 / $2.50 per 1M (ai.google.dev/gemini-api/docs/pricing, read 2025-11);
    # Nova Pro $0.80 / $3.20 per 1M (aws.amazon.com/bedrock/pricing, read 2025-10); 10,000 in, 1,000 out each.
    cost = "gen_ai_client_operation_cost_USD_sum"
    assert _total(samples, cost, gen_ai_provider_name="gcp.gemini") == pytest.approx(0.0055, rel=1e-9)
    assert _total(samples, cost, gen_ai_provider_name="aws.bedrock") == pytest.approx(0.0112, rel=1e-9)
    assert _total(samples, "llm_cost_calls_total", llm_cost_outcome="ok") == 2


class _OtlpReceiver(http.server.BaseHTTPRequestHandler):
    received: dict[str, list[bytes]] = {}

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_otlp_launch_sends_cost_spans_and_metrics_to_a_collector():
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _OtlpReceiver.received = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = _launch("quickstart.py", {
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500",
        })
        out, err = app.communicate(timeout=120)
        assert app.returncode == 0, err
    finally:
        server.shutdown()
    spans = []
    for body in _OtlpReceiver.received.get("/v1/traces", []):
        request = ExportTraceServiceRequest.FromString(body)
        spans += [s for rs in request.resource_spans for ss in rs.scope_spans if ss.scope.name == "otel_llm_cost"
                  for s in ss.spans]
    assert len(spans) == 3
    attrs = {kv.key: kv.value for kv in spans[0].attributes}
    assert attrs["gen_ai.usage.cost.amount"].double_value == pytest.approx(0.0001932)
    assert attrs["gen_ai.usage.cost.currency"].string_value == "USD"
    names = set()
    for body in _OtlpReceiver.received.get("/v1/metrics", []):
        request = ExportMetricsServiceRequest.FromString(body)
        names |= {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.operation.cost", "llm_cost.calls", "llm_cost.tokens",
            "gen_ai.client.token.usage"} <= names


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OTEL_LLM_COST_BUDGET_USD", "abc", "is not a number of US dollars"),
        ("OTEL_LLM_COST_BUDGET_WINDOW", "fortnight", "is not a budget window"),
        ("OTEL_LLM_COST_BUDGETS_FILE", "/nonexistent/budgets.toml", "cannot be read"),
        ("OTEL_LLM_COST_ON_EXCEED", "shrug", "is not a policy"),
        ("OTEL_LLM_COST_BUDGET_STORE", "mysql://db", "is not a budget store"),
        ("OTEL_LLM_COST_ENABLED", "perhaps", "is not a boolean"),
        ("OTEL_LLM_COST_PRICING_FILE", "/nonexistent/prices.toml", "cannot be read"),
    ],
)
def test_bad_environment_stops_start_up_with_one_line(variable, value, fragment):
    app = _launch("quickstart.py", {variable: value, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                    "OTEL_LOGS_EXPORTER": "none"})
    out, err = app.communicate(timeout=60)
    assert app.returncode == 2
    assert "quickstart done" not in out  # the app never started
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"otel-llm-cost: {variable}={value!r} " + lines[0].split(f"{value!r} ", 1)[1]]
    assert fragment in lines[0]


def test_malformed_budgets_file_names_the_file_budget_and_value(tmp_path):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[budgets.team]\nlimit_usd = -3\n')
    app = _launch("quickstart.py", {"OTEL_LLM_COST_BUDGETS_FILE": str(budgets), "OTEL_TRACES_EXPORTER": "none",
                                    "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
    _, err = app.communicate(timeout=60)
    assert app.returncode == 2
    assert err.strip().count("\n") == 0
    assert str(budgets) in err and "'team'" in err and "limit_usd=-3" in err


def test_disabled_launch_changes_nothing():
    app = _launch("quickstart.py", {"OTEL_LLM_COST_ENABLED": "false", "OTEL_TRACES_EXPORTER": "console",
                                    "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
    out, err = app.communicate(timeout=60)
    assert app.returncode == 0 and "quickstart done" in out
    assert "gen_ai.usage.cost.amount" not in out


def _bad_stores(tmp: Path) -> dict[str, str]:
    plain_file = tmp / "plain.txt"
    plain_file.write_text("not a directory")
    not_a_db = tmp / "notes.db"
    not_a_db.write_text("this is not a SQLite database, just text " * 100)
    return {
        "under /proc": "sqlite:////proc/x.db",
        "under a plain file": f"sqlite:///{plain_file}/x.db",
        "a directory": f"sqlite:///{tmp}",
        "not a database": f"sqlite:///{not_a_db}",
        "a missing directory": f"sqlite:///{tmp}/missing/x.db",
    }


@pytest.mark.parametrize("case", ["under /proc", "under a plain file", "a directory", "not a database",
                                  "a missing directory"])
def test_a_budget_store_that_cannot_be_opened_stops_start_up_with_one_line(tmp_path, case):
    """Before: a 30-line traceback, "Failed to auto initialize OpenTelemetry", exit 0, and the app ran
    with no tracing and no budget."""
    value = _bad_stores(tmp_path)[case]
    app = _launch("quickstart.py", {"OTEL_LLM_COST_BUDGET_STORE": value, "OTEL_LLM_COST_BUDGET_USD": "1",
                                    "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                    "OTEL_LOGS_EXPORTER": "none"})
    out, err = app.communicate(timeout=60)
    assert app.returncode == 2 and "quickstart done" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"otel-llm-cost: OTEL_LLM_COST_BUDGET_STORE={value!r} cannot be used: ")
    assert not (tmp_path / "missing").exists()  # a missing directory is an error, never created


def test_an_unexpected_start_up_error_stops_start_up_in_one_line_naming_the_escape_hatch(tmp_path):
    """A broken install (here: a dependency that fails to import) must never leave the app running
    silently without tracing or budgets."""
    broken = tmp_path / "genai_prices"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('simulated broken install')\n")
    app = subprocess.Popen(
        [INSTRUMENT, sys.executable, "-c", "print('app ran')"],
        env={**os.environ, **_QUIET, "PYTHONPATH": str(tmp_path), "OTEL_LLM_COST_BUDGET_USD": "1",
             "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    out, err = app.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert app.returncode == 2 and "app ran" not in out, (out, err)
    assert len(lines) == 1, err
    assert "start-up failed (RuntimeError: simulated broken install)" in lines[0]
    assert "OTEL_LLM_COST_ENABLED=false" in lines[0]

"""The usage ledger: one contract suite for SQLite and a real PostgreSQL server, then the ledger fed by
real SDK calls through the processor, two processes on one file, a kill -9, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from conftest import DownLedgerBackend

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup
from otel_llm_cost.config import ConfigError
from otel_llm_cost.ledger import Ledger, Row, open_backend, uuid7
from otel_llm_cost.ledger.report import ReportError, export_rows, parse_when, usage_report

ROOT = Path(__file__).resolve().parent.parent
D = Decimal
T0 = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)


def _row(**overrides) -> Row:
    values = dict(id=uuid7(), ts=T0, trace_id="0" * 32, span_id="0" * 16, service_name="billing", provider="openai",
                  operation="chat", request_model="gpt-4o", response_model="gpt-4o-2024-08-06", response_id="chatcmpl-1",
                  session_id="s1", conversation_id="s1", user_id="alice", tags={"task": "email_poll", "role": "delegate"},
                  input_tokens=1_000, output_tokens=100, cache_read_tokens=200, cache_write_tokens=0,
                  reasoning_tokens=0, cost_usd=D("0.0035"), cost_source="local", pricing_source="bundled",
                  estimated=False, outcome="ok", service_tier="default", batch=False, job=None, duration_s=0.25)
    values.update(overrides)
    return Row(**values)


@pytest.fixture
def backend(ledger_url):
    backend = open_backend(ledger_url)
    yield backend
    backend.close()


def test_rows_come_back_exactly_as_written(backend):
    rows = [_row(cost_usd=D("0.000000123456789")), _row(cost_usd=None, pricing_source="unknown", tags={})]
    backend.write(rows)
    back = list(backend.rows(None, None))
    assert [(r.id, r.cost_usd, r.tags, r.ts) for r in back] == [(r.id, r.cost_usd, r.tags, r.ts) for r in rows]
    assert back[0] == rows[0]


def test_ids_are_uuid7_in_time_order():
    ids = [uuid7() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    time.sleep(0.002)
    assert uuid7() > ids[-1]


def test_report_groups_by_each_key_highest_cost_first_with_exact_sums(backend):
    backend.write([
        _row(cost_usd=D("0.0035")),
        _row(cost_usd=D("0.0035"), session_id="s2", user_id="bob", tags={"task": "triage"}, job="nightly"),
        _row(request_model="claude-sonnet-4-5", response_model="claude-sonnet-4-5", provider="anthropic",
             cost_usd=D("0.045"), ts=T0 + timedelta(days=1), service_name="search"),
        _row(request_model="acme-internal", response_model=None, cost_usd=None, pricing_source="unknown",
             input_tokens=800, output_tokens=100, cache_read_tokens=0),
        _row(outcome="blocked", input_tokens=0, output_tokens=0, cache_read_tokens=0, cost_usd=D(0)),
        _row(outcome="error", cost_usd=D(0), input_tokens=0, output_tokens=0, cache_read_tokens=0),
    ])
    by_model = usage_report(by="model", ledger=backend)
    assert [(k, s.calls, s.cost, s.unpriced_calls) for k, s in by_model.groups] == [
        ("claude-sonnet-4-5", 1, D("0.045"), 0), ("gpt-4o-2024-08-06", 3, D("0.007"), 0), ("acme-internal", 1, 0, 1)]
    total = by_model.total
    assert (total.calls, total.cost, total.unpriced_calls, total.errors) == (5, D("0.052"), 1, 1)
    assert total.input_tokens == 3_800 and total.cache_read_tokens == 600  # 3 x 1,000 + 800
    assert sum(by_model.blocked.values()) == 1  # refused before sending: in the book, not in the sums
    as_json = json.loads(by_model.format("json"))  # and said in every format, not only the table
    assert as_json["total"]["refused_calls"] == 1
    assert {g["key"]: g["refused_calls"] for g in as_json["groups"]}["gpt-4o-2024-08-06"] == 1
    csv_lines = by_model.format("csv").splitlines()
    assert csv_lines[0].endswith(",refused_calls") and csv_lines[2].endswith(",1")
    from otel_llm_cost.ledger.html import render_html

    page = render_html(by_model, usage_report(by="day", ledger=backend))
    assert "1 refused by a budget before being sent" in page and "<th>refused</th>" in page
    assert [k for k, _ in usage_report(by="user", ledger=backend).groups] == ["alice", "bob"]
    assert [k for k, _ in usage_report(by="service", ledger=backend).groups] == ["search", "billing"]
    assert [k for k, _ in usage_report(by="day", ledger=backend).groups] == ["2026-11-19", "2026-11-18"]
    assert [(k, s.cost) for k, s in usage_report(by="tag:task", ledger=backend).groups] == [
        ("email_poll", D("0.0485")), ("triage", D("0.0035"))]
    assert [(k, s.calls) for k, s in usage_report(by="job", ledger=backend).groups] == [(None, 4), ("nightly", 1)]


def test_report_time_ranges(backend):
    backend.write([_row(ts=T0 - timedelta(days=10)), _row(ts=T0), _row(ts=T0 + timedelta(hours=1))])
    assert usage_report(since="2026-11-18", ledger=backend).total.calls == 2
    assert usage_report(since="2026-11-18T09:30", until="2026-11-18T10:00Z", ledger=backend).total.calls == 1
    assert usage_report(until=T0, ledger=backend).total.calls == 1


def test_report_json_is_the_contracts_shape(backend):
    backend.write([_row(), _row(cost_usd=None, pricing_source="unknown")])
    data = json.loads(usage_report(by="user", ledger=backend).format("json"))
    assert data == {"by": "user", "since": None, "until": None,
                    "groups": [{"key": "alice", "calls": 2, "input_tokens": 2_000, "output_tokens": 200,
                                "cache_read_tokens": 400, "cache_write_tokens": 0, "reasoning_tokens": 0,
                                "cost_usd": "0.0035", "unpriced_calls": 1, "refused_calls": 0}],
                    "total": {"calls": 2, "input_tokens": 2_000, "output_tokens": 200, "cache_read_tokens": 400,
                              "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": "0.0035",
                              "unpriced_calls": 1, "refused_calls": 0}}


def test_the_schema_is_versioned_and_migrating_again_changes_nothing(backend):
    backend.write([_row()])
    again = open_backend(backend.url)
    try:
        assert len(list(again.rows(None, None))) == 1
    finally:
        again.close()
    if backend.url.startswith("sqlite"):
        versions = sqlite3.connect(backend.url[len("sqlite:///"):]).execute("SELECT version FROM schema_version")
        assert [v for (v,) in versions] == [1, 2, 3]


@pytest.mark.parametrize(("when", "expected"), [
    ("2026-11-18", datetime(2026, 11, 18, tzinfo=UTC)),
    ("2026-11-18T09:00:00+01:00", datetime(2026, 11, 18, 8, tzinfo=UTC)),
    ("30m", T0 - timedelta(minutes=30)),
    ("24h", T0 - timedelta(hours=24)),
    ("7d", T0 - timedelta(days=7)),
])
def test_when_is_iso_or_relative(when, expected):
    assert parse_when(when, now=T0) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"since": "last tuesday"}, "^since='last tuesday' is not an ISO date"),
    ({"by": "colour"}, "^by='colour' is not a grouping"),
])
def test_bad_report_arguments_name_themselves(tmp_path, kwargs, message):
    with pytest.raises(ReportError, match=message):
        usage_report(ledger=f"sqlite:///{tmp_path / 'u.db'}", **kwargs)


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/missing/usage.db", "sqlite:///{tmp}", "mysql://db/x",
                                 "postgresql://nobody@127.0.0.1:1/none"])
def test_a_ledger_that_cannot_be_opened_stops_configure_in_one_line(tmp_path, settings, url):
    value = url.format(tmp=tmp_path)
    _setup.reset_for_tests()
    try:
        with pytest.raises(ConfigError) as raised:
            llm_cost.configure(ledger=value, instrument=False)
    finally:
        _setup.reset_for_tests()
    message = str(raised.value)  # named as given: the variable, or configure(ledger=...)
    assert message.startswith(("OTEL_LLM_COST_LEDGER=", "configure(ledger=...)=")) and "\n" not in message
    assert repr(value) in message


# --- fed by real calls ---


@pytest.fixture
def ledger_runtime(tmp_path, settings, tracer_provider, fake):
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    _setup.reset_for_tests()
    llm_cost.configure(tracer_provider=tracer_provider, ledger=url)
    yield url
    from otel_llm_cost.instrumentation import uninstrument

    uninstrument()
    _setup.reset_for_tests()


def test_every_counted_call_becomes_one_row(ledger_runtime, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    fake.set_model("acme-internal", input_tokens=800, output_tokens=100)
    client = openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)
    with llm_cost.session("chat-42", user_id="alice", task="email_poll", role="delegate"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        client.chat.completions.create(model="acme-internal", messages=[{"role": "user", "content": "Hi"}])
        llm_cost.set_budget(0, name="stop", scope="session")
        with pytest.raises(llm_cost.BudgetExceededError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    report = usage_report(by="tag:role")  # the process's own ledger, flushed first
    assert [(k, s.calls, s.cost, s.unpriced_calls) for k, s in report.groups] == [("delegate", 2, D("0.0035"), 1)]
    rows = list(export_rows())
    assert [(r.request_model, r.outcome, r.cost_usd, r.session_id, r.user_id) for r in rows] == [
        ("gpt-4o", "ok", D("0.0035"), "chat-42", "alice"), ("acme-internal", "ok", None, "chat-42", "alice"),
        ("gpt-4o", "blocked", D(0), "chat-42", "alice")]
    assert rows[0].tags == {"task": "email_poll", "role": "delegate"} and rows[0].pricing_source == "bundled"
    assert rows[0].duration_s > 0 and len(rows[0].trace_id) == 32


def test_a_full_queue_drops_and_counts_and_a_broken_ledger_never_breaks_the_app(tmp_path, caplog):
    failing = DownLedgerBackend(f"sqlite:///{tmp_path / 'broken.db'}", sqlite3.OperationalError("disk I/O error"))
    ledger = Ledger(failing, max_queue=3, interval=0.05, exit_timeout=0.3)
    record = type("R", (), {"usage": llm_cost.Usage(1, 1), "provider": "openai", "model": "m", "cost": D(1),
                            "session_id": None, "user_id": None, "tags": {}, "outcome": "ok"})()
    span = type("S", (), {"attributes": {}, "context": None, "resource": None, "start_time": 1, "end_time": 2,
                          "get_span_context": lambda self: None})()
    import logging

    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(10):
            ledger.record(record, span, True)
        time.sleep(0.3)
        ledger.shutdown()
    # every row is either counted as dropped (the queue was full) or kept in a spool file, none vanishes
    spooled = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("broken.db-spool-*.jsonl"))
    assert ledger.dropped >= 5 and ledger.written == 0 and ledger.dropped + ledger.spooled == 10 == \
        ledger.dropped + spooled
    messages = [r.getMessage() for r in caplog.records]
    assert sum("usage ledger unreachable" in m for m in messages) == 1
    assert sum("queue is full" in m for m in messages) == 1


_WRITER = r"""
import sys
from opentelemetry.sdk.trace import TracerProvider
import openai, otel_llm_cost as llm_cost
llm_cost.configure(tracer_provider=TracerProvider(), ledger=sys.argv[1])
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
with llm_cost.session(sys.argv[3]):
    for _ in range(int(sys.argv[4])):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
print("done", flush=True)
if len(sys.argv) > 5:
    import time
    time.sleep(60)
"""


def _writer(url: str, fake, name: str, calls: int, hang: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, url, fake.openai_url, name, str(calls),
                             *(["hang"] if hang else [])], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_two_processes_write_one_sqlite_ledger(tmp_path, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writers = [_writer(url, fake, f"p{i}", 40) for i in range(2)]
    for writer in writers:
        assert writer.communicate(timeout=120)[0].strip() == "done" and writer.returncode == 0
    report = usage_report(by="session", ledger=url)
    assert [(k, s.calls, s.cost) for k, s in report.groups] == [("p0", 40, D("0.14")), ("p1", 40, D("0.14"))]


def test_kill_9_loses_at_most_the_unflushed_batch_and_never_corrupts_the_file(tmp_path, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    path = tmp_path / "crash.db"
    writer = _writer(f"sqlite:///{path}", fake, "crash", 30, hang=True)
    assert writer.stdout.readline().strip() == "done"
    time.sleep(1.5)  # one flush interval: the batch is written
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert usage_report(ledger=f"sqlite:///{path}").total.calls == 30


def test_cli_report_and_export(tmp_path):
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    backend = open_backend(url)
    backend.write([_row(ts=datetime.now(UTC) - timedelta(hours=1)), _row(ts=datetime.now(UTC) - timedelta(days=30),
                                                                        user_id="old")])
    backend.close()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", *args], capture_output=True, text=True,
                              timeout=60)

    table = cli("report", "--ledger", url, "--since", "7d", "--by", "user")
    assert table.returncode == 0 and "alice" in table.stdout and "old" not in table.stdout
    data = json.loads(cli("report", "--ledger", url, "--format", "json").stdout)
    assert data["total"]["calls"] == 2 and data["total"]["cost_usd"] == "0.007"
    assert cli("report", "--ledger", url, "--format", "csv").stdout.splitlines()[0].startswith("key,calls,")
    lines = cli("export", "--ledger", url, "--since", "7d").stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["cost_usd"] == "0.0035"
    csv_lines = cli("export", "--ledger", url, "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,ts,trace_id") and len(csv_lines) == 3
    missing = cli("report")
    assert missing.returncode == 2 and missing.stderr.startswith("otel-llm-cost: no ledger:")
    bad = cli("report", "--ledger", url, "--since", "whenever")
    assert bad.returncode == 2 and "--since='whenever' is not an ISO date" in bad.stderr

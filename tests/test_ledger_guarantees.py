"""The ledger's promises at the edges (ARCHITECTURE.md section 9, "Ledger guarantees"): forked workers
(a real gunicorn --preload, a real multiprocessing fork pool), a PostgreSQL server stopped while the app
exits, a proxy that loses COMMIT's reply, values no database can hold, and a report right after a burst.
Each checks the rows present, the money, the requests the fake provider saw, and the log lines."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import psycopg
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

import otel_llm_cost as llm_cost
from otel_llm_cost.ledger import Ledger, open_backend, storable
from otel_llm_cost.ledger.report import usage_report
from conftest import DownLedgerBackend, PostgresServer, empty_ledger

D = Decimal
ROOT = Path(__file__).resolve().parent.parent
GPT_4O_CALL = D("0.0035")  # 1,000 input and 100 output tokens at $2.50 / $10 per million
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}


def _count(url: str) -> tuple[int, int, Decimal]:
    """Rows, distinct ids and the exact total cost in the ledger at `url`, read by a fresh connection."""
    backend = open_backend(url, create=False)
    try:
        rows = list(backend.rows(None, None))
    finally:
        backend.close()
    return len(rows), len({r.id for r in rows}), sum((r.cost_usd or D(0) for r in rows), D(0))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port}")


# --- forked workers ---

_WSGI_APP = """
import os
from opentelemetry.sdk.trace import TracerProvider
import openai, otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), ledger=os.environ["LEDGER"])
client = openai.OpenAI(base_url=os.environ["FAKE"], api_key="k", max_retries=0)


def call(session):
    with llm_cost.session(session):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


for _ in range(5):  # rows still queued in the master when it forks: the master's to write, never a worker's
    call("master")


def app(environ, start_response):
    call(f"worker-{os.getpid()}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_gunicorn_preload_workers_lose_no_row(tmp_path, fake):
    """3 workers forked from a configured master, each recycled after 10 requests (it ends with
    sys.exit), then the whole server stopped with SIGTERM: every call of every worker is a row."""
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    assert gunicorn, "gunicorn is a test dependency (pyproject's dev extra)"
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    (tmp_path / "ledger_app.py").write_text(_WSGI_APP)
    url, port = f"sqlite:///{tmp_path / 'usage.db'}", _free_port()
    server = subprocess.Popen(
        [gunicorn, "--preload", "--workers", "3", "--max-requests", "10", "--bind", f"127.0.0.1:{port}",
         "--chdir", str(tmp_path), "--graceful-timeout", "20", "ledger_app:app"],
        env={**ENV, "LEDGER": url, "FAKE": fake.openai_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, server)
        for _ in range(90):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                assert response.read() == b"ok"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert fake.request_count("chat/completions") == 95
    report = usage_report(by="session", ledger=url)
    workers = {key: s.calls for key, s in report.groups if key.startswith("worker-")}
    assert report.total.calls == 95 and report.total.cost == 95 * GPT_4O_CALL
    assert sum(workers.values()) == 90 and len(workers) >= 9  # every recycled worker's rows, none doubled
    assert dict(report.groups)["master"].calls == 5
    assert _count(url)[:2] == (95, 95)


_FORK_POOL = """
import multiprocessing, os, sys
from opentelemetry.sdk.trace import TracerProvider
import openai, otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), ledger=sys.argv[1])
clients = {}


def work(item):
    # one HTTP client per process: a connection pool is never shared across a fork
    client = clients.setdefault(os.getpid(), openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0))
    with llm_cost.session(f"task-{item}", user_id=f"pid-{os.getpid()}"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    return os.getpid()


if __name__ == "__main__":
    for item in range(3):
        work(f"parent-{item}")
    context = multiprocessing.get_context("fork")
    pool = context.Pool(3, maxtasksperchild=5)  # each worker ends through multiprocessing after 5 tasks
    pids = pool.map_async(work, range(60), chunksize=1).get(timeout=120)
    pool.close()
    pool.join()
    single = context.Process(target=work, args=("process",))
    single.start()
    single.join()
    print(len(set(pids)), single.exitcode, flush=True)
"""


def test_multiprocessing_fork_pool_workers_lose_no_row(tmp_path, fake):
    """Pool workers end with os._exit after multiprocessing's own finalizers (atexit never runs there)."""
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    done = subprocess.run([sys.executable, "-c", _FORK_POOL, url, fake.openai_url], env=ENV, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    workers, exitcode = map(int, done.stdout.split())
    assert workers >= 12 and exitcode == 0  # 60 tasks, 5 a worker: at least 12 workers came and went
    assert fake.request_count("chat/completions") == 64
    report = usage_report(by="user", ledger=url)
    assert report.total.calls == 64 and report.total.cost == 64 * GPT_4O_CALL
    assert len(report.groups) == workers + 2  # every worker, the lone Process, and the parent
    assert _count(url)[:2] == (64, 64)


# --- a database that is down at exit ---

_UNTIL_DOWN = """
import sys
from opentelemetry.sdk.trace import TracerProvider
import openai, otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), ledger=sys.argv[1], ledger_exit_timeout=1,
                   ledger_spool=sys.argv[3])
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
before, after = int(sys.argv[4]), int(sys.argv[5])
for _ in range(before):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
llm_cost.usage_report()  # written before the database goes: a report flushes first
print("ready", flush=True)
sys.stdin.readline()  # the test stops the database here
for _ in range(after):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
"""


def _run_until_down(server: PostgresServer, spool: Path, fake, before: int, after: int) -> str:
    """A process that makes `before` calls, waits while the test stops PostgreSQL, makes `after` more
    and exits with the database still down; its log."""
    child = subprocess.Popen([sys.executable, "-c", _UNTIL_DOWN, server.url, fake.openai_url, str(spool), str(before),
                              str(after)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    server.stop()
    _, stderr = child.communicate("go\n", timeout=120)
    assert child.returncode == 0, stderr
    return stderr


def test_rows_of_a_database_down_at_exit_are_spooled_and_written_by_the_next_process(tmp_path, fake):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    spool = tmp_path / "spool"
    server = PostgresServer()
    try:
        log = _run_until_down(server, spool, fake, before=50, after=150)
        files = list(spool.glob("*.jsonl"))
        assert len(files) == 1 and len(files[0].read_text().splitlines()) == 150
        lines = [line for line in log.splitlines() if "otel-llm-cost" in line]
        assert sum("usage ledger unreachable" in line for line in lines) == 1
        assert any("still unreachable at exit after 1." in line and f"150 rows spooled to {files[0]}" in line
                   and "otel-llm-cost ledger replay" in line for line in lines), lines
        assert not any("kept in memory" in line and "exit" in line for line in lines)

        server.start()
        assert _count(server.url) == (50, 50, 50 * GPT_4O_CALL)
        replay = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "ledger", "replay", "--ledger", server.url,
                                 "--spool", str(spool)], env=ENV, capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout.startswith("150 spooled rows written to ")
        assert _count(server.url) == (200, 200, 200 * GPT_4O_CALL) and not list(spool.iterdir())

        # a second outage; this time the next process that opens the ledger writes the spool, unasked
        log = _run_until_down(server, spool, fake, before=0, after=20)
        assert "20 rows spooled to" in log
        server.start()
        nothing = subprocess.run([sys.executable, "-c", _UNTIL_DOWN, server.url, fake.openai_url, str(spool), "0", "0"],
                                 input="\n", env=ENV, capture_output=True, text=True, timeout=60)
        assert nothing.returncode == 0 and "20 spooled rows written from 1 file(s)" in nothing.stderr
        assert _count(server.url) == (220, 220, 220 * GPT_4O_CALL) and not list(spool.iterdir())
        assert fake.request_count("chat/completions") == 220
    finally:
        server.remove()


def test_spooled_rows_are_counted_in_the_spooled_metric(tmp_path):
    """`llm_cost.ledger.spooled` counts what went to a file; `llm_cost.ledger.dropped` stays 0."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_llm_cost.metrics import CostMetrics

    down = DownLedgerBackend(f"postgresql://otel@127.0.0.1:{_free_port()}/nowhere",
                             psycopg.OperationalError("connection refused"))
    ledger = Ledger(down, interval=0.05, exit_timeout=0.2, spool_dir=tmp_path)
    reader = InMemoryMetricReader()
    CostMetrics(MeterProvider(metric_readers=[reader]), ledger=ledger)
    for index in range(7):
        ledger.record(*_call(session_id=f"s{index}"))
    ledger.shutdown()
    values = {m.name: m.data.data_points[0].value for rm in reader.get_metrics_data().resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics if m.name.startswith("llm_cost.ledger.")}
    assert values == {"llm_cost.ledger.spooled": 7, "llm_cost.ledger.dropped": 0}
    assert sorted(r.session_id for r in _spooled(tmp_path)) == [f"s{i}" for i in range(7)]


def _spooled(directory: Path) -> list:
    from otel_llm_cost.ledger.spool import _read

    return [row for path in directory.glob("*.jsonl") for row in _read(path)]


# --- a spool file that cannot be read ---

_OPEN_AND_EXIT = """
import sys
from opentelemetry.sdk.trace import TracerProvider
import otel_llm_cost as llm_cost

llm_cost.configure(tracer_provider=TracerProvider(), ledger=sys.argv[1], ledger_exit_timeout=5)
"""


def _good_spool_file(directory: Path, name: str, count: int, mtime: float) -> list[str]:
    """A spool file as a process writes it, of `count` rows; their ids."""
    from otel_llm_cost.ledger.spool import Spool

    rows = [_row_of(index, name) for index in range(count)]
    path = Spool(f"sqlite:///{directory / 'usage.db'}").write(rows)
    os.utime(path, (mtime, mtime))
    return [row.id for row in rows]


def _row_of(index: int, name: str):
    from datetime import UTC, datetime

    from otel_llm_cost.ledger import Row, uuid7

    return Row(uuid7(), datetime.now(UTC), None, None, "svc", "openai", "chat", "gpt-4o", None, None, name, None,
               None, {}, 1_000, 100, 0, 0, 0, GPT_4O_CALL, "local", "bundled", False, "ok", None, False, None, 0.1)


BAD_SPOOL_FILES = {
    "truncated": lambda good: good[: good.rindex(b"\n", 0, len(good) - 1) + 1] + good[good.rindex(b"\n", 0, len(good) - 1) + 1:-20],
    "binary garbage": lambda good: os.urandom(300) + b"\xff\xfe",
    "empty": lambda good: b"",
    "wrong JSON type": lambda good: b'[1, 2, 3]\n"a row?"\n',
}


def test_an_unreadable_spool_file_is_set_aside_and_blocks_no_other(tmp_path):
    """A spool directory with one file of each unreadable kind, the oldest, among good ones: the next
    process that opens the ledger writes every good row once, sets each bad file aside with one line
    naming it, says nothing about the database being down, and exits as fast as without them;
    `ledger replay` names what it could not read and exits non-zero only then."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    open_backend(url).close()
    now = time.time()
    good_ids = _good_spool_file(tmp_path, "first", 30, now - 50)  # written first, so read first, whole...
    ids_in_bad = _good_spool_file(tmp_path, "cut", 5, now - 500)
    bad_paths = []
    for index, (kind, make) in enumerate(BAD_SPOOL_FILES.items()):
        source = sorted(tmp_path.glob("usage.db-spool-*.jsonl"), key=lambda p: p.stat().st_mtime)[0] \
            if kind == "truncated" else None
        data = make(source.read_bytes()) if source is not None else make(b"")
        if source is not None:
            source.unlink()
        path = tmp_path / f"usage.db-spool-{kind.replace(' ', '')}-{index}.jsonl"
        path.write_bytes(data)
        os.utime(path, (now - 1000 + index, now - 1000 + index))  # ...the bad ones are the oldest
        bad_paths.append(path)
    good_ids += _good_spool_file(tmp_path, "second", 20, now - 10)

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _OPEN_AND_EXIT, url], env=ENV, capture_output=True, text=True,
                          timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "otel-llm-cost" in line]
    assert not any("unreachable" in line for line in lines), lines
    aside = sorted(tmp_path.glob("*.unreadable"))
    assert sorted(p.name for p in aside) == sorted(p.name + ".unreadable" for p in bad_paths)
    assert sum("could not be read" in line for line in lines) == 4
    assert any(f"the 4 rows read from it were written, and it is set aside as {bad_paths[0]}.unreadable" in line
               for line in lines), lines  # the cut file: its whole lines were good rows
    written = {row.id for row in open_backend(url).rows(None, None)}
    assert set(good_ids) <= written and len(written) == len(good_ids) + 4
    assert set(ids_in_bad[:4]) <= written and not list(tmp_path.glob("*.jsonl"))
    assert took < 15  # nothing waited on a database that was never down

    os.replace(aside[0], tmp_path / "usage.db-spool-again.jsonl")  # put one back: replay names it
    replay = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "ledger", "replay", "--ledger", url],
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert replay.returncode == 2 and "could not be read whole" in replay.stderr
    assert "usage.db-spool-again.jsonl.unreadable" in replay.stderr
    assert replay.stderr.splitlines()[-1].startswith("otel-llm-cost: 1 spool file(s) could not be read whole")
    assert {row.id for row in open_backend(url).rows(None, None)} == written  # no row twice


# --- a lost COMMIT reply ---

class CommitReplyDropper:
    """A TCP proxy in front of PostgreSQL that, the first time a client sends COMMIT, lets it through,
    waits for the server's reply (the transaction is then committed) and cuts the client off instead
    of relaying it: the client cannot know its batch was written."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = False
        self.cut = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"commit_sent": False}
            threading.Thread(target=self._pump_up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client, state), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        while data := _recv(client):
            if self.armed and not self.cut and b"COMMIT\x00" in data:
                state["commit_sent"] = True
            upstream.sendall(data)
        _close(client, upstream)

    def _pump_down(self, upstream: socket.socket, client: socket.socket, state: dict) -> None:
        while data := _recv(upstream):
            if state["commit_sent"]:  # the server answered COMMIT: it is done; the client never hears it
                self.cut += 1
                break
            client.sendall(data)
        _close(client, upstream)

    def close(self) -> None:
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def test_a_lost_commit_reply_is_written_once_and_never_loops(postgres_url, caplog):
    port = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    proxy = CommitReplyDropper(port)
    empty_ledger(postgres_url)
    ledger = Ledger(open_backend(postgres_url.replace(f":{port}/", f":{proxy.port}/")), batch_size=60, interval=0.05)
    proxy.armed = True  # the ledger is open (its migration committed): the next COMMIT's reply is lost
    try:
        with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
            for index in range(180):
                ledger.record(*_call(session_id=f"s{index}"))
            assert ledger.flush(timeout=30) or ledger.flush(timeout=30)  # the first may end at the outage
            time.sleep(0.3)  # a writer that looped would log again by now
    finally:
        ledger.shutdown(timeout=5)
        proxy.close()
    assert proxy.cut == 1
    assert _count(postgres_url) == (180, 180, 180 * GPT_4O_CALL)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("usage ledger unreachable" in m for m in messages) == 1
    assert sum("usage ledger reachable again" in m for m in messages) == 1
    assert not any("duplicate key" in m for m in messages) and ledger.dropped == 0


def _call(cost: Decimal | None = GPT_4O_CALL, input_tokens: int = 1_000, **fields):
    """What the processor hands the ledger for one counted call: the record and its span."""
    record = type("Record", (), {"usage": llm_cost.Usage(input_tokens, 100), "provider": "openai",
                                 "model": "gpt-4o", "cost": cost, "session_id": fields.get("session_id"),
                                 "user_id": fields.get("user_id"), "tags": fields.get("tags", {}), "outcome": "ok"})()
    span = type("Span", (), {"attributes": {"gen_ai.request.model": "gpt-4o"}, "context": None, "resource": None,
                             "start_time": 1, "end_time": time.time_ns(), "get_span_context": lambda self: None})()
    return record, span, True


# --- values no database can hold ---

def test_a_nul_or_a_lone_surrogate_is_stored_escaped_and_blocks_nothing(ledger_url, caplog):
    undecodable = os.fsdecode(b"caf\xe9")  # 'caf\udce9'
    ledger = Ledger(open_backend(ledger_url), interval=0.05)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        ledger.record(*_call(session_id="chat\x0042", user_id=undecodable, tags={"task\x00": "x\udcff\x00"}))
        ledger.record(*_call(session_id="chat\x0043", user_id=os.fsdecode(b"caf\xe8")))
        for index in range(5):
            ledger.record(*_call(session_id=f"ok-{index}", user_id="alice"))
        assert ledger.flush()
    ledger.shutdown()
    rows = {r.session_id: r for r in open_backend(ledger_url, create=False).rows(None, None)}
    assert len(rows) == 7 and ledger.dropped == 0 and not caplog.records
    assert rows["chat\\x0042"].user_id == "caf\\udce9" and rows["chat\\x0042"].tags == {"task\\x00": "x\\udcff\\x00"}
    assert rows["chat\\x0043"].user_id == "caf\\udce8"  # two undecodable ids are still told apart
    assert [rows[f"ok-{index}"].user_id for index in range(5)] == ["alice"] * 5
    assert usage_report(by="user", ledger=ledger_url).total.calls == 7


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=st.text(max_size=30), user_id=st.text(max_size=30),
       tags=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
def test_any_text_an_app_sends_is_stored(ledger_url, session_id, user_id, tags):
    """Whatever text arrives (NUL, surrogates, controls, any plane), the row is stored, as `storable` says."""
    backend = open_backend(ledger_url)
    ledger = Ledger(backend, interval=0.01)
    ledger.record(*_call(session_id=session_id, user_id=user_id, tags=tags))
    assert ledger.flush()
    ledger.shutdown()
    assert ledger.written == 1 and ledger.dropped == 0
    (row,) = [r for r in open_backend(ledger_url, create=False).rows(None, None)
              if r.id and r.session_id == storable(session_id) and r.user_id == storable(user_id)]
    assert row.tags == {storable(k): storable(v) for k, v in tags.items()}
    _remove(ledger_url, row.id)


def _remove(url: str, row_id: str) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            connection.execute("DELETE FROM llm_calls WHERE id = ?", (row_id,))
    else:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("DELETE FROM llm_calls WHERE id = %s", (row_id,))


def test_a_row_the_database_refuses_is_isolated_dropped_counted_and_logged(ledger_url, caplog):
    ledger = Ledger(open_backend(ledger_url), batch_size=10, interval=0.05)
    calls = [_call(session_id=f"s{index}") for index in range(10)]
    calls[6] = _call(session_id="huge", input_tokens=2**70)  # past a 64-bit integer column on both backends
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for call in calls:
            ledger.record(*call)
        assert ledger.flush()
        for index in range(10, 15):
            ledger.record(*_call(session_id=f"s{index}"))
        assert ledger.flush()
    ledger.shutdown()
    stored = {r.session_id for r in open_backend(ledger_url, create=False).rows(None, None)}
    assert stored == {f"s{index}" for index in range(15) if index != 6} and ledger.dropped == 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert "refused row" in message and "dropped and counted in llm_cost.ledger.dropped (1 so far)" in message
    assert sum(1 for part in message.split() if part.count("-") == 4) == 1  # the row's id, a UUID


# --- a report sees every call that returned before it ---

def test_a_report_right_after_a_burst_sees_every_row(tmp_path):
    """The writer is slow (each batch takes 0.2 s) and holds a taken batch while the report asks:
    `flush()` waits for it too, not only for the queue."""
    backend = open_backend(f"sqlite:///{tmp_path / 'usage.db'}")
    write = backend.write

    def slow_write(rows, fresh=False):
        time.sleep(0.2)
        write(rows, fresh=fresh)

    backend.write = slow_write
    ledger = Ledger(backend, interval=0.05)
    try:
        for burst in range(1, 4):
            for index in range(1_200):
                ledger.record(*_call(session_id=f"b{burst}-{index}"))
            report = usage_report(ledger=ledger)
            assert report.total.calls == 1_200 * burst and report.total.cost == 1_200 * burst * GPT_4O_CALL
    finally:
        ledger.shutdown()


def test_the_tracer_providers_force_flush_writes_the_ledger(tmp_path, settings, tracer_provider, fake):
    """Serverless: the handler ends with `force_flush()`, and every call is a row by then."""
    from otel_llm_cost import _setup

    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    llm_cost.configure(tracer_provider=tracer_provider, ledger=url)
    try:
        import openai

        client = openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)

        def calls() -> None:
            for _ in range(25):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert tracer_provider.force_flush()
        assert _count(url) == (100, 100, 100 * GPT_4O_CALL)
    finally:
        from otel_llm_cost.instrumentation import uninstrument

        uninstrument()
        _setup.reset_for_tests()

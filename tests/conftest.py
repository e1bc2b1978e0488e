from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from decimal import Decimal

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost import _log, _state
from otel_llm_cost.config import Settings
from otel_llm_cost.instrumentation import instrument, uninstrument
from otel_llm_cost.instrumentation._call import SCOPE_NAME
from otel_llm_cost.testing.fake import FakeProvider

# LiteLLM fetches its price map from GitHub when imported, retrying with back-off; offline, use its copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# The fake provider serves models the real API has deprecated; the SDK warns about them.
warnings.filterwarnings("ignore", message=r"The model .* is deprecated", category=DeprecationWarning)


@pytest.fixture(autouse=True)
def _fresh_log_once_state():
    """Each test sees its own first warning."""
    _log.reset_for_tests()
    yield


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


class RedisServer:
    """A real redis-server on a free loopback port. `start()` again after `stop()` reuses the port and,
    with `persist=True` (an append-only file), the data: a restart as in a real deployment."""

    def __init__(self, directory, persist: bool = False) -> None:
        import socket

        self.directory = directory
        self.persist = persist
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server")
        assert binary, "redis-server missing: scripts/setup.sh installs Debian's redis-server package"
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         *durability, "--dir", str(self.directory)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the shared-budget tests."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(autouse=True)
def _reset_fake(request):
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
    yield


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


@pytest.fixture
def settings() -> Iterator[Settings]:
    """Default settings for the test; restore whatever was active."""
    previous = _state._settings
    value = Settings.from_env({})
    _state.set_settings(value)
    yield value
    _state._settings = previous


@pytest.fixture
def instrumented(tracer_provider, settings) -> Iterator[TracerProvider]:
    instrument(tracer_provider=tracer_provider)
    yield tracer_provider
    uninstrument()


@pytest.fixture
def openai_client(fake) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_url, api_key="sk-test-not-a-real-key", max_retries=0)


@pytest.fixture
def async_openai_client(fake) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-test-not-a-real-key", max_retries=0)


@pytest.fixture
def anthropic_client(fake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_url, api_key="sk-ant-test-key", max_retries=0,
                               open_telemetry=False)


@pytest.fixture
def async_anthropic_client(fake) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.anthropic_url, api_key="sk-ant-test-key", max_retries=0,
                                    open_telemetry=False)


def cost_of(span: ReadableSpan) -> Decimal:
    """The span's cost exactly as recorded (the float's shortest repr, as a Decimal)."""
    return Decimal(repr(span.attributes["gen_ai.usage.cost.amount"]))


@pytest.fixture
def guard(instrumented):
    """A budget guard over an in-memory store, hooked into the instrumented calls."""
    from otel_llm_cost.budget.guard import BudgetGuard
    from otel_llm_cost.budget.stores import MemoryStore

    guard = BudgetGuard(MemoryStore())
    _state.set_budget_hook(guard)
    yield guard
    _state.set_budget_hook(None)


@pytest.fixture
def frozen_budget(instrumented) -> Iterator[None]:
    """A global budget of $0, so every priced call is refused before it is sent."""
    from otel_llm_cost.budget import Budget
    from otel_llm_cost.budget.guard import BudgetGuard
    from otel_llm_cost.budget.stores import MemoryStore

    guard = BudgetGuard(MemoryStore())
    guard.set(Budget.create(0, name="frozen"))
    _state.set_budget_hook(guard)
    yield
    _state.set_budget_hook(None)


def our_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == SCOPE_NAME]


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = our_spans(exporter)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


class PostgresServer:
    """A real PostgreSQL server (Debian's `postgresql` package) on a free loopback port, run as a
    non-root user as PostgreSQL requires, with an empty database `ledger_test`. `stop()` and `start()`
    again keep the data and the port: a database that goes down and comes back."""

    def __init__(self) -> None:
        import glob
        import shutil
        import socket
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
        if not found[-1] or not os.path.exists(found[-1]):
            pytest.skip("PostgreSQL is not installed on this machine (scripts/setup.sh test installs Debian's "
                        "postgresql package when run as root)")
        self.bindir = os.path.dirname(found[-1])
        self.as_user: list[str] = []
        self.directory = tempfile.mkdtemp(prefix="otel-llm-cost-pg-")
        if os.getuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.data = os.path.join(self.directory, "data")
        self._run("initdb", "-D", self.data, "-U", "otel", "--auth=trust", "-E", "UTF8")
        self.start()
        import psycopg

        with psycopg.connect(f"postgresql://otel@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE ledger_test")

    @property
    def url(self) -> str:
        return f"postgresql://otel@127.0.0.1:{self.port}/ledger_test"

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        subprocess.run([*self.as_user, os.path.join(self.bindir, tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.directory, "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        import shutil

        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The session's PostgreSQL server, for the ledger contract suite."""
    server = PostgresServer()
    try:
        yield server.url
    finally:
        server.remove()


class DownLedgerBackend:
    """A ledger backend whose database is down: every write fails as a lost connection does."""

    def __init__(self, url: str, error: Exception) -> None:
        self.url = url
        self.error = error

    def write(self, rows) -> None:
        raise self.error

    def is_row_error(self, error: BaseException) -> bool:
        return False

    def after_fork(self) -> None:
        pass

    def close(self) -> None:
        pass

from __future__ import annotations

import contextlib

import os
import warnings
from pathlib import Path
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


_REPOSITORY = Path(__file__).resolve().parent.parent
_NOT_THE_USERS = {".git", ".hypothesis", ".pytest_cache", "__pycache__", "node_modules"}


def _repository_files() -> dict[str, tuple[int, int]]:
    """Every file of the checkout a user works in (not the virtualenvs, caches or git's own), with its
    modification time and size."""
    found = {}
    for folder, folders, files in os.walk(_REPOSITORY):
        folders[:] = [f for f in folders if f not in _NOT_THE_USERS and not f.startswith(".venv")
                      and not f.endswith(".egg-info")]
        for name in files:
            if name.endswith((".py", ".md")):  # what a developer edits while the suite runs; the suite never does
                continue
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                stat = os.stat(path)
                found[os.path.relpath(path, _REPOSITORY)] = (stat.st_mtime_ns, stat.st_size)
    return found


@pytest.fixture(scope="session", autouse=True)
def _the_suite_changes_no_file_of_the_users_checkout():
    """The suite's CLI and demo runs write only below temporary directories: a user's own
    `otel-llm-cost-demo.db`, ledgers and configuration stay as they were."""
    before = _repository_files()
    yield
    after = _repository_files()
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"the suite changed files of the checkout: {changed}"


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


def _redis_processes(directory, *argument_lists: list[str]) -> list:
    """Real redis-server processes (plain, cluster nodes or sentinels), each answering PING."""
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    assert binary, "redis-server missing: scripts/setup.sh installs Debian's redis-server package"
    processes = []
    for arguments in argument_lists:
        port = arguments[arguments.index("--port") + 1]
        log = open(os.path.join(directory, f"redis-{port}.log"), "ab")  # why a server did not start
        processes.append(subprocess.Popen([binary, *arguments], cwd=directory, stdout=log, stderr=log))
        log.close()
    for arguments, process in zip(argument_lists, processes):
        port = int(arguments[arguments.index("--port") + 1])
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() >= deadline:
                log = os.path.join(directory, f"redis-{port}.log")
                tail = open(log, errors="replace").read()[-600:] if os.path.exists(log) else ""
                raise AssertionError(f"redis on {port} did not start: {tail}")
            time.sleep(0.05)
    return processes


def _stop_all(processes: list) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=20)


def _free_ports(count: int, *, cluster: bool = False) -> list[int]:
    """Free loopback ports. A cluster node also needs its bus port, 10,000 above, so those stay under 55536."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 45_000)
        if port not in ports and free(port) and (not cluster or free(port + 10_000)):
            ports.append(port)
    return ports


def cluster_node_arguments(port: int, persist: bool = False) -> list[str]:
    """One cluster node's redis-server arguments; `persist`: every write on disk before it is answered,
    so a node killed and started again has all it acknowledged."""
    durability = (["--appendonly", "yes", "--appendfsync", "always", "--appenddirname", f"appendonly-{port}"]
                  if persist else ["--appendonly", "no"])  # each node its own AOF: they share the directory
    return ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file",
            f"nodes-{port}.conf", "--cluster-node-timeout", "2000", "--save", "", *durability]


def wait_for_cluster(port: int, seconds: float = 30) -> None:
    import subprocess
    import time

    deadline = time.monotonic() + seconds
    while b"cluster_state:ok" not in subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True).stdout:
        assert time.monotonic() < deadline, "the cluster did not become ok"
        time.sleep(0.2)


@contextlib.contextmanager
def redis_cluster(directory, persist: bool = False) -> Iterator[tuple[str, list[int], list]]:
    """A real Redis Cluster of 3 masters on loopback ports (`redis-cli --cluster create`): its URL, the
    ports and the processes, in the same order."""
    import shutil
    import subprocess

    ports = _free_ports(3, cluster=True)
    processes = _redis_processes(directory, *(cluster_node_arguments(port, persist) for port in ports))
    try:
        subprocess.run([shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in ports), "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        wait_for_cluster(ports[0])
        yield f"redis+cluster://127.0.0.1:{ports[0]}", ports, processes
    finally:
        _stop_all([p for p in processes if p.poll() is None])


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as (url, _, _):
        yield url


@contextlib.contextmanager
def sentinel_setup(directory) -> Iterator[tuple[str, list]]:
    """A real master, its replica and a sentinel that monitors them (`redis-server --sentinel`): the
    client URL, and the processes (master first)."""
    master, replica, sentinel = _free_ports(3)
    (directory / "sentinel.conf").write_text(
        f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor llm-cost 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds llm-cost 1000\nsentinel failover-timeout llm-cost 5000\n")
    # a backlog large enough that a replica that falls behind under load resyncs partially: a full resync
    # empties it first, and a failover in that moment would promote an empty replica
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-backlog-size", "64mb",
              "--repl-diskless-sync-delay", "0"]  # Redis 7 waits 5 s for more replicas before the first sync
    processes = _redis_processes(directory, ["--port", str(master), *common],
                                 ["--port", str(replica), *common, "--replicaof", "127.0.0.1", str(master)],
                                 ["sentinel.conf", "--sentinel", "--port", str(sentinel)])
    try:
        _wait_for_sentinel(sentinel, "llm-cost")
        _wait_for_replica(replica)
        yield f"redis+sentinel://127.0.0.1:{sentinel}/llm-cost", processes
    finally:
        _stop_all([p for p in processes if p.poll() is None])


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory) -> Iterator[str]:
    with sentinel_setup(tmp_path_factory.mktemp("redis-sentinel")) as (url, _):
        yield url


LANGSMITH_OTEL_EXPORT = {"LANGSMITH_OTEL_ENABLED": "true", "LANGSMITH_TRACING": "true", "LANGSMITH_OTEL_ONLY": "true",
                         "LANGSMITH_API_KEY": "lsv2-offline"}
"""LangSmith's OpenTelemetry export, switched on offline: what an app sets in its environment."""

IN_MEMORY_TELEMETRY = r"""
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
meter_provider = MeterProvider(metric_readers=[reader])


def metric_sum(name):
    return sum(p.value for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics if m.name == name for p in m.data.data_points)
"""
"""The opening of an app the framework tests run in a process of its own (LangSmith reads its settings
at import): spans go to `exporter` under `provider`, metrics to `reader` under `meter_provider`."""


def _wait_for_replica(port: int) -> None:
    """Until the replica has its master's data (its first sync done): before then a failover would
    promote an empty replica."""
    import time

    import redis

    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 30
    while client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced with its master"
        time.sleep(0.1)


def _wait_for_sentinel(port: int, service: str) -> None:
    """Until the sentinel names the master, sees it up and knows its replica (a new sentinel takes a
    moment): before then, clients are told "no master found"."""
    import time

    import redis

    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            state = client.sentinel_master(service)
            if state.get("flags") == "master" and int(state.get("num-slaves", 0)) >= 1:
                return
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, "the sentinel never saw its master and replica"
        time.sleep(0.2)


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

    def write(self, rows, fresh: bool = False) -> None:
        raise self.error

    def is_row_error(self, error: BaseException) -> bool:
        return False

    def after_fork(self) -> None:
        pass

    def close(self) -> None:
        pass


def empty_ledger(url: str) -> None:
    """Delete every row of the shared PostgreSQL ledger (each SQLite test has a file of its own)."""
    from otel_llm_cost.ledger import open_backend

    backend = open_backend(url)
    connection = backend._connection()
    connection.execute("DELETE FROM llm_calls")
    connection.execute("DELETE FROM llm_rollup")  # the writer's rollup of those rows
    connection.commit()
    backend.close()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path) -> Iterator[str]:
    """An empty ledger on each backend: a SQLite file of the test's own, or the session's PostgreSQL
    database emptied before and after the test, so no test sees another's rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    empty_ledger(url)
    yield url
    empty_ledger(url)

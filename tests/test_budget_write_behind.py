"""Settles leave the call's critical path on the shared stores: one round trip (the reservation) is
in the call, and the settles are applied behind it, many per round trip. What must not move: this
process reads its own spend, nothing is lost at exit (also from a multiprocessing worker, which ends
with `os._exit`), and a settle never counts twice."""

from __future__ import annotations

import multiprocessing
import threading
import time
from decimal import Decimal as D

import pytest

from otel_llm_cost.budget import Budget
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.outage import OutageBuffer
from otel_llm_cost.budget.stores import Claim, SqliteStore, StoreUnavailable, store_from_url


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'budgets.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")


class _Counting:
    """A store that counts the round trips its writes take."""

    def __init__(self, store):
        self.store, self.round_trips = store, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def apply_writes(self, writes):
        self.round_trips += 1
        return self.store.apply_writes(writes)

    def settle(self, *args, **kwargs):
        self.round_trips += 1
        return self.store.settle(*args, **kwargs)


def test_settles_are_applied_behind_the_calls_in_few_round_trips_and_read_back_exactly(store_url):
    raw = _Counting(store_from_url(store_url))
    raw.clear()
    buffer = OutageBuffer(raw, write_behind=0.05)
    claim = Claim("wb", "", "total", D("0.01"), D(100))
    for _ in range(200):
        buffer.settle(buffer.reserve([claim]), D("0.004"))
    # right after the calls, the store may still hold some reservations: settles are behind the calls
    # this process reads its own calls at once: what is queued is netted out of what the store says
    assert buffer.usage("wb", "", "total") == (D("0.8"), D(0))
    assert buffer.flush()
    assert raw.round_trips < 40 and raw.store.usage("wb", "", "total") == (D("0.8"), D(0))


def test_strictness_is_unchanged_with_settles_behind(store_url):
    """16 threads race 64 reservations of $0.10 for $2 through one guard: exactly 20 pass, however late
    their settles land."""
    guard = BudgetGuard(store_from_url(store_url))
    guard.store.clear()
    claim = [Claim("race", "", "total", D("0.1"), D("2"))]
    won, barrier, lock = [], threading.Barrier(16), threading.Lock()

    def racer() -> None:
        barrier.wait()
        for _ in range(4):
            held = guard.store.reserve(claim)
            if isinstance(held, list):
                guard.store.settle(held, D("0.1"))
                with lock:
                    won.append(1)

    threads = [threading.Thread(target=racer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 20 and guard.store.usage("race", "", "total") == (D(2), D(0))


def _worker(url: str) -> None:
    guard = BudgetGuard(store_from_url(url))
    guard.set(Budget.create(100, name="shared"))
    claim = [Claim("shared", "", "total", D("0.01"), D(100))]
    for _ in range(50):
        guard.store.settle(guard.store.reserve(claim), D("0.01"))
    # a multiprocessing worker ends with os._exit: no atexit; the settler's queue must still be applied


def test_a_multiprocessing_worker_applies_its_queued_settles_before_it_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(url,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert SqliteStore(tmp_path / "budgets.db").usage("shared", "", "total") == (D("1.5"), D(0))


def test_a_sentinel_failover_under_load_loses_and_doubles_nothing(tmp_path):
    """8 threads reserve and settle $0.01 calls through one guard while the master is killed. Calls go on
    while Sentinel fails over (allowed, their settles queued), and the queue is applied on the promoted
    replica, each write at most once by its op id: afterwards the store's spend is exactly the sum of
    every settle. (A batch also counts as applied only once a replica has it, WAIT, against replication
    lag; on loopback the replica never lags enough for this test to show it.)"""
    import signal
    import time

    import redis
    from conftest import sentinel_setup

    with sentinel_setup(tmp_path) as (url, processes):
        guard = BudgetGuard(store_from_url(url))
        guard.store.clear()
        claim = [Claim("ha", "", "total", D("0.01"), D(10**6))]
        settled, stop, lock = [0], threading.Event(), threading.Lock()

        def caller() -> None:
            while not stop.is_set():
                held = guard.store.reserve(claim)  # during the outage: allowed, holding nothing
                guard.store.settle(held, D("0.01"))
                with lock:
                    settled[0] += 1
                time.sleep(0.002)

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        processes[0].send_signal(signal.SIGKILL)  # the master dies mid-load
        sentinel = redis.Redis(port=int(url.split(":")[2].split("/")[0]), decode_responses=True)
        deadline = time.monotonic() + 30
        while sentinel.sentinel_master("llm-cost")["port"] == str(processes[0].args[2]):
            assert time.monotonic() < deadline, "sentinel never failed over"
            time.sleep(0.2)
        time.sleep(1.5)  # calls go on against the new master
        stop.set()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 30
        while not guard.flush():  # the queue from the outage, applied on the new master
            assert time.monotonic() < deadline, "the queued settles were never applied"
            time.sleep(0.5)
        spent, reserved = store_from_url(url).usage("ha", "", "total")
        assert settled[0] > 200 and spent == D("0.01") * settled[0]
        assert reserved == 0


def test_a_batch_cut_halfway_is_never_counted_as_free_twice(redis_url):
    """A Redis pipeline can be applied before its connection drops and its reply is lost: the batch stays
    queued (sent again later, it counts once by op id), and meanwhile this process no longer counts the
    holds it releases as free. Counted, they would be spent twice: here 9 and then 5 on a $10 budget
    whose $6 hold was already released."""
    store = store_from_url(redis_url)
    store.clear()
    real, cut = store.apply_writes, {"left": 1}

    def applied_then_cut(writes):
        real(writes)  # the server applied the batch...
        if cut["left"]:
            cut["left"] -= 1
            raise StoreUnavailable("connection lost while reading the reply")  # ...and the reply was lost

    store.apply_writes = applied_then_cut
    buffer = OutageBuffer(store, write_behind=0.001)
    buffer.RETRY_AFTER_FAILURE = 3.0  # the window in which the batch is queued but already applied
    buffer.settle(buffer.reserve([Claim("cut", "", "total", D("6"), D("10"))]), D("1"))
    deadline = time.monotonic() + 5
    while cut["left"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert buffer.pending == 1 and store.usage("cut", "", "total") == (D(1), D(0))
    for amount in ("9", "5"):
        buffer.reserve([Claim("cut", "", "total", D(amount), D("10"))])
    spent, held = store.usage("cut", "", "total")
    assert spent + held <= D(10)  # counted twice, the 6 released would have let both in: $15 on $10
    assert buffer.flush() and store.usage("cut", "", "total")[0] == D(1)  # the batch again: applied once

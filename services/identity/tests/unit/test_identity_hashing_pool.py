"""The bcrypt pool: bounded concurrency, a bounded queue, lower CPU priority (issue 3 benchmarks)."""

from __future__ import annotations

import os
import time

import eventlet
import pytest
from eventlet import patcher
from upgestao_identity.adapters.hashing_pool import BoundedOffload, HasherBusy

_os_threading = patcher.original("threading")


def _busy(seconds: float) -> int:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return os.getpriority(os.PRIO_PROCESS, _os_threading.get_native_id())


def test_no_more_than_concurrency_run_at_once_and_the_rest_wait():
    lock, running, peak = _os_threading.Lock(), [0], [0]

    def tracked() -> None:  # runs in the OS threads
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        _busy(0.05)
        with lock:
            running[0] -= 1

    pool = BoundedOffload(concurrency=2, max_waiting=10, nice=0)
    threads = [eventlet.spawn(pool, tracked) for _ in range(6)]
    for t in threads:
        t.wait()
    assert peak[0] == 2  # six callers, never more than two at once, none refused
    assert pool.waiting == 0 and pool.refused == 0


def test_a_full_queue_refuses_at_once():
    pool = BoundedOffload(concurrency=1, max_waiting=1, nice=0)
    first = eventlet.spawn(pool, _busy, 0.2)
    eventlet.sleep(0.02)
    second = eventlet.spawn(pool, _busy, 0.01)  # waits for the slot
    eventlet.sleep(0.02)
    started = time.perf_counter()
    with pytest.raises(HasherBusy):
        pool(_busy, 0.01)
    assert time.perf_counter() - started < 0.05 and pool.refused == 1
    first.wait()
    second.wait()


def test_hashing_threads_run_at_a_lower_priority():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    pool = BoundedOffload(concurrency=1, max_waiting=1, nice=7)
    assert pool(_busy, 0.001) >= max(base, 7)  # (a pool thread may have been lowered further already)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the hub's own thread is untouched

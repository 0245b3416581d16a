"""Where bcrypt runs: a bounded, low-priority share of the machine.

Each bcrypt check at cost 12 is ~300 ms of pure CPU. Twenty people logging
in at once on two cores would otherwise take every core (and every nameko
worker) and stall unrelated requests such as ``GET /v1/me``. So hashing

* runs in eventlet's OS thread pool (bcrypt releases the GIL), at most
  ``concurrency`` at a time (a green semaphore: waiting costs no thread);
* runs at a lower CPU priority: each pool thread raises its own nice value
  once (Linux ``setpriority`` on a thread id is per thread), so the scheduler
  prefers request handling whenever both want a core, while an idle machine
  still gives bcrypt all of it. In the identity process the pool does nothing
  but hashing;
* refuses at once (:class:`HasherBusy`) a caller arriving when
  ``max_waiting`` are already queued, instead of letting logins pile up past
  the callers' deadlines; identity answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from eventlet import patcher, tpool
from eventlet.semaphore import Semaphore

from .metrics import BCRYPT_QUEUE_DEPTH, BCRYPT_REFUSED

_os_threading = patcher.original("threading")
_thread_state = _os_threading.local()


class HasherBusy(Exception):
    """Too many password checks queued already: try again shortly."""


def _lower_priority(nice: int) -> None:
    if getattr(_thread_state, "nice", None) == nice or nice <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, _os_threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, _os_threading.get_native_id(), max(current, nice))
    except (OSError, AttributeError):  # not Linux, or not allowed: run at the normal priority
        pass
    _thread_state.nice = nice


def _run_niced(nice: int, func: Callable[..., Any], *args: Any) -> Any:
    _lower_priority(nice)
    return func(*args)


class BoundedOffload:
    """An ``offload`` for :class:`~upgestao_identity.adapters.hashing.PasswordHasher`."""

    def __init__(self, concurrency: int, max_waiting: int, nice: int = 10) -> None:
        if concurrency < 1 or max_waiting < 0:
            raise ValueError("concurrency >= 1 and max_waiting >= 0")
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self.nice = nice
        self._slots = Semaphore(concurrency)
        self.waiting = 0
        self.refused = 0

    def __call__(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._slots.locked() and self.waiting >= self.max_waiting:
            self.refused += 1
            BCRYPT_REFUSED.inc()
            raise HasherBusy(f"{self.waiting} password checks already waiting")
        self.waiting += 1
        BCRYPT_QUEUE_DEPTH.inc()
        try:
            self._slots.acquire()
        finally:
            self.waiting -= 1
            BCRYPT_QUEUE_DEPTH.dec()
        try:
            return tpool.execute(_run_niced, self.nice, func, *args)
        finally:
            self._slots.release()

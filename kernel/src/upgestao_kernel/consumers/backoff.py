"""The back-off loop: run a step forever, survive a broker or database outage.

Every long-running consumer or publisher of the platform (the outbox relay,
privacy's audit ingest, checkpoint timer and stream feeder, the gateway's
access stream, identity's start-up tasks) is the same loop: do one step; if it
fails, log the error's type, wait, try again; never drop work, never spin.
The wait doubles from ``initial_s`` up to ``cap_s`` and is back at
``initial_s`` after a step that succeeded, so a broker or database back from a
restart is used again within ``cap_s`` (2 s: services came back 6-12 s after
a 5-second broker restart with kombu's longer back-off).

Stopping is a :class:`Stop` (``threading.Event`` in the relay process's
threads, :class:`GreenStop` in a nameko service's green threads): the loop
looks at it before every step and waits on it, so it ends within one step
and one wait slice of being told.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ..logging import get_logger

log = get_logger(__name__)

INITIAL_S = 0.5
CAP_S = 2.0


class Stop(Protocol):
    """What the loop needs of a stop signal; ``threading.Event`` is one."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class GreenStop:
    """A stop signal for loops in eventlet green threads.

    ``wait`` sleeps in slices of at most ``slice_s`` and so yields to the hub
    instead of blocking it, and sees ``set()`` within one slice.
    """

    def __init__(self, slice_s: float = 0.1) -> None:
        self.slice_s = slice_s
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def stop_loops(self, threads: Iterable[Any]) -> None:
        """Set the signal, then wait for each of ``threads`` (green threads running loops that watch it); a loop
        that died already logged why, so its error is not raised again here."""
        self.set()
        for thread in threads:
            try:
                thread.wait()
            except Exception:  # noqa: BLE001 - logged by the loop itself
                pass

    def wait(self, timeout: float | None = None) -> bool:
        import eventlet  # here, not at the top: the relay process runs real threads and never loads eventlet

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            remaining = self.slice_s if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            eventlet.sleep(min(self.slice_s, remaining))
        return self._set


class Backoff:
    """Capped exponential delays: ``initial_s``, twice that, ... at most ``cap_s``."""

    def __init__(self, initial_s: float = INITIAL_S, cap_s: float = CAP_S) -> None:
        if not 0 < initial_s <= cap_s:
            raise ValueError(f"back-off needs 0 < initial_s <= cap_s, got {initial_s} and {cap_s}")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self._next = initial_s

    def next_delay(self) -> float:
        """The delay to wait now; the following one is twice as long (capped)."""
        delay = self._next
        self._next = min(delay * 2, self.cap_s)
        return delay

    def reset(self) -> None:
        """Back to ``initial_s``: the last attempt got through."""
        self._next = self.initial_s


def error_type(exc: BaseException) -> Mapping[str, Any]:
    """The default log fields of a failure: its type only (an error's text may quote personal data)."""
    return {"error": type(exc).__name__}


Step = Callable[[], "float | None"]


class BackoffLoop:
    """Runs ``step`` until ``stop`` is set.

    ``step`` returns how long to pause before the next step (``None`` or 0:
    none, for a step that blocks on its own, such as a consumer draining
    events until it is stopped), or raises: then ``event`` is logged at
    ``level`` with ``describe(exc)`` and the back-off delay, and the loop
    waits that delay. A step that made progress before failing (a consumer
    that attached, then lost its connection) calls :meth:`made_progress`, so
    the next wait is short again.
    """

    def __init__(self, step: Step, *, stop: Stop, event: str, backoff: Backoff | None = None,
                 describe: Callable[[BaseException], Mapping[str, Any]] = error_type,
                 level: str = "warning") -> None:
        self.step = step
        self.stop = stop
        self.event = event
        self.backoff = backoff or Backoff()
        self.describe = describe
        self.level = level
        self.failures = 0  # consecutive failed steps

    def made_progress(self) -> None:
        self.backoff.reset()
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pause = self.step()
            except Exception as exc:  # broker or database trouble: wait, retry, never drop
                if self.stop.is_set():
                    break
                self.failures += 1
                delay = self.backoff.next_delay()
                getattr(log, self.level)(self.event, **self.describe(exc), retry_in_s=delay, failures=self.failures)
                self.stop.wait(delay)
                continue
            self.made_progress()
            if pause:
                self.stop.wait(pause)


def run_forever(step: Step, *, stop: Stop, event: str, backoff: Backoff | None = None,
                describe: Callable[[BaseException], Mapping[str, Any]] = error_type, level: str = "warning") -> None:
    """:class:`BackoffLoop` in one call, for a loop nobody needs to look into."""
    BackoffLoop(step, stop=stop, event=event, backoff=backoff, describe=describe, level=level).run()

"""The back-off loop: capped exponential waits, reset on success, stoppable, never spinning."""

from __future__ import annotations

import threading
import time

import eventlet
import pytest
from structlog.testing import capture_logs
from upgestao_kernel.consumers import Backoff, BackoffLoop, GreenStop, run_forever


class RecordingStop:
    """A stop signal that records the loop's waits instead of sleeping, and stops it after ``limit`` waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return len(self.waits) >= self.limit

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def failing(times: int, then=lambda: None):
    calls = {"n": 0}

    def step():
        calls["n"] += 1
        if calls["n"] <= times:
            raise ConnectionError("broker away")
        return then()

    return step, calls


def test_the_delays_double_from_half_a_second_up_to_two_seconds():
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


@pytest.mark.parametrize(("initial", "cap"), [(0, 2.0), (-1, 2.0), (3.0, 2.0)])
def test_a_backoff_that_could_spin_or_shrink_is_refused(initial, cap):
    with pytest.raises(ValueError):
        Backoff(initial, cap)


def test_a_failing_step_is_retried_with_growing_waits_and_never_without_one():
    stop = RecordingStop(limit=4)
    step, calls = failing(times=100)
    loop = BackoffLoop(step, stop=stop, event="test.step_failed")
    loop.run()
    assert stop.waits == [0.5, 1.0, 2.0, 2.0]
    assert calls["n"] == 4 and loop.failures == 4


def test_a_success_resets_the_wait_and_the_failure_count():
    stop = RecordingStop(limit=6)
    outcomes = iter([ConnectionError, ConnectionError, 0.05, ConnectionError, ConnectionError, ConnectionError])

    def step():
        outcome = next(outcomes)
        if isinstance(outcome, type):
            raise outcome("away")
        return outcome

    loop = BackoffLoop(step, stop=stop, event="test.step_failed")
    loop.run()
    assert stop.waits == [0.5, 1.0, 0.05, 0.5, 1.0, 2.0]  # the pause the step asked for, then from 0.5 again
    assert loop.failures == 3


def test_a_step_that_made_progress_before_failing_starts_the_back_off_again():
    stop = RecordingStop(limit=4)
    loop: BackoffLoop

    def step():
        if len(stop.waits) == 2:
            loop.made_progress()  # e.g. attached, then lost the connection
        raise ConnectionError("lost")

    loop = BackoffLoop(step, stop=stop, event="test.step_failed")
    loop.run()
    assert stop.waits == [0.5, 1.0, 0.5, 1.0]


def test_the_failure_is_logged_with_its_type_not_its_text():
    stop = RecordingStop(limit=1)
    with capture_logs() as logged:
        run_forever(failing(times=1)[0], stop=stop, event="test.step_failed")
    [entry] = [e for e in logged if e["event"] == "test.step_failed"]
    assert entry["log_level"] == "warning" and entry["error"] == "ConnectionError" and entry["retry_in_s"] == 0.5
    assert "broker away" not in repr(entry)


def test_a_step_failing_because_the_loop_is_stopping_ends_it_without_waiting():
    stop = threading.Event()

    def step():
        stop.set()
        raise ConnectionError("closed under us")

    started = time.monotonic()
    run_forever(step, stop=stop, event="test.step_failed")
    assert time.monotonic() - started < 0.2


def test_a_thread_loop_stops_promptly_while_backing_off():
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(failing(times=10**6)[0],),
                              kwargs={"stop": stop, "event": "test.step_failed", "backoff": Backoff(5.0, 5.0)})
    thread.start()
    time.sleep(0.1)  # now waiting 5 s
    stopped_at = time.monotonic()
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive() and time.monotonic() - stopped_at < 0.5


def test_a_green_loop_stops_within_a_slice_and_lets_other_green_threads_run():
    stop = GreenStop(slice_s=0.05)
    ticks = []
    ticker = eventlet.spawn(lambda: [ticks.append(eventlet.sleep(0.01)) for _ in range(20)])
    loop = eventlet.spawn(run_forever, failing(times=10**6)[0], stop=stop, event="test.step_failed",
                          backoff=Backoff(5.0, 5.0))
    eventlet.sleep(0.3)
    assert len(ticks) == 20  # the waiting loop did not block the hub
    stopped_at = time.monotonic()
    stop.set()
    loop.wait()
    ticker.wait()
    assert time.monotonic() - stopped_at < 0.2


def test_green_stop_waits_its_timeout_when_not_set():
    stop = GreenStop(slice_s=0.02)
    started = time.monotonic()
    assert stop.wait(0.1) is False
    assert 0.09 <= time.monotonic() - started < 0.3
    stop.set()
    assert stop.wait(5) is True and stop.is_set()


def test_stop_loops_stops_every_loop_and_waits_even_for_one_that_died():
    stop = GreenStop(slice_s=0.02)
    ended = []

    def loop(name):
        stop.wait()
        ended.append(name)

    def died():
        raise RuntimeError("already logged by the loop")

    threads = [eventlet.spawn(loop, "a"), eventlet.spawn(died), eventlet.spawn(loop, "b")]
    eventlet.sleep(0.05)
    stop.stop_loops(threads)
    assert stop.is_set() and sorted(ended) == ["a", "b"]

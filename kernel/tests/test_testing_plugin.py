"""The test plugin's own promises (``upgestao_kernel.testing``): the background cleanup runs every job,
in order, and a job that fails twice is reported, never lost; and the kernel's prompt stop of a container
(``nameko_ext.reconnect``), which every test that runs one relies on."""

from __future__ import annotations

import time

from upgestao_kernel.nameko_ext.reconnect import CONSUMER_SAFETY_INTERVAL_S
from upgestao_kernel.testing import BackgroundCleanup


def test_jobs_run_in_the_order_given_and_finish_waits_for_the_last():
    cleanup = BackgroundCleanup()
    done: list[int] = []

    def job(n: int) -> None:
        time.sleep(0.01)  # yields: the jobs run while the submitter goes on
        done.append(n)

    for n in range(5):
        cleanup.submit(f"job {n}", lambda n=n: job(n))
    assert cleanup.finish() == []
    assert done == [0, 1, 2, 3, 4]
    cleanup.submit("after finish", lambda: done.append(5))  # a new worker for the next session's jobs
    assert cleanup.finish() == [] and done[-1] == 5


def test_a_failed_job_is_tried_again_at_the_end_and_reported_if_it_fails_again():
    cleanup = BackgroundCleanup()
    attempts = {"flaky": 0, "broken": 0}

    def flaky() -> None:  # fails while a test's patch is in place, works once it is gone
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ConnectionError("patched away")

    def broken() -> None:
        attempts["broken"] += 1
        raise RuntimeError("database t_x is being accessed by other users")

    cleanup.submit("drop database t_flaky", flaky)
    cleanup.submit("drop database t_x", broken)
    assert cleanup.finish() == ["drop database t_x: RuntimeError: database t_x is being accessed by other users"]
    assert attempts == {"flaky": 2, "broken": 2}


def test_a_container_stops_within_the_tests_safety_interval(amqp_uri):
    """nameko's 1 s consumer polls made a stop take 2 s (in every test that ran a container, and in every
    service on every deploy)."""
    from nameko.containers import ServiceContainer
    from nameko.rpc import rpc
    from nameko.standalone.rpc import ServiceRpcProxy

    class Echo:
        name = "echo"

        @rpc
        def echo(self, value):
            return value

    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    container = ServiceContainer(Echo, config)
    container.start()
    with ServiceRpcProxy("echo", config, timeout=10) as proxy:
        assert proxy.echo(7) == 7
    started = time.monotonic()
    container.stop()
    assert time.monotonic() - started < 10 * CONSUMER_SAFETY_INTERVAL_S  # was 2 s: 20 intervals

"""The gateway's CPU per request: GET /v1/ping beside authenticated requests (not a ``make bench`` scenario).

One fresh platform (every service, each on its own fresh PostgreSQL database, its own vhost), a small help desk
built through the gateway (the first admin, attendants A and B, S supervisors, C customers, V conversations),
then, each for ``BENCH_DURATION_S`` at ``BENCH_GATEWAY_CONNS`` connections (closed loop, keep-alive, wrk when
installed):

* ``ping``     GET /v1/ping (no auth, one RPC to identity): the baseline;
* ``me``       GET /v1/me as A (token, permission, one RPC to identity, one schema dump);
* ``page``     GET /v1/conversations/{id}/messages?limit=50 as A (a conversation holding P messages);
* ``send``     POST /v1/conversations/{id}/messages as A, with L WebSocket listeners connected (A and L-1
               supervisors: each send is pushed to each of them, through messaging's ``push_view``).

What is reported is the gateway process's CPU milliseconds per request (``/proc/<pid>/stat`` utime + stime over
the run, divided by the requests answered), beside the other processes' and the rate; every answer must be 2xx.
``BENCH_GATEWAY_PROFILE=<dir>`` records the gateway under ``py-spy`` (1000 Hz, raw collapsed stacks, on-CPU
samples only) for each run. The platform, its vhost, databases and temporary directory are removed afterwards.

    .venv/bin/python bench/gateway_overhead.py

    BENCH_DURATION_S          seconds of each measured run (8)
    BENCH_WARMUP_S            seconds of each unmeasured warm-up run (2)
    BENCH_GATEWAY_CONNS       connections (10)
    BENCH_GATEWAY_PAGE        P, messages of the paged conversation (60)
    BENCH_GATEWAY_LISTENERS   L (5)
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402

from common import bench_vhost, env_float, env_int, load_average, log  # noqa: E402
from loadgen import wrk_available  # noqa: E402
from messaging import (  # noqa: E402
    PING,
    PLATFORM_ENV,
    BenchFailure,
    HelpDeskText,
    Request,
    _send,
    build_desk,
    databases,
    push_clients,
    run_requests,
    send_requests,
    wait_ready,
)
from notifier import cpu_seconds, start_py_spy, started_platform, stop_py_spy  # noqa: E402
from upgestao_platform import Platform, free_address  # noqa: E402


@contextlib.contextmanager
def profiled(pid: int, directory: str | None, name: str) -> Iterator[None]:
    """The gateway under ``py-spy record`` (on-CPU samples only) when a directory is given."""
    if not directory:
        yield
        return
    os.makedirs(directory, exist_ok=True)
    spy = start_py_spy(pid, os.path.join(directory, f"gateway-{name}.txt"), rate=1000)
    try:
        yield
    finally:
        stop_py_spy(spy)


def measure(platform: Platform, name: str, requests: Sequence[Request], token: str | None, connections: int,
            duration_s: float, warmup_s: float, loadgen: str, profile: str | None) -> dict:
    """One warm-up run, then one measured run: the gateway's (and every process's) CPU ms per request."""
    url = platform.url
    run_requests(url, requests, connections, warmup_s, loadgen, token)
    pids = {n: proc.pid for n, proc in platform.children.items()}
    before = {n: cpu_seconds(pid) for n, pid in pids.items()}
    with profiled(pids["gateway"], profile, name):
        r = run_requests(url, requests, connections, duration_s, loadgen, token)
    used = {n: cpu_seconds(pid) - before[n] for n, pid in pids.items()}
    if r.non_2xx or r.errors or not r.requests:
        raise BenchFailure(f"{name}: {r.non_2xx} non-2xx and {r.errors} socket errors of {r.requests}")
    per = {n: round(1e3 * v / r.requests, 3) for n, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0}
    figures = {"requests": r.requests, "rps": round(r.rps, 1), "p50_ms": round(r.p50_ms, 2),
               "p99_ms": round(r.p99_ms, 2), "gateway_cpu_ms": per.get("gateway"), "cpu_ms": per}
    log(f"{name:<6} c={connections} {r.rps:8.1f} req/s  p50 {r.p50_ms:6.2f} ms  gateway {per.get('gateway')} "
        f"CPU ms/request  (all: {json.dumps(per)})")
    return figures


def main() -> int:
    duration_s, warmup_s = env_float("BENCH_DURATION_S", 8.0), env_float("BENCH_WARMUP_S", 2.0)
    connections = env_int("BENCH_GATEWAY_CONNS", 10)
    page_size = env_int("BENCH_GATEWAY_PAGE", 60)
    listeners = env_int("BENCH_GATEWAY_LISTENERS", 5)
    profile = os.environ.get("BENCH_GATEWAY_PROFILE") or None
    loadgen = os.environ.get("BENCH_LOADGEN") or ("wrk" if wrk_available() else "python")
    results: dict = {"load_before": load_average(), "connections": connections, "loadgen": loadgen}
    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-gw-") as data_dir,
        databases("postgresql", uuid.uuid4().hex[:8]) as db_env,
    ):
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        with started_platform(platform, 240.0):
            url = platform.url
            desk = build_desk(url, supervisors=max(listeners - 1, 1), customers=5, conversations=6, clients=4)
            text = HelpDeskText(13)
            paged = desk.of(desk.a)[0]
            for _ in range(page_size):
                _send(url, desk.a, paged, text)
            token = desk.a.token
            run = {"connections": connections, "duration_s": duration_s, "warmup_s": warmup_s,
                   "loadgen": loadgen, "profile": profile}
            results["ping"] = measure(platform, "ping", [Request("GET", PING)], None, **run)
            results["me"] = measure(platform, "me", [Request("GET", "/v1/me")], token, **run)
            results["page"] = measure(platform, "page", [Request("GET", f"/v1/conversations/{paged.id}/messages"
                                                                         "?limit=50")], token, **run)
            with push_clients(url, [desk.a, *desk.supervisors[:listeners - 1]]) as sockets:
                wait_ready(sockets, url, desk.a, paged, text)
                results["send"] = measure(platform, "send", send_requests(desk, text, 4000), token, **run)
                results["send"]["listeners"] = len(sockets)
                closed = [s.closed for s in sockets if s.closed]
                if closed:
                    raise BenchFailure(f"{len(closed)} listeners closed during the sends: {closed[0]}")
    results["load_after"] = load_average()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    try:
        sys.exit(main())
    finally:
        log(f"done in {time.monotonic() - started:.0f} s")

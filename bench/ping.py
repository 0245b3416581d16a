"""Scenario ``ping``: GET /v1/ping (gateway -> RPC -> identity) against the
HTTP baseline GET /healthz (gateway only, no RPC), on a fresh platform.

    BENCH_DURATION_S     seconds per measurement (10)
    BENCH_CONCURRENCY    connections, comma-separated (1,10,50)
    BENCH_LOADGEN        wrk | python (default: wrk if installed)
    BENCH_WARMUP_S       unrecorded warm-up before the first measurement (3)
"""

from __future__ import annotations

import os
import tempfile
import time

from common import bench_vhost, env_float, log, ratio, result, write_result
from loadgen import ceiling, run_load, wrk_available
from upgestao_platform import Platform, free_address

SCENARIO = "ping"
ENDPOINT = "/v1/ping"
BASELINE = "/healthz"






def run() -> dict:
    duration = env_float("BENCH_DURATION_S", 10.0)
    warmup = env_float("BENCH_WARMUP_S", 3.0)
    levels = [int(x) for x in (os.environ.get("BENCH_CONCURRENCY") or "1,10,50").split(",")]
    kind = os.environ.get("BENCH_LOADGEN") or ("wrk" if wrk_available() else "python")
    figures, baseline, ratios, loadgens = {}, {}, {}, set()

    with bench_vhost() as amqp_uri, tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir:
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(), echo=log)
        started = time.monotonic()
        with platform:
            log(f"platform ready in {time.monotonic() - started:.1f} s at {platform.url}; load generator {kind}")
            run_load(platform.url + ENDPOINT, 10, warmup, kind)  # warm-up (JIT-less, but caches/pools)
            for c in levels:
                key = f"c{c}"
                base = run_load(platform.url + BASELINE, c, duration, kind)
                log(
                    f"{BASELINE:<9} c={c:<3} {base.rps:8.1f} req/s  p50 {base.p50_ms:7.2f} ms  "
                    f"p99 {base.p99_ms:7.2f} ms  errors {base.errors + base.non_2xx}"
                )
                ping = run_load(platform.url + ENDPOINT, c, duration, kind)
                log(
                    f"{ENDPOINT:<9} c={c:<3} {ping.rps:8.1f} req/s  p50 {ping.p50_ms:7.2f} ms  "
                    f"p99 {ping.p99_ms:7.2f} ms  errors {ping.errors + ping.non_2xx}"
                )
                platform.check_alive()
                figures[key], baseline[key] = ping.summary(), base.summary()
                ratios[key] = {
                    "rps": ratio(ping.rps, base.rps),
                    "p50": ratio(ping.p50_ms, base.p50_ms),
                    "p99": ratio(ping.p99_ms, base.p99_ms),
                }
                loadgens.add(ping.loadgen)
    # The load generator alone, against a trivial server, after the platform is gone.
    top = max(levels)
    ceil = ceiling(kind, top, min(duration, 5.0))
    log(f"load generator ceiling (trivial asyncio server, c={top}): {ceil.rps:.0f} req/s")
    notes = [
        "closed loop, keep-alive; the platform, the load generator and RabbitMQ share the machine's cores",
        f"ratios are {ENDPOINT} / {BASELINE} measured in the same run (rps ratio < 1 = RPC cost)",
        "loadgen_ceiling: the same load generator against a one-process asyncio server returning a "
        "constant answer; figures near it are limited by the load generator",
    ]
    if any(f["errors"] or f["non_2xx"] for f in (*figures.values(), *baseline.values())):
        notes.append("WARNING: some requests failed (errors/non_2xx): see figures")
    return result(
        SCENARIO,
        parameters={
            "endpoint": ENDPOINT,
            "baseline_endpoint": BASELINE,
            "duration_s": duration,
            "warmup_s": warmup,
            "concurrency": levels,
            "loadgen": sorted(loadgens),
            "log_level": os.environ.get("UPGESTAO_LOG_LEVEL", "INFO"),
            "databases": "SQLite (platform defaults)",
        },
        figures=figures,
        baseline=baseline,
        ratios=ratios,
        loadgen_ceiling={f"c{top}": ceil.summary()},
        notes=notes,
    )


if __name__ == "__main__":
    path = write_result(run())
    log(f"wrote {path}")

#!/usr/bin/env python3
"""Measure what each process of the platform uses (CPU and RSS) under the chaos suite's mixed workload, to
size the Deployments' requests and limits (deploy/k8s/README.md, "Resources").

    .venv/bin/python deploy/k8s/measure_resources.py --duration 180 --warmup 30

A fresh platform on PostgreSQL (own vhost, own databases, deleted afterwards; free ports) and the
workload of bench/chaos.py without faults (attendants, a dpo, every message also delivered as a webhook)
for ``--duration`` seconds. Every ``--every`` seconds, each process's CPU time (utime + stime from
/proc/<pid>/stat) and RSS are read. Per process it prints the mean CPU in millicores after the warm-up,
the 95th percentile and the maximum of the windows, and the maximum RSS. It also prints the requests per
second the workload got, so the figures scale: CPU per process grows with the load, RSS barely does.
Not in CI.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in ("bench", "scripts"):
    if str(ROOT / folder) not in sys.path:
        sys.path.append(str(ROOT / folder))

from chaos import PLATFORM_ENV, Workload, assign_role, environment, webhook_receiver  # noqa: E402
from common import log  # noqa: E402
from upgestao_platform import Platform, free_address  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def cpu_and_rss(pid: int) -> tuple[float, float] | None:
    """(CPU seconds used so far, RSS MiB) of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            rss_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / TICKS, rss_pages * PAGE_MIB


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class Meter:
    """Every ``every_s``: each child's CPU (millicores over the window) and RSS, after ``warmup_s``."""

    def __init__(self, platform: Platform, every_s: float, warmup_s: float) -> None:
        self.platform, self.every_s, self.warmup_s = platform, every_s, warmup_s
        self.windows: dict[str, list[float]] = {}
        self.rss: dict[str, list[float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="meter", daemon=True)

    def _loop(self) -> None:
        started = time.monotonic()
        last: dict[str, tuple[int, float, float]] = {}
        while not self.stop.wait(self.every_s):
            now = time.monotonic()
            for name, proc in list(self.platform.children.items()):
                taken = cpu_and_rss(proc.pid)
                if taken is None:
                    continue
                cpu, rss = taken
                previous = last.get(name)
                last[name] = (proc.pid, now, cpu)
                if previous is None or previous[0] != proc.pid or now - started < self.warmup_s:
                    continue
                self.windows.setdefault(name, []).append((cpu - previous[2]) / (now - previous[1]) * 1000)
                self.rss.setdefault(name, []).append(rss)


def run(duration_s: float, warmup_s: float, every_s: float, workers: int, seed: int) -> int:
    with environment("postgresql") as (amqp_uri, _vhost, db_env), \
            tempfile.TemporaryDirectory(prefix="upgestao-measure-") as data_dir, \
            webhook_receiver(Path(data_dir)) as receiver:
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        platform.start(timeout=180)
        meter = Meter(platform, every_s, warmup_s)
        # the chaos suite's workload: every message sent also goes out as a webhook (integrations works too)
        workload = Workload(platform.url, seed, workers, lambda user_id, role: assign_role(platform, user_id, role),
                            webhook_url=receiver.url)
        try:
            workload.prepare()
            receiver.secret_file.write_text(workload.webhook_secret or "")
            meter.thread.start()
            workload.start()
            begun, before = time.monotonic(), len(workload.ops)
            deadline = begun + duration_s
            while time.monotonic() < deadline:
                time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
                log(f"measure: {time.monotonic() - begun:.0f} s, {len(workload.ops) - before} requests")
            requests = len(workload.ops) - before
            workload.finish()
        finally:
            meter.stop.set()
            platform.stop()
    print(f"{'process':<20} {'CPU m mean':>10} {'p95':>6} {'max':>6} {'RSS MiB max':>12}")
    for name in sorted(meter.windows):
        cpu = meter.windows[name]
        print(f"{name:<20} {sum(cpu) / len(cpu):>10.0f} {percentile(cpu, 0.95):>6.0f} {max(cpu):>6.0f} "
              f"{max(meter.rss[name]):>12.1f}")
    print(f"{requests} requests in {duration_s:.0f} s ({requests / duration_s:.1f}/s), {workers} attendants and a "
          f"dpo; windows of {every_s:.0f} s after a {warmup_s:.0f} s warm-up; errors: {len(workload.errors)}")
    return 0 if meter.windows and not workload.errors else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of workload (180)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the windows count (30)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds per CPU window (5)")
    parser.add_argument("--workers", type=int, default=2, help="attendant clients (2, the soak's), plus one dpo")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return run(args.duration, args.warmup, args.every, args.workers, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())

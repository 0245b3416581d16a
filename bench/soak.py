#!/usr/bin/env python3
"""``make soak``: the chaos suite's mixed workload for an hour, no faults; every process's
memory (RSS) and open file descriptors sampled throughout (issue 9).

Not in CI. On a fresh platform on PostgreSQL (own vhost, own databases, all deleted
afterwards; ``SOAK_DATABASE=sqlite`` for the embedded default). Writes
``bench/results/soak.json`` (every sample) and a PNG of RSS per process over time
(``--png``, default ``docs/soak-rss.png``), and prints, per process, RSS and open fds at
the end of the warm-up and at the end, with the slope after warm-up (MiB per hour,
least squares): "no growth after warm-up" is a slope near zero.

    .venv/bin/python bench/soak.py --duration 3600 --warmup 600
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from chaos import PLATFORM_ENV, Supervisor, Workload, assign_role, environment, wait_ready
from common import RESULTS, ROOT, log, machine
from upgestao_platform import Platform, free_address

SCENARIO = "soak"
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def sample(pid: int) -> tuple[float, int] | None:
    """(RSS in MiB, open file descriptors) of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss_pages = int(f.read().split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    return rss_pages * PAGE_KIB / 1024, fds


class Sampler:
    """Every ``every_s``: each child of the platform by name (its pid changes if it is restarted)."""

    def __init__(self, platform: Platform, every_s: float) -> None:
        self.platform = platform
        self.every_s = every_s
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self.t0 = time.monotonic()

    def _loop(self) -> None:
        while True:
            t = round(time.monotonic() - self.t0, 1)
            for name, proc in list(self.platform.children.items()):
                taken = sample(proc.pid)
                if taken is not None:
                    self.samples.append({"t_s": t, "process": name, "pid": proc.pid,
                                         "rss_mib": round(taken[0], 2), "fds": taken[1]})
            if self.stop.wait(self.every_s):
                return


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) in value per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def summarise(samples: list[dict], warmup_s: float) -> dict[str, dict]:
    by_process: dict[str, list[dict]] = {}
    for s in samples:
        by_process.setdefault(s["process"], []).append(s)
    summary = {}
    for name, rows in sorted(by_process.items()):
        after = [r for r in rows if r["t_s"] >= warmup_s]
        if not after:
            continue
        first, last = after[0], after[-1]
        summary[name] = {
            "rss_mib_at_warmup": first["rss_mib"], "rss_mib_at_end": last["rss_mib"],
            "rss_mib_max": max(r["rss_mib"] for r in after),
            "rss_mib_per_hour_after_warmup": _round(slope_per_hour([(r["t_s"], r["rss_mib"]) for r in after])),
            "fds_at_warmup": first["fds"], "fds_at_end": last["fds"], "fds_max": max(r["fds"] for r in after),
            "fds_per_hour_after_warmup": _round(slope_per_hour([(r["t_s"], r["fds"]) for r in after])),
            "restarts": len({r["pid"] for r in rows}) - 1,
        }
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def plot(samples: list[dict], warmup_s: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rss_ax, fd_ax) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    names = sorted({s["process"] for s in samples})
    for name in names:
        rows = [s for s in samples if s["process"] == name]
        minutes = [r["t_s"] / 60 for r in rows]
        rss_ax.plot(minutes, [r["rss_mib"] for r in rows], label=name, linewidth=1.2)
        fd_ax.plot(minutes, [r["fds"] for r in rows], label=name, linewidth=1.2)
    for ax in (rss_ax, fd_ax):
        ax.axvline(warmup_s / 60, color="grey", linestyle="--", linewidth=0.8)
        ax.grid(True, alpha=0.3)
    rss_ax.set_ylabel("RSS (MiB)")
    fd_ax.set_ylabel("open file descriptors")
    fd_ax.set_xlabel("minutes since the workload started (dashed: end of warm-up)")
    rss_ax.set_title(title)
    rss_ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(summary: dict[str, dict]) -> str:
    lines = [f"{'process':<16} {'RSS MiB warm-up→end (max)':>28} {'MiB/h':>7} {'fds warm-up→end (max)':>24} "
             f"{'fds/h':>7} {'restarts':>8}"]
    for name, s in summary.items():
        rss = f"{s['rss_mib_at_warmup']:.1f}→{s['rss_mib_at_end']:.1f} ({s['rss_mib_max']:.1f})"
        fds = f"{s['fds_at_warmup']}→{s['fds_at_end']} ({s['fds_max']})"
        lines.append(f"{name:<16} {rss:>28} {s['rss_mib_per_hour_after_warmup']!s:>7} {fds:>24} "
                     f"{s['fds_per_hour_after_warmup']!s:>7} {s['restarts']:>8}")
    return "\n".join(lines)


def run(duration_s: float, warmup_s: float, every_s: float, database: str, workers: int, seed: int,
        png: Path) -> dict:
    started = time.time()
    with environment(database) as (amqp_uri, _vhost, db_env), \
            tempfile.TemporaryDirectory(prefix="upgestao-soak-") as data_dir:
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        platform.start(timeout=180)
        supervisor = Supervisor(platform)
        supervisor.thread.start()
        sampler = Sampler(platform, every_s)
        workload = Workload(platform.url, seed, workers,  # the dpo of the workload gets its role from an admin
                            lambda user_id, role: assign_role(platform, user_id, role))
        try:
            workload.prepare()
            sampler.t0 = time.monotonic()
            sampler.thread.start()
            workload.start()
            log(f"soak: {duration_s:.0f} s of the mixed workload ({workers} attendants and a dpo), "
                f"sampling every {every_s:.0f} s")
            deadline = time.monotonic() + duration_s
            while time.monotonic() < deadline:
                time.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
                log(f"soak: {time.monotonic() - sampler.t0:.0f} s, {len(workload.ops)} requests")
            workload.finish()
            sampler.stop.set()
            sampler.thread.join(timeout=30)
            ready = wait_ready(platform, timeout=60)
        finally:
            sampler.stop.set()
            supervisor.stop.set()
            platform.stop()
    statuses: dict[str, int] = {}
    for op in workload.ops:
        key = str(op.status)
        statuses[key] = statuses.get(key, 0) + 1
    summary = summarise(sampler.samples, warmup_s)
    result = {
        "scenario": SCENARIO,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "parameters": {"duration_s": duration_s, "warmup_s": warmup_s, "sample_every_s": every_s,
                       "database": database, "workers": workers, "seed": seed},
        "requests": len(workload.ops),
        "statuses": statuses,
        "client_errors": workload.errors,
        "ready_at_end": ready,
        "supervisor": [getattr(e, "message", str(e)) for e in supervisor.events],
        "per_process": summary,
        "samples": sampler.samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{SCENARIO}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(sampler.samples, warmup_s, png,
         f"soak: RSS and open fds per process, {duration_s / 60:.0f} min on {database}, "
         f"{len(workload.ops)} requests")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of workload (3600)")
    parser.add_argument("--warmup", type=float, default=600.0, help="seconds before growth is judged (600)")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples (15)")
    parser.add_argument("--database", default=os.environ.get("SOAK_DATABASE", "postgresql"))
    parser.add_argument("--workers", type=int, default=3, help="attendant clients (3), plus one dpo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "soak-rss.png")
    args = parser.parse_args(argv)
    result = run(args.duration, args.warmup, args.every, args.database, args.workers, args.seed, args.png)
    print(render(result["per_process"]))
    print(f"requests {result['requests']}, statuses {result['statuses']}, "
          f"client errors {len(result['client_errors'])}, ready at the end: {result['ready_at_end']}; "
          f"PNG {args.png}; bench/results/{SCENARIO}.json")
    return 0 if result["ready_at_end"] and not result["client_errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

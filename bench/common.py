"""What every benchmark scenario shares: results files, machine facts, vhosts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.append(str(ROOT / "scripts"))

from upgestao_platform import DEFAULT_AMQP_URI, RabbitAdmin, amqp_uri_with_vhost  # noqa: E402

AMQP_BASE = os.environ.get("BENCH_AMQP_URI") or DEFAULT_AMQP_URI
PG_ADMIN = os.environ.get("BENCH_PG_DSN") or "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
# The gateway's rate limits per principal off: a benchmark drives the gateway flat out as one user (wrk at
# thousands of requests a second), which is what the limits exist to refuse; they are measured in the gateway's
# tests, not here.
UNTHROTTLED_GATEWAY = {"GATEWAY_RATE_LIMIT_USER_PER_MIN": "0", "GATEWAY_RATE_LIMIT_KEY_PER_MIN": "0"}


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def load_average() -> float | None:
    """The machine's 1-minute load average (other work on a shared machine shows here)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict:
    info = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["rabbitmq"] = RabbitAdmin(AMQP_BASE).request("GET", "/api/overview", timeout=3)[1]
        info["rabbitmq"] = json.loads(info["rabbitmq"]).get("rabbitmq_version")
    except Exception:  # noqa: BLE001 - informative only
        info.pop("rabbitmq", None)
    try:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0:
            info["postgresql"] = out.stdout.strip()
    except OSError:
        pass
    return info


def result(scenario: str, parameters: dict, figures: dict, baseline: dict, ratios: dict, **extra) -> dict:
    return {
        "scenario": scenario,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": parameters,
        "figures": figures,
        "baseline": baseline,
        "ratios": ratios,
        **extra,
    }


def write_result(data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{data['scenario']}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextmanager
def bench_vhost(prefix: str = "upgestao-bench") -> Iterator[str]:
    """A fresh vhost (management API), deleted afterwards; yields its AMQP URI."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = RabbitAdmin(AMQP_BASE)
    admin.create_vhost(name)
    try:
        yield amqp_uri_with_vhost(AMQP_BASE, name)
    finally:
        admin.delete_vhost(name)


def stop_process(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``grace_s``; reaped either way."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> float | None:
    """``a / b`` to three places (None when the baseline is zero)."""
    return round(a / b, 3) if b else None


def run_scenario(run: Callable[[], dict], name: str, timeout_var: str, default_timeout_s: float,
                 failures: tuple[type[BaseException], ...] = ()) -> int:
    """Run a scenario script's ``run`` under a whole-run alarm (``timeout_var`` seconds), write its result;
    a failure it expects (or the alarm) is one FAILED line and exit status 1."""
    import signal

    def alarm(signum, frame) -> None:
        raise TimeoutError(f"the {name} scenario ran past {timeout_var}")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(env_float(timeout_var, default_timeout_s)))
    try:
        data = run()
    except (*failures, TimeoutError) as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        signal.alarm(0)
    log(f"wrote {write_result(data)}")
    return 0

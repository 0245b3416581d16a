"""``make test``'s pytest: the tests that need RabbitMQ or PostgreSQL and the others, in two processes at once.

The root conftest.py marks the first ``infra``. They spend most of their time waiting on the broker, the
databases and the platform's processes; the others (about 2,700 unit, property and fuzz tests) are
CPU-bound and need neither. One after the other they took over 20 minutes on CI's 2 cores; side by side
the others fit into the infra tests' waits.

The others run with ``UPGESTAO_TEST_OFFLINE=1`` (the broker and every database at a closed port), as in
``make test-fast``: a test that reaches them without being marked fails instead of racing the infra run.
The infra run streams to the console; the other run's output is kept in a file and shown when it ends.
The exit status is the infra run's, else the other's (one side selecting
nothing is no failure). Extra arguments go to both pytest commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_TESTS = 5  # pytest's exit status when nothing was selected


def pytest_command(marker: str, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", marker, "--durations=25", *argv]


def main(argv: list[str]) -> int:
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+", prefix="test-offline-") as log:
        offline = subprocess.Popen(pytest_command("not infra", ["-p", "no:cacheprovider", *argv]), cwd=ROOT,
                                   env={**os.environ, "UPGESTAO_TEST_OFFLINE": "1"},
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        print(f"---- tests without RabbitMQ or PostgreSQL: running in the background (pid {offline.pid}) ----",
              flush=True)
        try:
            infra_status = subprocess.call(pytest_command("infra", argv), cwd=ROOT)
            offline_status = offline.wait()
        finally:
            if offline.poll() is None:
                offline.kill()
                offline.wait()
        log.seek(0)
        print(f"---- tests without RabbitMQ or PostgreSQL (exit {offline_status}) ----")
        print(log.read().rstrip())
    print(f"---- infra tests exit {infra_status}, the others exit {offline_status}; "
          f"{time.monotonic() - started:.0f} s wall ----")
    if NO_TESTS in (infra_status, offline_status) and {infra_status, offline_status} <= {0, NO_TESTS}:
        return 0 if 0 in (infra_status, offline_status) else NO_TESTS  # -k or a path may select one side only
    return infra_status or offline_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

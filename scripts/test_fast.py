"""``make test-fast``: every test that needs neither RabbitMQ nor PostgreSQL, one pytest per core.

The root conftest.py marks the other tests ``infra`` and, with ``UPGESTAO_TEST_OFFLINE=1``, points the
broker and every database at a closed port, so that a test needing them unmarked fails here. pytest-xdist
cannot start its workers once eventlet has monkey-patched them; instead this runs ``--shard i/n`` in
``n`` processes at once (every n-th selected test each; ``TEST_FAST_PROCESSES``, one per core by default),
shows their output one after the other and closes with the counts added up. Extra arguments go to every
pytest (``-k``, ``-x``, paths).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNTED = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")


def summary_counts(output: str) -> dict[str, int]:
    """The counts of pytest's closing line (``3 failed, 448 passed, 826 deselected in 30.1s``)."""
    lines = [line for line in output.splitlines() if " in " in line and _COUNT.search(line)]
    counts = dict.fromkeys(COUNTED, 0)
    if lines:
        for number, word in _COUNT.findall(lines[-1]):
            counts["errors" if word.startswith("error") else word] += int(number)
    return counts


def main(argv: list[str]) -> int:
    # one per core: more would overlap the tests that wait, but starve the ones that time themselves
    shards = int(os.environ.get("TEST_FAST_PROCESSES") or max(2, os.cpu_count() or 1))
    env = {**os.environ, "UPGESTAO_TEST_OFFLINE": "1"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="test-fast-") as folder:
        runs = []
        for index in range(1, shards + 1):
            log = open(Path(folder) / f"shard-{index}.log", "w+")  # noqa: SIM115 - closed below
            command = [sys.executable, "-m", "pytest", "-m", "not infra", "-q", "-p", "no:cacheprovider",
                       "--shard", f"{index}/{shards}", *argv]
            runs.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        totals = dict.fromkeys(COUNTED, 0)
        status = 0
        for index, (process, log) in enumerate(runs, start=1):
            code = process.wait()
            log.seek(0)
            output = log.read()
            log.close()
            print(f"---- shard {index}/{shards} (exit {code}) ----")
            print(output.rstrip())
            for key, value in summary_counts(output).items():
                totals[key] += value
            status = status or code
    elapsed = time.monotonic() - started
    print(f"---- {shards} processes, {elapsed:.1f} s wall ----")
    others = ", ".join(f"{totals[key]} {key}" for key in COUNTED[2:] if totals[key])
    print(f"test-fast: {totals['passed']} passed, {totals['failed']} failed" + (f", {others}" if others else ""))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

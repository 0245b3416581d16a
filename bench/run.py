"""``make bench``: run benchmark scenarios, write bench/results/<scenario>.json,
print a table.

    python bench/run.py                  every scenario
    python bench/run.py outbox_publish   only these
    python bench/run.py identity         GET /v1/me vs /v1/ping, /v1/me under logins, logins/s
    python bench/run.py audit            audit log: ingest vs raw consume/INSERT; search, proof, verify at 1M
    python bench/run.py notifier         e-mails/s from identity's events to the local sink vs raw smtplib
    python bench/run.py messaging        send, page of 50 and search over 100k, push to 50 sockets vs /v1/ping; RSS
    python bench/run.py erasure          messaging's erasure of 10 vs 10,000 messages; the access bundle of 10,000
    python bench/run.py webhooks         webhook deliveries/s from messaging's events vs a raw signed-POST loop

Each scenario runs in its own process (``bench/<scenario>.py``, runnable on
its own too) on its own RabbitMQ vhost, databases and, for ``ping``, ``identity``, ``notifier`` and
``messaging``, a fresh platform on a free port; everything is deleted afterwards. Settings are
environment variables, documented at the top of each scenario's file
(BENCH_DURATION_S, BENCH_OUTBOX_N, BENCH_AUDIT_INGEST_N, BENCH_NOTIFIER_MAILS, BENCH_MESSAGING_MESSAGES, ...).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, log
from report import render

HERE = Path(__file__).resolve().parent
SCENARIOS = ("ping", "outbox_publish", "identity", "audit", "notifier", "messaging", "erasure", "webhooks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *SCENARIOS],
        metavar="scenario",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    args = parser.parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)

    failed: dict[str, int] = {}
    fresh: list[Path] = []
    for name in chosen:
        log(f"--- {name}")
        started = time.time()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py")]).returncode
        path = RESULTS / f"{name}.json"
        if rc != 0 or not path.exists() or path.stat().st_mtime < started:
            failed[name] = rc
            log(f"{name} FAILED (exit {rc})")
        else:
            fresh.append(path)

    print()
    for path in fresh:
        print(render(json.loads(path.read_text())))
        print()
    if failed:
        print(f"failed scenarios: {', '.join(f'{n} (exit {rc})' for n, rc in failed.items())}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

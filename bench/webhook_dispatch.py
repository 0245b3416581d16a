"""The integrations service's own cost per webhook delivery, in-process, on a real PostgreSQL (issue 15).

Starts no service. Over a fresh migrated database (dropped at the end), the service's real code runs as its
process runs it, under eventlet with green psycopg2:

1. ``queue``: N ``messaging.message_created.v1`` events taken in batches of ``events_batch`` (200), as the
   events consumer takes them (``fanout.accept_many``: each event claimed by id, one message queued each);
2. ``dispatch``: the dispatcher's loop (claim whenever there is room, up to 4 batches delivered side by
   side, ``Deliverer.deliver``) until every message is delivered. The owners answer at once (fakes of
   ``identity.share_subjects`` and ``messaging.share_messages``) and the sender answers 204 after 1 ms
   (a fake: no socket), so what is measured is the claim, the payloads, the signing and the records.

Per delivery, for each phase: this process's CPU (``time.process_time``), PostgreSQL's (the database's
backends, ``/proc``), SQL statements and transactions (commits). Statements and transactions do not depend
on the machine's load; CPU does (run it twice, or against a baseline in the same run).

``--baseline REV`` runs the same measurement on a git revision's services and kernel first (a temporary
``git worktree``; this script, with that revision's packages first on ``sys.path``) and prints both.

    .venv/bin/python bench/webhook_dispatch.py [--n 2000] [--baseline REV]
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("kernel/src", "services/integrations/src")


def measure(n: int) -> dict:
    import random

    import sqlalchemy as sa
    from eventlet.greenpool import GreenPool
    from eventlet.semaphore import Semaphore
    from notifier import backend_pids, cpu_seconds  # this directory's (the platform benches' CPU meters)
    from upgestao_integrations.adapters.http_sender import SendResult
    from upgestao_integrations.adapters.projections import projections
    from upgestao_integrations.adapters.secret_box import SecretBox
    from upgestao_integrations.adapters.sql_repositories import with_sql_repositories
    from upgestao_integrations.service_layer import fanout
    from upgestao_integrations.service_layer.delivery import Deliverer
    from upgestao_integrations.service_layer.registry import Registry
    from upgestao_integrations.settings import IntegrationsSettings
    from upgestao_kernel.context import RequestContext, system_context
    from upgestao_kernel.db import create_engine, green_postgres
    from upgestao_kernel.events import Actor, EventEnvelope, new_id
    from upgestao_kernel.testing import drop_database, migrated_database
    from upgestao_kernel.unit_of_work import UnitOfWork

    green_postgres()
    name = f"bench_dispatch_{uuid.uuid4().hex[:8]}"
    url = migrated_database(name, "upgestao_integrations:migrations")
    engine = create_engine(url)
    counts = {"statements": 0, "commits": 0}
    sa.event.listen(engine, "before_cursor_execute", lambda *a: counts.__setitem__("statements",
                                                                                    counts["statements"] + 1))
    sa.event.listen(engine, "commit", lambda conn: counts.__setitem__("commits", counts["commits"] + 1))
    key = bytes(range(32))

    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    try:
        now = lambda: datetime.now(UTC)  # noqa: E731
        registry = Registry(uow, lambda role: frozenset(), SecretBox(key), production=False, overlap_s=60, now=now)
        registry.register("Bench CRM", "http://crm.bench.test/hook", ["message.created"], ["name", "conversations"],
                          "https://crm.bench.example/privacy")
        conversation, customer = new_id(), new_id()
        envelopes = [EventEnvelope(event_id=new_id(), stream_id=f"message-{i}", version=1,
                                   type="messaging.message_created.v1", occurred_at=now(),
                                   actor=Actor("system", "system"), correlation_id=new_id(), causation_id=None,
                                   data={"message_id": new_id(), "conversation_id": conversation,
                                         "customer_id": customer, "direction": "incoming", "private": False})
                     for i in range(n)]

        def phase(run) -> dict:
            backends = backend_pids([name])
            before_pg = {pid: cpu_seconds(pid) for pid in backends()}
            before = dict(counts)
            cpu0, wall0 = time.process_time(), time.monotonic()
            run()
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            pg = sum(max(0.0, cpu_seconds(pid) - before_pg.get(pid, 0.0)) for pid in before_pg.keys() | backends())
            return {"wall_s": round(wall, 2), "cpu_ms_per_delivery": round(1000 * cpu / n, 3),
                    "postgresql_cpu_ms_per_delivery": round(1000 * pg / n, 3),
                    "statements_per_delivery": round((counts["statements"] - before["statements"]) / n, 2),
                    "commits_per_delivery": round((counts["commits"] - before["commits"]) / n, 3)}

        def queue() -> None:
            for start in range(0, n, 200):
                with uow() as unit:
                    fanout.accept_many(unit, "integrations.bench", envelopes[start:start + 200],
                                       lambda e: RequestContext.from_proof({"correlation_id": e.correlation_id},
                                                                           None, "bench"))

        figures = {"queue": phase(queue)}

        class Owners:
            def share_messages(self, ids, include_body, recipient, purpose):
                return {"messages": {i: {"message_id": i, "conversation_id": conversation, "customer_id": customer,
                                         "direction": "incoming", "created_at": "2026-12-03T10:00:00Z",
                                         "attachment_count": 0, "body": "Olá, boa tarde! " * 8} for i in ids}}

            def share_subjects(self, ids, fields, recipient, purpose):
                return {"subjects": {i: {"name": "Beatriz Carvalho Nogueira"} for i in ids}}

        delivered = {"n": 0}

        class Sender:
            def post(self, url, body, headers):
                eventlet.sleep(0.001)
                delivered["n"] += 1
                return SendResult(204, {}, 1.0)

        settings = IntegrationsSettings(production=False, allowed_networks="", secrets_key=key)
        pool = GreenPool(settings.concurrency)
        wake = eventlet.event.Event()

        def woken() -> None:
            if not wake.ready():
                wake.send(None)

        deliverer = Deliverer(unit_of_work=uow, owners=Owners(), sender=Sender(), box=SecretBox(key),
                              settings=settings, now=now, rng=random.Random(1), concurrently=pool.imap,
                              batch_done=woken, semaphore=Semaphore, posting={})

        failures: list[str] = []

        def deliver(claimed: list) -> None:
            try:
                deliverer.deliver(claimed)
            except Exception:  # noqa: BLE001 - the dispatcher logs it (integrations.batch_failed): fail here
                import traceback

                failures.append(f"a batch of {len(claimed)} failed: {traceback.format_exc()}")

        def dispatch() -> None:
            nonlocal wake
            batches = GreenPool(4)
            deadline = time.monotonic() + 600
            while delivered["n"] < n and time.monotonic() < deadline:
                claimed = deliverer.claim()
                if claimed:
                    batches.spawn(deliver, claimed)
                    continue
                with eventlet.Timeout(0.05, False):
                    wake.wait()
                wake = eventlet.event.Event()
            batches.waitall()
            if failures:
                raise SystemExit("\n".join(failures))
            if delivered["n"] < n:
                raise SystemExit(f"only {delivered['n']} of {n} delivered")

        figures["dispatch"] = phase(dispatch)
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM webhook_messages WHERE status <> 'succeeded'")).scalar()
        if left:
            raise SystemExit(f"{left} messages not succeeded")
        return figures
    finally:
        engine.dispose()
        drop_database(name)


def _baseline(revision: str, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="upgestao-dispatch-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision], check=True,
                       capture_output=True)
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / s) for s in SOURCES)}
            out = subprocess.run([sys.executable, __file__, "--n", str(n), "--json"], env=env, check=True,
                                 capture_output=True, text=True, timeout=900)
            return json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--baseline", help="a git revision measured first, in the same run")
    parser.add_argument("--json", action="store_true", help="print only the figures, as JSON")
    args = parser.parse_args()
    runs = {}
    if args.baseline:
        runs[f"baseline {args.baseline}"] = _baseline(args.baseline, args.n)
    figures = measure(args.n)
    if args.json:
        print(json.dumps(figures))
        return
    runs["this tree"] = figures
    print(f"webhook dispatch, {args.n} deliveries, in-process on PostgreSQL (per delivery)")
    for label, result in runs.items():
        for phase_name, f in result.items():
            print(f"  {label:<22} {phase_name:<9} cpu {f['cpu_ms_per_delivery']:>7.3f} ms  postgresql "
                  f"{f['postgresql_cpu_ms_per_delivery']:>6.3f} ms  statements {f['statements_per_delivery']:>6.2f}  "
                  f"commits {f['commits_per_delivery']:>6.3f}  ({f['wall_s']} s)")


if __name__ == "__main__":
    main()

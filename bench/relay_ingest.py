"""CPU and round trips of the outbox relay and of privacy's audit ingest, in-process, on PostgreSQL and RabbitMQ.

Starts no service. Each measurement runs in a child process (monkey-patched by eventlet, as the
services' processes are) on a fresh database and virtual host, dropped at the end:

- ``relay``: polls of the kernel's :class:`~upgestao_kernel.relay.OutboxRelay` (``publish_batch``) over
  an outbox holding the rows of SENDS_PER_POLL message sends (each: its event, a record of the body's
  sealing, a batch message of audit records: three rows), published with confirms and marked sent;
  and idle polls (an empty outbox);
- ``ingest``: privacy's ``ingest.store`` of parsed audit records into a migrated privacy database,
  in transactions of 3 records (what arrives at a steady rate) and of 1000 (a backlog); then the privacy
  relay's stream feeder (``StreamFeeder.feed_once``): a poll after 15 records were stored, and idle polls.

For each, per operation: round trips to PostgreSQL (every statement a cursor executes, raw cursors
included, each ``BEGIN`` psycopg2 sends before a transaction's first statement, each ``COMMIT`` and
``ROLLBACK`` of an open transaction), AMQP writes to the socket, this process's CPU (the mean and the
least of ten blocks) and the function calls of a few more operations (cProfile: a count the machine's
load does not change).

``--baseline REV`` first measures the kernel and privacy sources of git revision ``REV`` (extracted
to a temporary directory, put first on the child's path), then the working tree's, in the same run.

    .venv/bin/python bench/relay_ingest.py [--baseline REV] [N]   # N polls / stores of each (default 200)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENDS_PER_POLL = 5


def child(what: str, n: int) -> dict:
    import upgestao_kernel.green  # noqa: F401,I001  (first: eventlet monkey-patching, as in the services)

    import cProfile
    import pstats
    import time
    import uuid
    from collections import Counter
    from datetime import UTC, datetime

    import psycopg2.extensions
    import sqlalchemy as sa
    from upgestao_kernel.db import create_engine

    counts: Counter[str] = Counter()

    class CountingCursor(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # noqa: A002 - psycopg2's own name
            if not self.connection.autocommit and self.connection.status == psycopg2.extensions.STATUS_READY:
                counts["begin"] += 1
            counts["statements"] += 1
            return super().execute(query, vars)

        def executemany(self, query, vars_list):  # noqa: A002
            if not self.connection.autocommit and self.connection.status == psycopg2.extensions.STATUS_READY:
                counts["begin"] += 1
            counts["statements"] += 1
            return super().executemany(query, vars_list)

    class CountingConnection(psycopg2.extensions.connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.cursor_factory = CountingCursor

        def commit(self):
            if self.status != psycopg2.extensions.STATUS_READY:
                counts["commit"] += 1
            return super().commit()

        def rollback(self):
            if self.status != psycopg2.extensions.STATUS_READY:
                counts["rollback"] += 1
            return super().rollback()

    def counted_engine(url: str, pool_size: int):
        engine = create_engine(url, pool_size=pool_size)

        @sa.event.listens_for(engine, "do_connect")
        def _factory(dialect, conn_rec, cargs, cparams):
            cparams["connection_factory"] = CountingConnection

        return engine

    def measure(op, prepare, n: int) -> dict:
        """``prepare()`` (not measured) then ``op()``, n times; CPU of op only."""
        for _ in range(5):  # warm: statements compiled, connections open
            prepare()
            op()
        counts.clear()
        total, blocks = 0.0, []
        block = max(1, n // 10)
        for i in range(n):
            before = counts.copy()
            prepare()
            counts.clear()
            counts.update(before)  # the round trips of op only
            start = time.process_time()
            op()
            spent = time.process_time() - start
            total += spent
            if i % block == 0:
                blocks.append(0.0)
            blocks[-1] += spent
        trips = {k: v / n for k, v in counts.items()}
        profile = cProfile.Profile()
        calls = 0
        for _ in range(20):
            prepare()
            profile.enable()
            op()
            profile.disable()
        calls = sum(row[1] for row in pstats.Stats(profile).stats.values()) / 20
        if os.environ.get("BENCH_PROFILE"):  # the profile's top functions by own time, on stderr
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return {"round_trips": sum(trips.values()), **trips, "cpu_us": 1e6 * total / n,
                "cpu_us_least_block": 1e6 * min(b for b in blocks[:-1] or blocks) / block, "calls": calls}

    from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database

    tag = uuid.uuid4().hex[:8]
    db = f"h6_{what}_{tag}"
    url = create_database(db)
    out: dict = {}
    try:
        if what == "relay":
            from kombu import Connection
            from upgestao_kernel.audit import AuditEmitter
            from upgestao_kernel.context import RequestContext
            from upgestao_kernel.events import Actor, EventEnvelope
            from upgestao_kernel.outbox import enqueue_many, message_headers
            from upgestao_kernel.relay import OutboxRelay
            from upgestao_kernel.schema import kernel_metadata, outbox
            from upgestao_kernel.topology import audit_exchange, consumer_queue, events_exchange

            kernel_metadata.create_all(sa.create_engine(url))
            vhost = f"h6-relay-{tag}"
            amqp_uri = create_vhost(vhost)
            try:
                queue = f"h6.sink.{tag}"
                with Connection(amqp_uri) as conn:
                    channel = conn.default_channel
                    events_exchange("messaging")(channel).declare()
                    consumer_queue(queue, audit_exchange(), ["audit.#"])(channel).declare()
                    channel.queue_bind(queue, "messaging.events", "#")
                engine = counted_engine(url, 2)
                emitter = AuditEmitter("messaging")

                def rows_of_a_send() -> list[dict]:
                    context = RequestContext(request_id=uuid.uuid4().hex, actor_id=str(uuid.uuid4()),
                                             actor_role="attendant", source_ip="203.0.113.9")
                    subject = str(uuid.uuid4())
                    envelope = EventEnvelope(
                        event_id=str(uuid.uuid4()), stream_id=f"conversation-{subject}", version=7,
                        type="messaging.message_sent.v1", occurred_at=datetime.now(UTC),
                        actor=Actor(context.actor_id, "attendant"), correlation_id=context.request_id,
                        causation_id=context.request_id,
                        data={"message_id": str(uuid.uuid4()), "conversation_id": subject, "direction": "out",
                              "author_id": context.actor_id, "has_attachments": False})
                    sealed = emitter.build(context, action="create", resource_type="message",
                                           resource_id=str(uuid.uuid4()), subject_id=subject, fields=["body"],
                                           purpose="message sent")
                    pushed = [emitter.build(context, action="read", resource_type="message",
                                            resource_id=str(uuid.uuid4()), subject_id=subject, fields=["body"],
                                            purpose="live push") for _ in range(2)]
                    headers = message_headers(context)
                    return [{"message_id": envelope.event_id, "exchange": "messaging.events",
                             "routing_key": envelope.type, "body": envelope.to_message(), "headers": headers},
                            {"message_id": sealed.audit_id, "exchange": "audit",
                             "routing_key": "audit.messaging.create",
                             "body": sealed.to_message(), "headers": headers},
                            {"message_id": str(uuid.uuid4()), "exchange": "audit",
                             "routing_key": "audit.messaging.read",
                             "body": {"records": [r.to_message() for r in pushed]}, "headers": headers}]

                relay = OutboxRelay(engine, amqp_uri, services=["messaging"])
                writer = sa.create_engine(url)

                def fill() -> None:
                    with writer.begin() as conn:
                        enqueue_many(conn, [row for _ in range(SENDS_PER_POLL) for row in rows_of_a_send()])

                published = []
                out["poll"] = measure(lambda: published.append(relay.publish_batch()), fill, n)
                assert set(published) == {3 * SENDS_PER_POLL}, set(published)
                out["poll"]["rows"] = 3 * SENDS_PER_POLL
                out["per_row_cpu_us"] = out["poll"]["cpu_us"] / out["poll"]["rows"]
                out["idle_poll"] = measure(relay.publish_batch, lambda: None, n)
                with writer.connect() as conn:
                    assert conn.execute(sa.select(sa.func.count()).where(outbox.c.sent_at.is_(None))).scalar() == 0
                with Connection(amqp_uri) as conn:  # every row reached the queue, as JSON
                    message = conn.default_channel.basic_get(queue, no_ack=True)
                    json.loads(message.body)
                relay.close()
                engine.dispose()
                writer.dispose()
            finally:
                delete_vhost(vhost)
        else:
            from upgestao_kernel.audit import AuditEmitter
            from upgestao_kernel.context import RequestContext
            from upgestao_kernel.migrations import upgrade
            from upgestao_privacy.adapters.audit_store import sql_transactions
            from upgestao_privacy.domain.checkpoints import CheckpointSigner
            from upgestao_privacy.service_layer import ingest

            upgrade("upgestao_privacy:migrations", url)
            engine = counted_engine(url, 3)
            transaction = sql_transactions(engine)
            signer = CheckpointSigner(b"\x07" * 32)
            emitter = AuditEmitter("messaging")
            context = RequestContext(request_id=uuid.uuid4().hex, actor_id=str(uuid.uuid4()), actor_role="attendant",
                                     source_ip="203.0.113.9")

            def records(k: int) -> list[dict]:
                subject = str(uuid.uuid4())
                return [ingest.parse(emitter.build(context, action="read", resource_type="message",
                                                   resource_id=str(uuid.uuid4()), subject_id=subject,
                                                   fields=["body"], purpose="conversation view").to_message())
                        for _ in range(k)]

            for size, times in ((3, n), (1000, max(4, n // 20))):
                batch: list = []

                def prepare(size=size, batch=batch) -> None:
                    batch[:] = records(size)

                def op(batch=batch) -> None:
                    result = ingest.store(transaction, batch, signer, checkpoint_every=1000)
                    assert len(result.stored) == len(batch)

                key = f"store_{size}"
                out[key] = measure(op, prepare, times)
                out[key]["per_record_cpu_us"] = out[key]["cpu_us"] / size
            # the privacy relay's stream feeder: a poll after 15 records stored, and idle polls
            from upgestao_privacy.adapters.stream_feeder import StreamFeeder
            from upgestao_privacy.settings import AuditSettings

            vhost = f"h6-feeder-{tag}"
            amqp_uri = create_vhost(vhost)
            try:
                feeder = StreamFeeder(engine, amqp_uri, AuditSettings(signing_key=b"\x07" * 32, checkpoint_file=None))
                while feeder.feed_once():  # the records stored above
                    pass
                fed: list[int] = []

                def fifteen() -> None:
                    ingest.store(transaction, records(15), signer, checkpoint_every=1000)

                out["feed_15"] = measure(lambda: fed.append(feeder.feed_once()), fifteen, n)
                assert set(fed) == {15}, set(fed)
                while feeder.feed_once():  # (the checkpoints signed meanwhile)
                    pass
                out["feed_idle"] = measure(feeder.feed_once, lambda: None, n)
                feeder.publisher.close()
            finally:
                delete_vhost(vhost)
            with engine.connect() as conn:
                size, checkpoints = conn.execute(sa.text(
                    "SELECT (SELECT tree_size FROM audit_tree_head), (SELECT count(*) FROM audit_checkpoints)")).one()
                out["tree_size"], out["checkpoints"] = size, checkpoints
            engine.dispose()
    finally:
        drop_database(db)
    return out


def run_child(what: str, n: int, path_first: str | None) -> dict:
    env = dict(os.environ)
    if path_first:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path_first, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, "--child", what, str(n)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def extract(rev: str, into: str) -> str:
    """The kernel's and privacy's packages of ``rev``, side by side in ``into``: a path to put first."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "kernel/src", "services/privacy/src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    site = Path(into, "site")
    site.mkdir()
    for package in (Path(into, "kernel/src/upgestao_kernel"), Path(into, "services/privacy/src/upgestao_privacy")):
        package.rename(site / package.name)
    return str(site)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        print(json.dumps(child(args[1], int(args[2]))), flush=True)
        return
    baseline = None
    if args[:1] == ["--baseline"]:
        baseline, args = args[1], args[2:]
    n = int(args[0]) if args else 200
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(f"base {baseline}", extract(baseline, tmp))] if baseline else []
        runs.append(("head", None))
        for what in ("relay", "ingest"):
            for label, path in runs:
                print(what, label, json.dumps(run_child(what, n, path)), flush=True)


if __name__ == "__main__":
    main()

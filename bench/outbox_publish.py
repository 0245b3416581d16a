"""Scenario ``outbox_publish``: the kernel's outbox relay against a raw kombu
confirmed-publish loop, in the same process, on the same broker.

raw    N event envelopes published as the relay publishes them, without its database:
       the same AMQP messages (json, persistent, mandatory) on a channel in confirm
       mode, in batches of BENCH_RELAY_BATCH whose confirms are read once per batch
       (pipelined, as the relay does), to a topic exchange bound to a queue.
relay  N rows in the outbox of a fresh, migrated notifier database, then
       ``OutboxRelay.publish_batch()`` until the outbox is empty (select,
       publish with confirms, mark sent) -- what ``python -m <svc> relay`` does.
       Last, the same without the broker (every publish confirmed at once by a
       stand-in): the relay's own cost.

Each is run BENCH_REPEAT (3) times, interleaved; the median is reported.

    BENCH_OUTBOX_N         messages per measurement (10000)
    BENCH_REPEAT           repetitions (3)
    BENCH_QUEUE_TYPE       quorum (as the services' consumer queues) | classic
    BENCH_RELAY_BATCH      relay batch size (500, the relay's default)
    BENCH_OUTBOX_SQLITE    1: also measure the relay on SQLite (the local default); 0: skip
    BENCH_SETTLE_S         pause before each timed run, seconds (1)
    BENCH_EVENTLET         1: monkey-patch like the relay process does (default); 0: plain threads
"""

from __future__ import annotations

import os

if os.environ.get("BENCH_EVENTLET", "1") != "0":  # the relay command runs monkey-patched
    import warnings

    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import base64  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import psycopg2  # noqa: E402
from common import PG_ADMIN, bench_vhost, env_int, log, median, result, write_result  # noqa: E402
from kombu import Connection, Queue  # noqa: E402
from upgestao_kernel.consumers.publishing import wait_for_confirms  # noqa: E402
from upgestao_kernel.context import RequestContext  # noqa: E402
from upgestao_kernel.db import create_engine  # noqa: E402
from upgestao_kernel.events import Actor, EventEnvelope, new_id, utcnow  # noqa: E402
from upgestao_kernel.logging import configure_logging  # noqa: E402
from upgestao_kernel.migrations import upgrade  # noqa: E402
from upgestao_kernel.outbox import message_headers, unsent_count  # noqa: E402
from upgestao_kernel.relay import OutboxRelay  # noqa: E402
from upgestao_kernel.relay import _message as relay_message  # noqa: E402  (the very message the relay sends)
from upgestao_kernel.schema import outbox  # noqa: E402
from upgestao_kernel.topology import declare_publishing, events_exchange_name, topic_exchange  # noqa: E402

SCENARIO = "outbox_publish"
SERVICE = "notifier"
MIGRATIONS = "upgestao_notifier:migrations"
EVENT_TYPE = "notifier.notification_requested.v1"
RAW_EXCHANGE = "bench.raw.events"
TARGET_RATIO = 0.8
CONFIRM_TIMEOUT_S = 10.0  # as the relay's
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S") or 1.0)  # pause before each timed run


# -- messages ------------------------------------------------------------------


def make_messages(n: int) -> list[tuple[str, dict, dict]]:
    """(message_id, body, headers) like ``outbox.enqueue_event`` writes them."""
    messages = []
    for _ in range(n):
        request_id = new_id()
        context = RequestContext(
            request_id=request_id,
            actor_id=new_id(),
            actor_role="member",
            source_ip="10.0.0.12",
            correlation_id=request_id,
        )
        envelope = EventEnvelope(
            event_id=new_id(),
            stream_id=f"notification-{uuid.uuid4()}",
            version=1,
            type=EVENT_TYPE,
            occurred_at=utcnow(),
            actor=Actor(id=context.actor_id, role="member"),
            correlation_id=request_id,
            causation_id=None,
            data={
                "recipient_id": new_id(),
                "channel": "email",
                "template": "appointment_reminder",
                "locale": "pt-BR",
                # vault ciphertext of a personal value, as a real event carries it
                "recipient_address": "v1:" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode(),
            },
        )
        messages.append(
            (envelope.event_id, envelope.to_message(), message_headers(context, causation_id=envelope.event_id))
        )
    return messages


def _queue(name: str, exchange, queue_type: str) -> Queue:
    args = {"x-queue-type": queue_type} if queue_type == "quorum" else {}
    return Queue(name, exchange=exchange, routing_key="#", durable=True, queue_arguments=args)


def _drain_queue(amqp_uri: str, queue: Queue, expected: int) -> None:
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        count = queue(channel).queue_declare(passive=True).message_count
        queue(channel).purge()
    if count != expected:
        raise RuntimeError(f"queue {queue.name} held {count} messages, expected {expected}")


# -- raw kombu -------------------------------------------------------------------


def run_raw(amqp_uri: str, messages, queue_type: str, batch_size: int) -> float:
    """Publishing alone, pipelined like the relay: a batch of publishes, then its confirms at once."""
    exchange = topic_exchange(RAW_EXCHANGE)
    queue = _queue("bench.raw", exchange, queue_type)
    unconfirmed: set[int] = set()
    refused: list[int] = []

    def settle(tag: int, multiple: bool) -> set[int]:
        done = {t for t in unconfirmed if t <= tag} if multiple else {tag} & unconfirmed
        unconfirmed.difference_update(done)
        return done

    with Connection(amqp_uri) as conn:
        conn.ensure_connection(max_retries=3)
        channel = conn.channel()
        declare_publishing(channel)
        exchange(channel).declare()
        queue(channel).declare()
        channel.events["basic_ack"].add(settle)
        channel.events["basic_nack"].add(lambda tag, multiple: refused.extend(settle(tag, multiple)))
        channel.events["basic_return"].add(lambda exc, exchange, routing_key, message: refused.append(0))
        channel.confirm_select()
        tag = 0
        time.sleep(SETTLE_S)
        started = time.perf_counter()
        for start in range(0, len(messages), batch_size):
            for message_id, body, headers in messages[start : start + batch_size]:
                row = SimpleNamespace(message_id=message_id, body=body, headers=headers)
                channel.basic_publish(relay_message(row), exchange=RAW_EXCHANGE, routing_key=body["type"],
                                      mandatory=True)
                tag += 1
                unconfirmed.add(tag)
            wait_for_confirms(conn, unconfirmed, CONFIRM_TIMEOUT_S)
        elapsed = time.perf_counter() - started
    if refused:
        raise RuntimeError(f"the broker refused or returned {len(refused)} raw publishes")
    _drain_queue(amqp_uri, queue, len(messages))
    return len(messages) / elapsed


# -- the relay ------------------------------------------------------------------


def _postgres_database() -> tuple[str, Callable[[], None]]:
    name = f"bench_outbox_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.get_dsn_parameters()
    user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
    url = f"postgresql+psycopg2://{user}@{host}:{port}/{name}"

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return url, drop


def _sqlite_database() -> tuple[str, Callable[[], None]]:
    tmp = tempfile.TemporaryDirectory(prefix="upgestao-bench-")
    return f"sqlite:///{Path(tmp.name) / 'notifier.sqlite3'}", tmp.cleanup


class _BrokerStandIn:
    """Stands in for the relay's connection and channel to time everything but the broker: a publish
    goes nowhere, and reading the confirms acknowledges every publish so far at once."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay

    def basic_publish(self, *args, **kwargs) -> None:
        pass

    def drain_events(self, timeout: float | None = None) -> None:
        self.relay._on_ack(self.relay._delivery_tag, True)

    def release(self) -> None:
        pass

    collect = release


def run_relay(amqp_uri: str, messages, queue_type: str, database: str, batch_size: int, broker: bool = True) -> float:
    url, cleanup = _postgres_database() if database == "postgresql" else _sqlite_database()
    engine = None
    try:
        upgrade(MIGRATIONS, url)
        engine = create_engine(url, pool_size=2)
        exchange_name = events_exchange_name(SERVICE)
        now = utcnow()
        rows = [
            {
                "message_id": mid,
                "exchange": exchange_name,
                "routing_key": body["type"],
                "body": body,
                "headers": headers,
                "created_at": now,
            }
            for mid, body, headers in messages
        ]
        with engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(outbox.insert(), rows[start : start + 1000])
        # The consumer side exists before the relay runs, as in the platform.
        queue = _queue("bench.relay", topic_exchange(exchange_name), queue_type)
        with Connection(amqp_uri) as conn:
            channel = conn.channel()
            declare_publishing(channel, [SERVICE])
            queue(channel).declare()

        relay = OutboxRelay(engine, amqp_uri, services=[SERVICE], batch_size=batch_size)
        if not broker:  # the relay's private connection and channel, but this is a benchmark
            relay._connection = relay._channel = _BrokerStandIn(relay)
        time.sleep(SETTLE_S)
        started = time.perf_counter()
        published = 0
        while True:  # upgestao_kernel.relay.drain, without its timeout
            n = relay.publish_batch()
            published += n
            if n == 0:
                break
        elapsed = time.perf_counter() - started
        relay.close()
        with engine.connect() as conn:
            left = unsent_count(conn)
        if published != len(messages) or left:
            raise RuntimeError(f"relay published {published} of {len(messages)}; {left} left unsent")
        _drain_queue(amqp_uri, queue, len(messages) if broker else 0)
        return len(messages) / elapsed
    finally:
        if engine is not None:
            engine.dispose()
        cleanup()


# -- scenario -------------------------------------------------------------------


def run() -> dict:
    n = env_int("BENCH_OUTBOX_N", 10_000)
    repeat = env_int("BENCH_REPEAT", 3)
    queue_type = os.environ.get("BENCH_QUEUE_TYPE") or "quorum"
    batch_size = env_int("BENCH_RELAY_BATCH", 500)
    databases = ["postgresql"] + (["sqlite"] if os.environ.get("BENCH_OUTBOX_SQLITE", "1") != "0" else [])
    configure_logging("bench", "WARNING")

    messages = make_messages(n)
    body_bytes = sum(len(json.dumps(body)) for _, body, _ in messages) / n
    header_bytes = sum(len(json.dumps(headers)) for _, _, headers in messages) / n
    log(f"{n} messages, JSON body {body_bytes:.0f} bytes on average, {repeat} repetitions, {queue_type} queues")

    kinds = ["raw", *databases]
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    with bench_vhost() as amqp_uri:
        for rep in range(repeat):
            for kind in kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]:  # rotate the order
                if kind == "raw":
                    rate = run_raw(amqp_uri, messages, queue_type, batch_size)
                else:
                    rate = run_relay(amqp_uri, messages, queue_type, kind, batch_size)
                samples[kind].append(rate)
                log(f"run {rep + 1}: {'raw kombu' if kind == 'raw' else f'relay ({kind})':<20} {rate:8.0f} msgs/s")
        # What the relay costs without the broker (the publish replaced by a no-op).
        no_broker = median(
            [run_relay(amqp_uri, messages, queue_type, "postgresql", batch_size, broker=False) for _ in range(repeat)]
        )
        log(f"relay (postgresql) without the broker: {no_broker:8.0f} msgs/s")

    raw = median(samples["raw"])
    figures = {
        f"relay_{d}": {"msgs_per_s": round(median(samples[d]), 1), "samples": [round(x, 1) for x in samples[d]]}
        for d in databases
    }
    figures["relay_postgresql_without_broker"] = {
        "msgs_per_s": round(no_broker, 1),
        "note": "publish replaced by a no-op: the relay's own cost (select, JSON, mark sent)",
    }
    ratios = {f"relay_{d}/raw": round(median(samples[d]) / raw, 3) for d in databases}
    # If the relay's own cost simply added to the raw publish cost per message:
    ratios["expected_relay_postgresql/raw"] = round((1 / raw) / (1 / raw + 1 / no_broker), 3)
    return result(
        SCENARIO,
        parameters={
            "messages": n,
            "repetitions": repeat,
            "statistic": "median",
            "body_bytes_avg": round(body_bytes),
            "headers_bytes_avg": round(header_bytes),
            "queue_type": queue_type,
            "relay_batch_size": batch_size,
            "publish": "basic_publish on a channel in confirm mode, json, delivery_mode=2, mandatory; "
                       "the confirms of each batch of relay_batch_size read at once (raw and relay alike)",
            "eventlet_monkey_patched": os.environ.get("BENCH_EVENTLET", "1") != "0",
            "databases": databases,
        },
        figures=figures,
        baseline={"raw_kombu": {"msgs_per_s": round(raw, 1), "samples": [round(x, 1) for x in samples["raw"]]}},
        ratios={**ratios, "target": TARGET_RATIO, "meets_target": ratios["relay_postgresql/raw"] >= TARGET_RATIO},
    )


if __name__ == "__main__":
    path = write_result(run())
    log(f"wrote {path}")

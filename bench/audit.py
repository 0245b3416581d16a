"""Scenario ``audit``: the privacy service's audit log -- ingest rate, and query,
proof and verification times on a log of a million records.

1. Ingest (BENCH_REPEAT runs of each, interleaved; the median is reported):

   ingest       the real privacy service processes (``python -m upgestao_privacy
                run``, and ``relay``, which feeds the audit stream meanwhile,
                on the same cores) on a fresh vhost and a fresh, migrated PostgreSQL
                database, started after N wire-form audit records (identity's
                actions and fields, random ids, ~5,000 subjects, ~500 actors)
                were published to the ``audit`` exchange into its declared
                ingest queue. The rate is the records stored between the first
                poll of ``audit_tree_head`` (every 50 ms) that sees any and the
                one that sees all N, over that time: start-up is excluded.
   raw_consume  baseline: the same N messages in a fresh quorum queue, consumed
                by a plain py-amqp loop like the ingest's (prefetch 4000, an ack
                with multiple=True every 1000), minus parsing, storing, hashing.
   raw_insert   baseline: the N rows the ingest writes (leaf text included)
                inserted into ``CREATE TABLE ... (LIKE audit_records INCLUDING
                ALL)`` in the same database, 1000 rows per transaction, psycopg2
                ``execute_values`` (as the ingest inserts): the ingest's INSERT
                minus tree nodes, head, dedupe and checkpoints.

   Target: ingest >= 5,000 records/s.

2. A log of BENCH_AUDIT_RECORDS records (~100,000 subjects, Zipf-like, over
   90 days in seq order) is loaded with COPY into a fresh, migrated database:
   leaves, leaf hashes and tree nodes from the service's own domain code, a
   signed checkpoint every 1,000 records, the head row; then VACUUM ANALYZE.
   Measured in this process, through the service layer (``AuditQueries`` with a
   UnitOfWork in the system context: each query writes its own ``audit_query``
   record to the outbox and commits, as in production), interleaved:

   search       ``search({"subject_id": s}, 50)``, s uniform over the loaded
                subjects; target p99 <= 20 ms
   proof        ``inclusion_proof(seq, N)``, seq uniform; target p99 <= 5 ms
   pk_lookup    baseline: ``SELECT leaf FROM audit_records WHERE seq = :s``
                on the same engine
   verify       a full export (``export_start`` + ``export_records`` pages of
                1,000, one JSON object per line as the gateway streams it) to a
                temp file, then ``verify_export`` on it (must be ok); target
                <= 60 s. Baseline ``parse_hash``: the same file read line by
                line with ``json.loads`` + ``hashlib.sha256`` of each line.

Everything (vhosts, databases, temp files) is deleted afterwards.

    BENCH_AUDIT_INGEST_N      records per ingest measurement (50000)
    BENCH_REPEAT              repetitions of the ingest measurements (3)
    BENCH_AUDIT_RECORDS       records of the loaded log (1000000)
    BENCH_AUDIT_SUBJECTS      distinct subjects of the loaded log, at most (100000)
    BENCH_AUDIT_ITERATIONS    timed iterations of search, proof and pk_lookup (1000)
    BENCH_AUDIT_WARMUP        untimed iterations of each before (200)
    BENCH_AUDIT_VERIFY_REPEAT verification and parse_hash runs, interleaved (1)
    BENCH_AUDIT_PARTS         ingest,queries (both; either one alone)
    BENCH_AUDIT_PROFILE       a path: one extra ingest run (not in the figures)
                              under ``py-spy record`` (.svg flame graph,
                              .json speedscope, anything else raw collapsed stacks)
    BENCH_AUDIT_TIMEOUT_S     an ingest run making no progress this long fails (120)
    BENCH_AUDIT_RELAY         0: ingest without the relay process (no audit stream fed meanwhile) (1)
    BENCH_SETTLE_S            pause before each timed baseline run, seconds (1)
    BENCH_SEED                random seed of the generated records (1)
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import csv  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import amqp  # noqa: E402
import psycopg2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from common import PG_ADMIN, bench_vhost, env_int, log, median, percentile, ratio, result, write_result  # noqa: E402
from kombu import Connection  # noqa: E402
from upgestao_kernel.audit import AuditRecord  # noqa: E402
from upgestao_kernel.context import RequestContext, system_context  # noqa: E402
from upgestao_kernel.db import create_engine  # noqa: E402
from upgestao_kernel.logging import configure_logging  # noqa: E402
from upgestao_kernel.migrations import upgrade  # noqa: E402
from upgestao_kernel.outbox import message_headers  # noqa: E402
from upgestao_kernel.testing import service_amqp_uri  # noqa: E402
from upgestao_kernel.topology import AUDIT_EXCHANGE, audit_routing_key, consumer_queue, topic_exchange  # noqa: E402
from upgestao_kernel.unit_of_work import UnitOfWork  # noqa: E402
from upgestao_kernel.user_id_stamp import install_user_id_stamp  # noqa: E402
from upgestao_privacy.adapters.audit_store import RECORD_COLUMNS, with_sql_audit_log  # noqa: E402
from upgestao_privacy.adapters.tables import node_id  # noqa: E402
from upgestao_privacy.domain.checkpoints import CheckpointSigner  # noqa: E402
from upgestao_privacy.domain.leaves import leaf_for  # noqa: E402
from upgestao_privacy.domain.merkle import Frontier, leaf_hash  # noqa: E402
from upgestao_privacy.domain.verification import verify_export  # noqa: E402
from upgestao_privacy.entrypoints.audit_log import BATCH_WAIT_S, INGEST_QUEUE, declare_ingest  # noqa: E402
from upgestao_privacy.service_layer import ingest  # noqa: E402
from upgestao_privacy.service_layer.audit_queries import EXPORT_PAGE_MAX, AuditQueries  # noqa: E402
from upgestao_privacy.settings import AuditSettings  # noqa: E402

SCENARIO = "audit"
SERVICE = "privacy"
MIGRATIONS = "upgestao_privacy:migrations"
INGEST_BATCH = AuditSettings.ingest_batch  # 1000 records per ingest transaction (the service's default)
INGEST_PREFETCH = AuditSettings.ingest_prefetch  # 4000
CHECKPOINT_EVERY = AuditSettings.checkpoint_every  # 1000
RAW_EXCHANGE = "bench.audit.raw"
RAW_QUEUE = "bench.audit.raw"
RAW_TABLE = "bench_raw_records"
POLL_S = 0.05
STOP_GRACE_S = 15.0
SEARCH_LIMIT = 50
INGEST_SUBJECTS, ACTORS = 5_000, 500
WITH_RELAY = os.environ.get("BENCH_AUDIT_RELAY", "1") != "0"
TARGETS = {"ingest_records_per_s >=": 5000, "search_p99_ms <=": 20, "proof_p99_ms <=": 5, "verify_s <=": 60}
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S") or 1.0)
TIMEOUT_S = float(os.environ.get("BENCH_AUDIT_TIMEOUT_S") or 120.0)


# -- the records ------------------------------------------------------------------------
#
# What identity writes (its service layer: users, customers, sessions, credentials),
# weighted like a working day: mostly customer and staff reads and lists.

USER_FIELDS = ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender")
CUSTOMER_FIELDS = ("full_name", "email", "phone", "birth_date", "address", "gender")
MIX = (  # weight, action, resource_type, fields, purpose, outcome, has a subject, actor signed in
    (18, "read", "customer", CUSTOMER_FIELDS, "customer service", "success", True, True),
    (20, "list", "customer", CUSTOMER_FIELDS, "customer list", "success", True, True),
    (6, "list", "customer", CUSTOMER_FIELDS, "customer search", "success", True, True),
    (8, "read", "user", USER_FIELDS, "staff profile shown to an authorised user", "success", True, True),
    (8, "list", "user", USER_FIELDS, "staff directory", "success", True, True),
    (12, "login", "session", (), "login", "success", True, False),
    (2, "login", "session", (), "login (wrong e-mail or password)", "failure", False, False),
    (4, "logout", "session", (), "logout", "success", True, True),
    (5, "update", "customer", ("phone", "address"), "customer record maintenance", "success", True, True),
    (3, "create", "customer", CUSTOMER_FIELDS, "customer registration", "success", True, True),
    (2, "update", "user", ("phone",), "own profile edit", "success", True, True),
    (
        1,
        "update",
        "user",
        ("job_title",),
        "own profile edit outside the role's self-editable fields",
        "denied",
        True,
        True,
    ),
    (2, "update", "credential", ("password",), "password change", "success", True, True),
    (1, "update", "credential", (), "password reset requested", "success", True, False),
    (2, "list", "session", (), "sessions", "success", True, True),
    (2, "read", "user", ("photo",), "profile photo shown", "success", True, True),
    (1, "read", "customer", ("full_name", "email", "phone"), "customer service", "denied", True, True),
)
MIX_CUM = [sum(m[0] for m in MIX[: i + 1]) for i in range(len(MIX))]
ROLES = ("attendant",) * 6 + ("supervisor",) * 2 + ("admin", "dpo")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Population:
    subjects: list[str]
    subject_cum: list[float] | None  # cumulative weights (None: uniform)
    actors: list[tuple[str, str]]
    addresses: list[str]

    @classmethod
    def make(cls, rng: random.Random, subjects: int, actors: int, zipf_s: float | None = None) -> Population:
        cum = None
        if zipf_s is not None:
            total, cum = 0.0, []
            for rank in range(1, subjects + 1):
                total += 1.0 / rank**zipf_s
                cum.append(total)
        return cls(
            subjects=[_uuid(rng) for _ in range(subjects)],
            subject_cum=cum,
            actors=[(_uuid(rng), rng.choice(ROLES)) for _ in range(actors)],
            addresses=[f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(300)],
        )


def make_records(
    rng: random.Random, pop: Population, n: int, start: datetime, step: timedelta
) -> Iterator[AuditRecord]:
    """``n`` audit records as identity would emit them, ``occurred_at`` increasing by ``step``."""
    kinds = rng.choices(MIX, cum_weights=MIX_CUM, k=n)
    subjects = rng.choices(pop.subjects, cum_weights=pop.subject_cum, k=n)
    for i in range(n):
        _w, action, resource_type, fields, purpose, outcome, has_subject, signed_in = kinds[i]
        subject = subjects[i] if has_subject else None
        actor_id, actor_role = pop.actors[rng.randrange(len(pop.actors))] if signed_in else (None, None)
        if resource_type == "session":
            resource_id = _uuid(rng) if outcome == "success" else None
        else:
            resource_id = subject
        yield AuditRecord(
            service="identity",
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            subject_id=subject,
            fields=fields,
            purpose=purpose,
            actor_id=actor_id,
            actor_role=actor_role,
            request_id=_uuid(rng),
            source_ip=pop.addresses[rng.randrange(len(pop.addresses))],
            outcome=outcome,
            audit_id=_uuid(rng),
            occurred_at=start + step * i,
        )


def stored_form(record: AuditRecord) -> dict:
    """What ``ingest.parse`` makes of ``record.to_message()`` (checked on a sample: ``check_stored_form``)."""
    stored = record.to_message()
    stored["occurred_at"] = record.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    stored["fields"] = sorted(set(stored["fields"]))
    return stored


def check_stored_form(records: Sequence[AuditRecord]) -> None:
    for record in records:
        parsed = ingest.parse(json.loads(json.dumps(record.to_message())))
        if parsed != stored_form(record):
            raise RuntimeError(f"stored_form differs from ingest.parse: {parsed} != {stored_form(record)}")


def store_row(stored: dict, seq: int, now: datetime) -> dict:
    """The ``audit_records`` row ``audit_store.append`` writes for ``stored`` at ``seq``."""
    return {
        "seq": seq,
        "audit_id": stored["audit_id"],
        "occurred_at": datetime.fromisoformat(stored["occurred_at"]),
        "service": stored["service"],
        "action": stored["action"],
        "resource_type": stored["resource_type"],
        "subject_id": stored["subject_id"],
        "actor_id": stored["actor_id"],
        "request_id": stored["request_id"],
        "outcome": stored["outcome"],
        "leaf": leaf_for(stored, seq).decode("utf-8"),
        "stored_at": now,
    }


@dataclass
class Wire:
    """A record as the outbox relay publishes it."""

    body: bytes
    properties: dict
    routing_key: str


def wire(record: AuditRecord) -> Wire:
    context = RequestContext(
        request_id=record.request_id,
        actor_id=record.actor_id,
        actor_role=record.actor_role,
        source_ip=record.source_ip,
        correlation_id=record.request_id,
    )
    return Wire(
        body=json.dumps(record.to_message(), separators=(",", ":")).encode("utf-8"),
        properties={
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "delivery_mode": 2,
            "message_id": record.audit_id,
            "application_headers": message_headers(context),
        },
        routing_key=audit_routing_key(record.service, record.action),
    )


# -- infrastructure -------------------------------------------------------------------------


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated privacy database (dropped afterwards); yields its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = admin.get_dsn_parameters()
            user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
            url = f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
            upgrade(MIGRATIONS, url)
            yield url
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def psycopg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def publish(amqp_uri: str, exchange: str, messages: Sequence[Wire]) -> float:
    """Publish with pipelined confirms (all acked before returning); msgs/s."""
    with Connection(amqp_uri) as conn:
        conn.connect()
        channel = conn.channel()
        state = {"acked": 0, "nacked": 0}

        def on_ack(tag: int, multiple: bool) -> None:
            state["acked"] = max(state["acked"], tag)

        def on_nack(tag: int, multiple: bool) -> None:
            state["nacked"] += 1

        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)
        channel.confirm_select()
        started = time.perf_counter()
        for i, m in enumerate(messages, 1):
            channel.basic_publish(amqp.Message(m.body, **m.properties), exchange=exchange, routing_key=m.routing_key)
            if i % 1000 == 0:  # read the confirms that arrived, so they never pile up
                _drain(conn, 0.0005)
        deadline = time.monotonic() + 60
        while state["acked"] < len(messages) and not state["nacked"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(messages) - state['acked']} publishes not confirmed in 60 s")
            _drain(conn, 1.0)
        elapsed = time.perf_counter() - started
        if state["nacked"]:
            raise RuntimeError("the broker refused (nacked) published audit records")
    return len(messages) / elapsed


def _drain(conn, timeout: float) -> None:
    try:
        while True:
            conn.drain_events(timeout=timeout)
    except TimeoutError:
        pass


def queue_depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as conn:
        return conn.channel().queue_declare(queue=queue, passive=True).message_count


def wait_depth(amqp_uri: str, queue: str, expected: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (depth := queue_depth(amqp_uri, queue)) != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"queue {queue} holds {depth} messages, expected {expected}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# -- 1. ingest --------------------------------------------------------------------------------


def run_ingest(amqp_uri: str, url: str, messages: Sequence[Wire], profile: str | None = None) -> dict:
    n = len(messages)
    with Connection(amqp_uri) as conn:
        declare_ingest(conn.default_channel)
    # as identity's broker user, with the user_id RabbitMQ checks: the ingest stores a record only when its
    # ``service`` is its sender's (every record here says identity)
    install_user_id_stamp()
    publish_rate = publish(service_amqp_uri(amqp_uri, "identity"), AUDIT_EXCHANGE, messages)
    wait_depth(amqp_uri, INGEST_QUEUE, n)

    work = Path(tempfile.mkdtemp(prefix="upgestao-bench-audit-"))
    proc = spy = relay = None
    db = psycopg2.connect(psycopg_dsn(url))
    db.autocommit = True
    try:
        env = {
            **os.environ,
            "UPGESTAO_ENV": "test",
            "AMQP_URI": amqp_uri,
            "PRIVACY_DATABASE_URL": url,
            "UPGESTAO_DATA_DIR": str(work / "data"),
            "UPGESTAO_LOG_LEVEL": "WARNING",
        }
        with open(work / "privacy.log", "wb") as logfile:
            spawned = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "upgestao_privacy", "run"],
                env=env,
                cwd=work,
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )
        with open(work / "privacy-relay.log", "wb") as logfile:  # it feeds the audit stream, as in production
            relay = None if not WITH_RELAY else subprocess.Popen(
                [sys.executable, "-m", "upgestao_privacy", "relay"], env=env, cwd=work, stdout=logfile,
                stderr=subprocess.STDOUT)
        if profile:
            spy = _start_py_spy(proc.pid, profile)

        def size() -> int:
            with db.cursor() as cur:
                cur.execute("SELECT tree_size FROM audit_tree_head")
                return cur.fetchone()[0]

        first = last = None
        progress_at, last_size = time.monotonic(), 0
        while True:
            polled = time.perf_counter()
            current = size()
            if current > 0 and first is None:
                first = (polled, current, cpu_seconds(proc.pid), machine_busy())
            if current >= n:
                last = (polled, current, cpu_seconds(proc.pid), machine_busy())
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the privacy process exited ({proc.returncode}):\n{_tail(work / 'privacy.log')}")
            if current != last_size:
                progress_at, last_size = time.monotonic(), current
            elif time.monotonic() - progress_at > TIMEOUT_S:
                raise RuntimeError(
                    f"no ingest progress for {TIMEOUT_S:.0f} s at {current} of {n} records:\n"
                    f"{_tail(work / 'privacy.log')}"
                )
            time.sleep(max(0.0, POLL_S - (time.perf_counter() - polled)))
        if spy is not None:
            _stop_py_spy(spy)
            spy = None
        stream_lag = None
        if relay is not None:  # the audit stream must hold every record too: how far behind was it?
            deadline = time.perf_counter() + TIMEOUT_S
            while True:
                with db.cursor() as cur:
                    cur.execute("SELECT next_seq FROM audit_stream_position")
                    if cur.fetchone()[0] >= n:
                        stream_lag = time.perf_counter() - last[0]
                        break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"the audit stream did not catch up within {TIMEOUT_S:.0f} s:\n"
                                       f"{_tail(work / 'privacy-relay.log')}")
                time.sleep(POLL_S)

        with db.cursor() as cur:
            cur.execute("SELECT count(*), min(seq), max(seq), count(DISTINCT audit_id) FROM audit_records")
            count, low, high, distinct = cur.fetchone()
            cur.execute("SELECT count(*), max(tree_size) FROM audit_checkpoints")
            checkpoints, latest = cur.fetchone()
        if (count, low, high, distinct) != (n, 0, n - 1, n) or not checkpoints:
            raise RuntimeError(
                f"the log holds {count} records, seqs {low}..{high}, {distinct} distinct ids, "
                f"{checkpoints} checkpoints; expected {n}, 0..{n - 1}, and a checkpoint"
            )
        elapsed = last[0] - first[0]
        busy = (last[3][0] - first[3][0]) / max(1, last[3][1] - first[3][1])
        return {
            "records_per_s": (n - first[1]) / elapsed if elapsed > 0 else float("nan"),
            "publish_msgs_per_s": publish_rate,
            "startup_s": first[0] - spawned,
            "first_poll_records": first[1],
            "privacy_cpu_cores": (last[2] - first[2]) / elapsed if elapsed > 0 else float("nan"),
            "machine_cpu_busy": busy,
            "checkpoints": checkpoints,
            "latest_checkpoint": latest,
            "stream_caught_up_s_after": stream_lag,  # None: run without the relay (BENCH_AUDIT_RELAY=0)
        }
    finally:
        if spy is not None:
            _stop_py_spy(spy)
        if proc is not None:
            _stop(proc)
        if relay is not None:
            _stop(relay)
        db.close()
        shutil.rmtree(work, ignore_errors=True)


def _seconds(value: float | None) -> str:
    return "(no relay)" if value is None else f"{value:.2f} s"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log("the privacy process ignored SIGTERM for 15 s: killed")
            proc.kill()
            proc.wait()


def _start_py_spy(pid: int, path: str) -> subprocess.Popen:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("BENCH_AUDIT_PROFILE needs py-spy (pip install py-spy into the venv)")
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(path).suffix, "raw")
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "100", "--format", fmt, "--output", path, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_py_spy(spy: subprocess.Popen) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def run_raw_consume(amqp_uri: str, messages: Sequence[Wire]) -> float:
    """What the ingest loop does with the broker, and nothing else; msgs/s (first batch excluded, like start-up)."""
    n = len(messages)
    queue = consumer_queue(RAW_QUEUE, topic_exchange(RAW_EXCHANGE), ["audit.#"])  # as ``ingest_queue()``
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        topic_exchange(RAW_EXCHANGE)(channel).declare()
        queue(channel).declare()
    publish(amqp_uri, RAW_EXCHANGE, messages)
    wait_depth(amqp_uri, RAW_QUEUE, n)
    time.sleep(SETTLE_S)
    with Connection(amqp_uri) as conn:
        conn.connect()
        channel = conn.channel()
        pending: list = []
        channel.basic_qos(0, INGEST_PREFETCH, False)
        channel.basic_consume(RAW_QUEUE, callback=pending.append, no_ack=False)
        acked, first = 0, None
        idle_since = time.monotonic()
        while acked < n:
            try:
                conn.drain_events(timeout=BATCH_WAIT_S if pending else 0.5)
                if len(pending) < INGEST_BATCH:
                    continue
            except TimeoutError:
                if not pending:
                    if time.monotonic() - idle_since > TIMEOUT_S:
                        raise RuntimeError(f"raw consumer stalled at {acked} of {n}") from None
                    continue
            channel.basic_ack(pending[-1].delivery_tag, multiple=True)
            acked += len(pending)
            pending.clear()
            idle_since = time.monotonic()
            if first is None:
                first = (time.perf_counter(), acked)
        last = time.perf_counter()
    wait_depth(amqp_uri, RAW_QUEUE, 0)
    return (n - first[1]) / (last - first[0]) if last > first[0] else float("nan")


def run_raw_insert(url: str, rows: Sequence[dict]) -> float:
    """The ingest's INSERT alone (psycopg2 ``execute_values``, as the ingest does); rows/s."""
    from psycopg2.extras import execute_values

    tuples = [tuple(row[column] for column in RECORD_COLUMNS) for row in rows]
    statement = f"INSERT INTO {RAW_TABLE} ({', '.join(RECORD_COLUMNS)}) VALUES %s"
    db = psycopg2.connect(psycopg_dsn(url))
    try:
        with db, db.cursor() as cur:
            cur.execute(f"CREATE TABLE {RAW_TABLE} (LIKE audit_records INCLUDING ALL)")
        time.sleep(SETTLE_S)
        started = time.perf_counter()
        for start in range(0, len(tuples), INGEST_BATCH):
            with db, db.cursor() as cur:
                execute_values(cur, statement, tuples[start : start + INGEST_BATCH], page_size=INGEST_BATCH)
        elapsed = time.perf_counter() - started
        with db, db.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {RAW_TABLE}")
            count = cur.fetchone()[0]
            cur.execute(f"DROP TABLE {RAW_TABLE}")
        if count != len(rows):
            raise RuntimeError(f"{RAW_TABLE} holds {count} rows, expected {len(rows)}")
        return len(rows) / elapsed
    finally:
        db.close()


def part_ingest(n: int, repeat: int, seed: int) -> dict:
    rng = random.Random(seed)
    pop = Population.make(rng, INGEST_SUBJECTS, ACTORS)
    records = list(make_records(rng, pop, n, datetime.now(UTC) - timedelta(minutes=10), timedelta(milliseconds=5)))
    check_stored_form(records[:500])
    messages = [wire(r) for r in records]
    now = datetime.now(UTC)
    rows = [store_row(stored_form(r), seq, now) for seq, r in enumerate(records)]
    body_bytes = sum(len(m.body) for m in messages) / n
    leaf_bytes = sum(len(r["leaf"]) for r in rows) / n
    subjects = len({r.subject_id for r in records if r.subject_id})
    log(f"ingest: {n} records, JSON body {body_bytes:.0f} bytes on average, {subjects} subjects, {repeat} repetitions")

    kinds = ["ingest", "raw_consume", "raw_insert"]
    samples: dict[str, list] = {kind: [] for kind in kinds}
    for rep in range(repeat):
        with postgres_database("bench_audit_ingest") as url:
            for kind in kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]:  # rotate the order
                with bench_vhost() as amqp_uri:
                    if kind == "ingest":
                        got = run_ingest(amqp_uri, url, messages)
                        samples[kind].append(got)
                        log(
                            f"run {rep + 1}: ingest        {got['records_per_s']:8.0f} records/s "
                            f"(privacy process {got['privacy_cpu_cores']:.2f} cores, machine "
                            f"{100 * got['machine_cpu_busy']:.0f}% busy; start-up {got['startup_s']:.1f} s; "
                            f"stream caught up {_seconds(got['stream_caught_up_s_after'])} after)"
                        )
                    elif kind == "raw_consume":
                        rate = run_raw_consume(amqp_uri, messages)
                        samples[kind].append(rate)
                        log(f"run {rep + 1}: raw consume   {rate:8.0f} msgs/s")
                    else:
                        rate = run_raw_insert(url, rows)
                        samples[kind].append(rate)
                        log(f"run {rep + 1}: raw insert    {rate:8.0f} rows/s")

    profile = os.environ.get("BENCH_AUDIT_PROFILE")
    if profile:
        with postgres_database("bench_audit_ingest") as url, bench_vhost() as amqp_uri:
            got = run_ingest(amqp_uri, url, messages, profile=str(Path(profile).resolve()))
        log(f"profiled ingest (py-spy attached, not in the figures): {got['records_per_s']:.0f} records/s -> {profile}")

    ingest_rates = [s["records_per_s"] for s in samples["ingest"]]
    rate, consume, insert = median(ingest_rates), median(samples["raw_consume"]), median(samples["raw_insert"])
    serial = 1 / (1 / consume + 1 / insert)
    return {
        "parameters": {
            "records": n,
            "repetitions": repeat,
            "statistic": "median",
            "subjects": subjects,
            "actors": ACTORS,
            "body_bytes_avg": round(body_bytes),
            "leaf_bytes_avg": round(leaf_bytes),
            "batch": INGEST_BATCH,
            "prefetch": INGEST_PREFETCH,
            "checkpoint_every": CHECKPOINT_EVERY,
            "poll_interval_s": POLL_S,
            "publish": "py-amqp basic_publish, pipelined confirms, json, delivery_mode=2, before the service starts",
            "queue": "quorum (privacy.audit-ingest as declared by declare_ingest)",
            "profiled_run": profile or None,
        },
        "figures": {
            "records_per_s": round(rate, 1),
            "samples": [round(x, 1) for x in ingest_rates],
            "publish_msgs_per_s": round(median([s["publish_msgs_per_s"] for s in samples["ingest"]]), 1),
            "startup_s": round(median([s["startup_s"] for s in samples["ingest"]]), 2),
            "privacy_cpu_cores": round(median([s["privacy_cpu_cores"] for s in samples["ingest"]]), 3),
            "machine_cpu_busy": round(median([s["machine_cpu_busy"] for s in samples["ingest"]]), 3),
            "checkpoints": samples["ingest"][0]["checkpoints"],
        },
        "baseline": {
            "raw_consume": {"msgs_per_s": round(consume, 1), "samples": [round(x, 1) for x in samples["raw_consume"]]},
            "raw_insert": {"rows_per_s": round(insert, 1), "samples": [round(x, 1) for x in samples["raw_insert"]]},
            "serial_consume_then_insert": {
                "per_s": round(serial, 1),
                "note": "1 / (1/raw_consume + 1/raw_insert): both baselines' costs added per record",
            },
        },
        "ratios": {
            "ingest/raw_consume": ratio(rate, consume),
            "ingest/raw_insert": ratio(rate, insert),
            "ingest/serial_consume_then_insert": ratio(rate, serial),
        },
        "meets": {"ingest_records_per_s": rate >= TARGETS["ingest_records_per_s >="]},
    }


# -- 2. a million records ------------------------------------------------------------------


def load_log(url: str, n: int, subjects: int, seed: int, signer: CheckpointSigner) -> dict:
    """Fill the migrated database at ``url`` with ``n`` records as the ingest would have stored them."""
    rng = random.Random(seed + 1)
    pop = Population.make(rng, subjects, ACTORS, zipf_s=0.9)
    span = timedelta(days=90)
    start = datetime.now(UTC) - span - timedelta(hours=1)
    step = span / n
    delay = timedelta(milliseconds=150)  # stored_at: when the ingest would have stored it
    frontier = Frontier()
    checkpoints: list = []
    used: set[str] = set()
    chunk = 20_000
    nodes_total = 0
    started = time.perf_counter()
    check_stored_form(list(make_records(random.Random(seed + 2), pop, 200, start, step)))
    records = make_records(rng, pop, n, start, step)
    conn = psycopg2.connect(psycopg_dsn(url))

    def copy(records_csv: str, nodes_csv: str) -> None:
        with conn.cursor() as cur:
            cur.copy_expert(
                f"COPY audit_records ({', '.join(RECORD_COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
                io.StringIO(records_csv),
            )
            cur.copy_expert(
                "COPY audit_tree_nodes (node_id, hash) FROM STDIN WITH (FORMAT csv)", io.StringIO(nodes_csv)
            )
        conn.commit()

    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
        conn.commit()
        with ThreadPoolExecutor(1) as pool:  # COPY one chunk while generating the next
            pending = None
            for offset in range(0, n, chunk):
                rec_buf, node_buf = io.StringIO(), io.StringIO()
                rec_out, node_out = csv.writer(rec_buf), csv.writer(node_buf)
                for seq in range(offset, min(n, offset + chunk)):
                    record = next(records)
                    stored = stored_form(record)
                    leaf = leaf_for(stored, seq)
                    for level, idx, digest in frontier.append(leaf_hash(leaf)):
                        node_out.writerow((node_id(level, idx), "\\x" + digest.hex()))
                        nodes_total += 1
                    stored_at = record.occurred_at + delay
                    rec_out.writerow(
                        (
                            seq,
                            stored["audit_id"],
                            stored["occurred_at"],
                            stored["service"],
                            stored["action"],
                            stored["resource_type"],
                            stored["subject_id"],
                            stored["actor_id"],
                            stored["request_id"],
                            stored["outcome"],
                            leaf.decode("utf-8"),
                            stored_at.isoformat(),
                        )
                    )
                    if stored["subject_id"] is not None:
                        used.add(stored["subject_id"])
                    if (seq + 1) % CHECKPOINT_EVERY == 0 or seq + 1 == n:
                        checkpoints.append(signer.sign(seq + 1, frontier.root(), stored_at))
                if pending is not None:
                    pending.result()
                pending = pool.submit(copy, rec_buf.getvalue(), node_buf.getvalue())
                if (offset // chunk) % 10 == 9:
                    log(f"  {offset + chunk} records generated ({time.perf_counter() - started:.0f} s)")
            if pending is not None:
                pending.result()
        buf = io.StringIO()
        out = csv.writer(buf)
        for c in checkpoints:
            out.writerow(
                (c.tree_size, "\\x" + c.root_hash.hex(), c.signed_at.isoformat(), c.key_id, "\\x" + c.signature.hex())
            )
        with conn.cursor() as cur:
            cur.copy_expert(
                "COPY audit_checkpoints (tree_size, root_hash, signed_at, key_id, signature) "
                "FROM STDIN WITH (FORMAT csv)",
                io.StringIO(buf.getvalue()),
            )
            last_at = checkpoints[-1].signed_at
            cur.execute(
                "UPDATE audit_tree_head SET tree_size = %s, frontier = %s, updated_at = %s WHERE id = 1",
                (frontier.size, psycopg2.Binary(frontier.to_bytes()), last_at),
            )
            # as if the stream loop had published them all
            cur.execute(
                "UPDATE audit_stream_position SET next_seq = %s, updated_at = %s WHERE id = 1", (frontier.size, last_at)
            )
        conn.commit()
        copied = time.perf_counter() - started
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
            cur.execute("SELECT pg_database_size(current_database())")
            size = cur.fetchone()[0]
    finally:
        conn.close()
    return {
        "subjects": sorted(used),
        "root": frontier.root(),
        "load_s": round(time.perf_counter() - started, 1),
        "copy_s": round(copied, 1),
        "nodes": nodes_total,
        "checkpoints": len(checkpoints),
        "database_bytes": size,
    }


def _timings(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50_ms": round(percentile(ordered, 50), 3),
        "p95_ms": round(percentile(ordered, 95), 3),
        "p99_ms": round(percentile(ordered, 99), 3),
        "max_ms": round(ordered[-1], 3),
        "n": len(ordered),
    }


def part_queries(n: int, subjects: int, iterations: int, warmup: int, verify_repeat: int, seed: int) -> dict:
    signer = CheckpointSigner(secrets.token_bytes(32))
    work = Path(tempfile.mkdtemp(prefix="upgestao-bench-audit-"))
    try:
        with postgres_database("bench_audit_log") as url:
            log(f"loading {n} records (~{subjects} subjects, 90 days) with COPY")
            loaded = load_log(url, n, subjects, seed, signer)
            log(
                f"loaded {n} records, {loaded['nodes']} tree nodes, {loaded['checkpoints']} checkpoints in "
                f"{loaded['load_s']} s (COPY done at {loaded['copy_s']} s, then VACUUM ANALYZE); database "
                f"{loaded['database_bytes'] / 2**20:.0f} MiB, {len(loaded['subjects'])} distinct subjects"
            )
            engine = create_engine(url)
            try:
                queries = AuditQueries(
                    lambda: with_sql_audit_log(UnitOfWork(engine, SERVICE, system_context())), lambda role: frozenset(),
                    signer
                )
                measured = _measure_queries(engine, queries, loaded["subjects"], n, iterations, warmup, seed)
                verified = _measure_verification(queries, signer, work, n, loaded["root"], verify_repeat)
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    search, proof, pk = measured["search"], measured["proof"], measured["pk_lookup"]
    verify_s, floor_s = verified["verify_s"], verified["parse_hash_s"]
    return {
        "parameters": {
            "records": n,
            "subjects_distinct": len(loaded["subjects"]),
            "subjects_max": subjects,
            "subject_distribution": "Zipf s=0.9 over the subjects; ~2% of records without a subject",
            "query_subjects": "uniform over the distinct loaded subjects",
            "span_days": 90,
            "iterations": iterations,
            "warmup": warmup,
            "search_limit": SEARCH_LIMIT,
            "verify_repetitions": verify_repeat,
            "load_s": loaded["load_s"],
            "copy_s": loaded["copy_s"],
            "tree_nodes": loaded["nodes"],
            "checkpoints": loaded["checkpoints"],
            "database_mib": round(loaded["database_bytes"] / 2**20),
            "order": "search, proof and pk_lookup interleaved (rotated) per iteration",
        },
        "figures": {
            "search": search,
            "proof": proof,
            "export": {"seconds": verified["export_s"], "bytes": verified["bytes"]},
            "verify": {
                "seconds": verify_s,
                "samples": verified["verify_samples"],
                "ok": verified["ok"],
                "records": verified["records"],
            },
        },
        "baseline": {"pk_lookup": pk, "parse_hash": {"seconds": floor_s, "samples": verified["parse_hash_samples"]}},
        "ratios": {
            "search/pk_lookup p99": ratio(search["p99_ms"], pk["p99_ms"]),
            "proof/pk_lookup p99": ratio(proof["p99_ms"], pk["p99_ms"]),
            "search/pk_lookup p50": ratio(search["p50_ms"], pk["p50_ms"]),
            "proof/pk_lookup p50": ratio(proof["p50_ms"], pk["p50_ms"]),
            "verify/parse_hash": ratio(verify_s, floor_s),
        },
        "meets": {
            "search_p99_ms": search["p99_ms"] <= TARGETS["search_p99_ms <="],
            "proof_p99_ms": proof["p99_ms"] <= TARGETS["proof_p99_ms <="],
            "verify_s": verified["ok"] and verify_s <= TARGETS["verify_s <="],
        },
    }


def _measure_queries(
    engine, queries: AuditQueries, subjects: list[str], n: int, iterations: int, warmup: int, seed: int
) -> dict[str, dict]:
    rng = random.Random(seed + 3)
    pk_query = sa.text("SELECT leaf FROM audit_records WHERE seq = :s")

    def search() -> None:
        page = queries.search({"subject_id": rng.choice(subjects)}, SEARCH_LIMIT, None)
        if not page["items"]:
            raise RuntimeError("a loaded subject has no records")

    def proof() -> None:
        seq = rng.randrange(n)
        if queries.inclusion_proof(seq, n)["seq"] != seq:
            raise RuntimeError("wrong proof")

    def pk_lookup() -> None:
        with engine.connect() as conn:
            conn.execute(pk_query, {"s": rng.randrange(n)}).scalar_one()

    kinds: dict[str, Callable[[], None]] = {"search": search, "proof": proof, "pk_lookup": pk_lookup}
    names = list(kinds)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for i in range(warmup + iterations):
        for name in names[i % 3 :] + names[: i % 3]:
            started = clock()
            kinds[name]()
            elapsed = (clock() - started) * 1000
            if i >= warmup:
                times[name].append(elapsed)
    out = {name: _timings(values) for name, values in times.items()}
    for name, t in out.items():
        log(
            f"{name:<10} p50 {t['p50_ms']:7.2f} ms  p95 {t['p95_ms']:7.2f}  p99 {t['p99_ms']:7.2f}  "
            f"max {t['max_ms']:7.2f}  ({t['n']} iterations)"
        )
    return out


def json_line(value) -> str:
    """As the gateway streams the export (``upgestao_gateway.entrypoints.audit.routes.json_line``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def _measure_verification(
    queries: AuditQueries, signer: CheckpointSigner, work: Path, n: int, root: bytes, repeat: int
) -> dict:
    path = work / "export.jsonl"
    started = time.perf_counter()
    header = queries.export_start(None, None)
    if (header["first_seq"], header["end_seq"], header["tree_size"]) != (0, n, n):
        raise RuntimeError(f"unexpected export header: {header}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json_line(header))
        for start in range(0, n, EXPORT_PAGE_MAX):
            page = queries.export_records(start, min(n, start + EXPORT_PAGE_MAX))
            f.write("".join(json_line(item) for item in page))
    export_s = time.perf_counter() - started
    size = path.stat().st_size
    log(f"export of {n} records: {export_s:.1f} s, {size / 2**20:.0f} MiB")

    def verify() -> tuple[float, object]:
        t0 = time.perf_counter()
        with open(path, encoding="utf-8") as f:
            report = verify_export(f, signer.public_key)
        return time.perf_counter() - t0, report

    def parse_hash() -> float:
        t0 = time.perf_counter()
        loads, sha256 = json.loads, hashlib.sha256
        with open(path, encoding="utf-8") as f:
            for line in f:
                loads(line)
                sha256(line.encode("utf-8")).digest()
        return time.perf_counter() - t0

    verify_samples, floor_samples, report = [], [], None
    for rep in range(repeat):
        for kind in ("verify", "parse_hash") if rep % 2 == 0 else ("parse_hash", "verify"):
            if kind == "verify":
                seconds, report = verify()
                if not report.ok or report.records != n or report.checkpoint.root_hash != root:
                    raise RuntimeError(f"verification of the export failed:\n{report.summary()}")
                verify_samples.append(seconds)
                log(f"verify_export: {seconds:.1f} s -- {report.summary().splitlines()[0][:100]}")
            else:
                seconds = parse_hash()
                floor_samples.append(seconds)
                log(f"parse + hash:  {seconds:.1f} s")
    return {
        "export_s": round(export_s, 1),
        "bytes": size,
        "verify_s": round(median(verify_samples), 2),
        "verify_samples": [round(x, 2) for x in verify_samples],
        "ok": report.ok,
        "records": report.records,
        "parse_hash_s": round(median(floor_samples), 2),
        "parse_hash_samples": [round(x, 2) for x in floor_samples],
    }


# -- scenario -----------------------------------------------------------------------------------


def run() -> dict:
    configure_logging("bench", "WARNING")
    seed = env_int("BENCH_SEED", 1)
    parts = [p.strip() for p in (os.environ.get("BENCH_AUDIT_PARTS") or "ingest,queries").split(",") if p.strip()]
    unknown = set(parts) - {"ingest", "queries"}
    if unknown or not parts:
        raise SystemExit(f"BENCH_AUDIT_PARTS: unknown part(s) {', '.join(sorted(unknown)) or '(none)'}")
    out: dict[str, dict] = {"parameters": {"seed": seed}, "figures": {}, "baseline": {}, "ratios": {}, "meets": {}}
    for name, fn in (
        ("ingest", lambda: part_ingest(env_int("BENCH_AUDIT_INGEST_N", 50_000), env_int("BENCH_REPEAT", 3), seed)),
        (
            "queries",
            lambda: part_queries(
                env_int("BENCH_AUDIT_RECORDS", 1_000_000),
                env_int("BENCH_AUDIT_SUBJECTS", 100_000),
                env_int("BENCH_AUDIT_ITERATIONS", 1000),
                env_int("BENCH_AUDIT_WARMUP", 200),
                env_int("BENCH_AUDIT_VERIFY_REPEAT", 1),
                seed,
            ),
        ),
    ):
        if name not in parts:
            continue
        got = fn()
        for key in ("parameters", "figures", "baseline", "ratios"):
            out[key][name] = got[key]
        out["meets"].update(got["meets"])
    ratios = {**out["ratios"], "targets": TARGETS, "meets": out["meets"]}
    return result(SCENARIO, out["parameters"], out["figures"], out["baseline"], ratios)


if __name__ == "__main__":
    path = write_result(run())
    log(f"wrote {path}")

"""Scenario ``notifier``: e-mails per second from identity's events to the local SMTP sink (issue 12).

One fresh platform (every service; identity and the notifier on fresh PostgreSQL databases, the others
on their SQLite defaults) with the launcher's own local sink (``python -m upgestao_notifier sink`` on a
free port, writing into the platform's temporary data directory), as ``make up`` runs it.

1. Preparation: N + W attendants created through the gateway (IDENTITY_BCRYPT_COST=4: a user is cheap);
   W password resets go through the whole path first (warm-up: connections, caches, the SMTP pool).
   Then identity's relay is paused (SIGSTOP) and N resets are requested: N ``password_reset_requested``
   events sit in identity's outbox (a request answered 503 on a loaded machine may or may not have
   left one: N is then the number of events the outbox holds).
2. ``raw`` (baseline, this process, the platform idle): ``smtplib.SMTP`` on ONE connection reused, sending
   N pre-built copies of one real message (rendered by the notifier's own ``Templates`` and
   ``build_message``: the same kind, size and shape, each copy its own Message-ID) to a second sink
   of the same command on its own port and directory. Run again after the notifier's burst; the
   figure is the median of the runs.
3. ``notifier``: the relay continues (SIGCONT) and publishes the N events in one burst (batches of
   up to 500); the notifier asks identity for each notice (``identity.notice``, audited), renders, claims,
   sends over SMTP and records each delivery. The clock starts at the first event's publication (the
   relay's confirm time, ``outbox.sent_at``) and stops at the sink's acceptance of the last message
   (the UTC time in its file name, taken when the file is linked into place, before the 250);
   throughput = N / that time. Latency per mail: the same two times for its own event and message.
   Target: notifier >= 0.5 x raw. Also recorded: the warm-up's latency (events published one by one: no
   queue ahead of them), the stages of each delivery (published -> queued -> claimed -> accepted by the
   sink -> outcome recorded), the CPU seconds of every platform process during the burst, and per e-mail
   the commits, rows and sequentially scanned rows of identity's and the notifier's databases.

Checked afterwards (exit 1 otherwise): the sink holds exactly one file for each of the N expected
Message-IDs and no other new file, every file's Message-ID header is the one its name says, and all
N deliveries are ``sent`` after one attempt. Every wait has a deadline; the platform's processes, its
broker users, the vhost, the databases and the temporary directories are removed afterwards.

    BENCH_NOTIFIER_MAILS      N, e-mails of the measured burst (2000)
    BENCH_NOTIFIER_WARMUP     W, resets through the whole path before it (20)
    BENCH_NOTIFIER_CLIENTS    HTTP clients creating users and requesting resets (8)
    BENCH_NOTIFIER_TIMEOUT_S  hard limit of the whole scenario (900)
    BENCH_NOTIFIER_BURST_S    the burst must be delivered within this (300)
    BENCH_NOTIFIER_START_S    the platform must be ready within this, migrations included (240)
    BENCH_NOTIFIER_PROFILE    a path: the notifier process under ``py-spy record`` during the burst (.svg flame
                              graph, .json speedscope, anything else raw collapsed stacks); costs some CPU
    NOTIFIER_SMTP_CONNECTIONS, NOTIFIER_MAX_WORKERS, NOTIFIER_BATCH, IDENTITY_MAX_WORKERS
                              reach the platform unchanged (recorded in the parameters)
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import contextlib  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import smtplib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from email.parser import BytesHeaderParser  # noqa: E402
from email.policy import SMTP as SMTP_POLICY  # noqa: E402
from email.policy import default as default_policy  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg2  # noqa: E402
from common import (  # noqa: E402
    PG_ADMIN,
    bench_vhost,
    env_float,
    env_int,
    load_average,
    log,
    median,
    percentile,
    ratio,
    result,
    run_scenario,
    stop_process,
)
from identity import ADMIN_ENV, BenchFailure, call, staff_payload, wait_for_admin  # noqa: E402
from upgestao_kernel.config import env_prefix  # noqa: E402
from upgestao_notifier.adapters.mime import build_message  # noqa: E402
from upgestao_notifier.adapters.sink import SUFFIX, message_id_hash  # noqa: E402
from upgestao_notifier.adapters.templates import Templates  # noqa: E402
from upgestao_platform import Platform, free_address, split_address, tcp_answers  # noqa: E402

SCENARIO = "notifier"
RESET = "identity.password_reset_requested.v1"
KIND = "password_reset"
TARGET_NOTIFIER_OVER_RAW = 0.5  # e-mails/s of the notifier >= 0.5 x a raw smtplib loop
RELAY = "identity-relay"
POLL_S = 0.25  # the figures come from recorded times, not from polling: poll gently (2 cores are shared)
PG_SERVICES = ("identity", "notifier")
PLATFORM_ENV = {
    **ADMIN_ENV,
    "IDENTITY_BCRYPT_COST": "4",  # creating N users is cheap; no login is measured here
    # N resets from one address (the bench's) within the window, one per account: allowances above that
    "IDENTITY_RESET_ADDRESS_LIMIT": "100000",
    "IDENTITY_RESET_ACCOUNT_LIMIT": "100",
    "NOTIFIER_PUBLIC_URL": "https://upgestao.bench.example.com",
}
TUNABLES = ("NOTIFIER_SMTP_CONNECTIONS", "NOTIFIER_MAX_WORKERS", "NOTIFIER_BATCH", "IDENTITY_MAX_WORKERS",
            "UPGESTAO_LOG_LEVEL")


# -- databases, the second sink ---------------------------------------------------------------


@contextlib.contextmanager
def databases(tag: str, services: tuple[str, ...] = PG_SERVICES, scenario: str = SCENARIO) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases for ``services`` (identity and the notifier unless told), their
    ``*_DATABASE_URL``, dropped after."""
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    dsn = admin.get_dsn_parameters()
    user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
    created: list[str] = []
    try:
        env = {}
        for service in services:
            name = f"bench_{scenario}_{service}_{tag}"
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            created.append(name)
            env[f"{env_prefix(service)}_DATABASE_URL"] = f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
        yield env
    finally:
        admin.close()
        for name in created:
            try:  # a fresh connection: the server may have restarted meanwhile (another suite's chaos)
                query(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
            except psycopg2.Error as exc:
                log(f"WARNING: database {name} not dropped: {str(exc).strip()[:200]}")


@contextlib.contextmanager
def started_platform(platform: Platform, timeout: float) -> Iterator[Platform]:
    """``with platform:`` with a start-up deadline of our own (a loaded machine migrates five services slowly:
    more than the launcher's default minute)."""
    platform.start(timeout=timeout)
    try:
        yield platform
    finally:
        platform.stop()


def pg_dsn(url: str) -> str:
    """A psycopg2 DSN from a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def query(dsn: str, sql: str, *params, autocommit: bool = False, retry_s: float = 60.0) -> list[tuple]:
    """One statement on a fresh connection; a server restarting (OperationalError) is waited for ``retry_s``."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            with contextlib.closing(psycopg2.connect(dsn, connect_timeout=5)) as conn:
                conn.autocommit = autocommit
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    rows = cur.fetchall() if cur.description else []
                conn.commit()
                return rows
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def sink(python: str, directory: Path, timeout: float = 20.0) -> Iterator[tuple[str, int]]:
    """The same sink command as the platform's, on a free port of its own; yields (host, port)."""
    host, port = split_address(free_address())
    with open(directory.parent / "raw-sink.log", "w") as out:
        proc = subprocess.Popen([python, "-m", "upgestao_notifier", "sink", "--host", host, "--port", str(port),
                                 "--directory", str(directory)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(os.environ, UPGESTAO_DATA_DIR=str(directory.parent)))
        try:
            deadline = time.monotonic() + timeout
            while not tcp_answers(host, port, timeout=1.0):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchFailure(f"the baseline's sink did not listen on {host}:{port} (exit {proc.poll()})")
                time.sleep(POLL_S)
            yield host, port
        finally:
            stop_process(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (``/proc/<pid>/stat``); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_work(names: list[str]) -> dict[str, dict[str, int]]:
    """Commits, rows inserted and rows fetched so far per database (``pg_stat_database``)."""
    rows = query(PG_ADMIN, "SELECT datname, xact_commit, tup_inserted, tup_fetched + tup_returned, tup_updated "
                           "FROM pg_stat_database WHERE datname = ANY(%s)", names)
    return {name: {"commits": c, "inserted": i, "read": r, "updated": u} for name, c, i, r, u in rows}


def table_scans(dsn: str) -> dict[str, int]:
    """Rows read by sequential scans so far, per table of one database (``pg_stat_user_tables``)."""
    return dict(query(dsn, "SELECT relname, seq_tup_read FROM pg_stat_user_tables"))


def scans_per(before: dict[str, int], after: dict[str, int], mails: int) -> dict[str, float]:
    """Rows read by sequential scans per e-mail between two :func:`table_scans`, the tables that read any."""
    grown = {name: (after[name] - before.get(name, 0)) / mails for name in after}
    return {name: round(v, 1) for name, v in sorted(grown.items(), key=lambda kv: -kv[1]) if v >= 0.5}


def database_work_per(before: dict, after: dict, mails: int) -> dict:
    """What each database did per e-mail between two :func:`database_work` snapshots."""
    return {name.split("_")[2]: {k: round((after[name][k] - before[name][k]) / mails, 1) for k in after[name]}
            for name in after if name in before}


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds each of the platform's processes (and this one) used between start() and stop().

    ``extra``: more named groups of processes, each a callable giving its pids (asked at start and at stop, the
    union measured: a PostgreSQL backend opened in between counts from its start), e.g. :func:`backend_pids`
    of the platform's databases and :func:`broker_pids`."""

    def __init__(self, platform: Platform, extra: dict[str, Callable[[], set[int]]] | None = None) -> None:
        self.pids = {name: proc.pid for name, proc in platform.children.items()}
        self.pids["bench"] = os.getpid()
        self.extra = dict(extra or {})

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._extra_before = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.extra.items()}
        self._machine = machine_busy()
        self._t0 = time.monotonic()

    def stop(self) -> dict:
        wall = time.monotonic() - self._t0
        used = {name: round(cpu_seconds(pid) - self._before[name], 2) for name, pid in self.pids.items()}
        for name, pids in self.extra.items():
            before = self._extra_before[name]
            used[name] = round(sum(max(0.0, cpu_seconds(pid) - before.get(pid, 0.0))  # gone: its CPU is lost (0)
                                     for pid in set(before) | pids()), 2)
        busy, total = machine_busy()
        share = (busy - self._machine[0]) / max(1, total - self._machine[1])
        return {"wall_s": round(wall, 2), "machine_busy": round(share, 3),
                "machine_cpu_s": round(share * wall * (os.cpu_count() or 1), 2),
                "cpu_s": dict(sorted(used.items(), key=lambda kv: -kv[1]))}


def backend_pids(names: list[str]) -> Callable[[], set[int]]:
    """The PostgreSQL server processes now serving these databases (``pg_stat_activity``)."""
    def pids() -> set[int]:
        return {pid for (pid,) in query(PG_ADMIN, "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", names)}
    return pids


def broker_pids() -> set[int]:
    """The local RabbitMQ node's processes (the Erlang VM, ``beam.smp``): the whole broker, every vhost."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        found.add(int(entry))
            except OSError:
                continue
    return found


def start_py_spy(pid: int, path: str, rate: int = 100) -> subprocess.Popen:
    """``py-spy record`` of one process until :func:`stop_py_spy` (as the audit scenario profiles its ingest),
    ``rate`` samples a second."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise BenchFailure("profiling needs py-spy (pip install py-spy into the venv)")
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(path).suffix, "raw")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt, "--output", path,
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(spy: subprocess.Popen) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


# -- the sink's files ---------------------------------------------------------------------------


def accepted_at(name: str) -> datetime:
    """The sink's acceptance time from a file name ``<%Y%m%dT%H%M%S.%fZ>-<counter>-<hash>.eml``."""
    return datetime.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def sink_files(directory: Path) -> list[str]:
    return [e.name for e in os.scandir(directory) if e.name.endswith(SUFFIX)] if directory.is_dir() else []


def header_message_id(path: Path) -> str:
    with open(path, "rb") as f:
        value = BytesHeaderParser(policy=default_policy).parsebytes(f.read(64 * 1024)).get("Message-ID")
    return str(value).strip() if value is not None else ""


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, platform: Platform | None = None) -> float:
    """Poll ``predicate`` every POLL_S until true; returns the seconds it took. Raises BenchFailure at the deadline."""
    started = time.monotonic()
    while not predicate():
        if platform is not None:
            platform.check_alive()
        if time.monotonic() - started > timeout:
            raise BenchFailure(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_S)
    return time.monotonic() - started


# -- preparation through the gateway ------------------------------------------------------------


def _busy(status: int, answer: object) -> bool:
    """A 503 the gateway answers on a loaded machine (a slow RPC asked again: "outcome unknown")."""
    return status == 503 or status == 0


def create_users(url: str, token: str, count: int, clients: int) -> list[str]:
    """``count`` attendants (POST /v1/users as the first admin, ``clients`` at a time); their e-mails. A 503
    is tried again with a new e-mail (the first may exist too: an extra user nobody resets)."""

    def one(n: int) -> str:
        for attempt in range(5):
            payload = staff_payload(n)
            status, answer = call(url, "POST", "/v1/users", payload, token=token)
            if status == 201:
                return payload["email"]
            if not _busy(status, answer) or attempt == 4:
                raise BenchFailure(f"POST /v1/users answered {status}: {str(answer)[:300]}")
            time.sleep(1.0)
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(count)))


def request_resets(url: str, emails: list[str], clients: int) -> int:
    """POST /v1/auth/password-reset for each e-mail; returns how many answered 503 (their event may or may not
    exist: the scenario counts the events in identity's outbox, not the requests)."""

    def one(email: str) -> int:
        status, answer = call(url, "POST", "/v1/auth/password-reset", {"email": email})
        if status == 202:
            return 0
        if _busy(status, answer):
            return 1
        raise BenchFailure(f"POST /v1/auth/password-reset answered {status}: {str(answer)[:300]}")

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, emails))


# -- the baseline -------------------------------------------------------------------------------


def sample_messages(count: int, sender: str, domain: str) -> tuple[list[bytes], str]:
    """``count`` copies of one password-reset e-mail rendered as the notifier renders it (its templates and
    ``build_message``, a 43-character token in its link and body), each with its own Message-ID."""
    to = staff_payload(0)["email"]
    token = secrets.token_urlsafe(32)
    base = PLATFORM_ENV["NOTIFIER_PUBLIC_URL"]
    data = {"platform_name": "UpGestão", "dpo_contact": "contato@virtux.com.br", "privacy_url": f"{base}/privacy",
            "support_url": f"{base}/privacy/contact", "recipient_name": "Beatriz Carvalho Bench 0",
            "reset_token": token, "reset_url": f"{base}/reset-password#token={token}",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    rendered = Templates().render(KIND, "pt-BR", data)
    messages = []
    for _ in range(count):
        message = build_message(subject=rendered.subject, text=rendered.text, html=rendered.html, sender=sender,
                                to=to, message_id=f"<{secrets.token_hex(20)}@{domain}>", security=True,
                                extra_headers={"X-UpGestao-Delivery": str(uuid.uuid4())})
        messages.append(message.as_bytes(policy=SMTP_POLICY))
    return messages, to


def raw_smtp(host: str, port: int, directory: Path, messages: list[bytes], sender: str, to: str,
             timeout: float) -> dict:
    """The messages over one reused ``smtplib.SMTP`` connection, one after the other; until the sink holds them."""
    before = set(sink_files(directory))
    times = []
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.ehlo()
        started = time.perf_counter()
        for data in messages:
            t0 = time.perf_counter()
            smtp.sendmail(sender, [to], data)
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    wait_until("the baseline's messages in its sink", lambda: len(set(sink_files(directory)) - before)
               >= len(messages), timeout)
    times.sort()
    return {"mails": len(messages), "seconds": round(elapsed, 3), "mails_per_s": round(len(messages) / elapsed, 1),
            "send_p50_ms": round(percentile(times, 50) * 1e3, 2), "send_p99_ms": round(percentile(times, 99) * 1e3, 2),
            "bytes_per_mail": round(sum(map(len, messages)) / len(messages))}


# -- the scenario -------------------------------------------------------------------------------




def run() -> dict:
    n = env_int("BENCH_NOTIFIER_MAILS", 2000)
    warm = env_int("BENCH_NOTIFIER_WARMUP", 20)
    clients = env_int("BENCH_NOTIFIER_CLIENTS", 8)
    burst_timeout = env_float("BENCH_NOTIFIER_BURST_S", 300.0)
    profile = os.environ.get("BENCH_NOTIFIER_PROFILE") or None
    load_before = load_average()
    tag = uuid.uuid4().hex[:8]

    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir,
        databases(tag) as db_env,
    ):
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        identity_db = pg_dsn(db_env["IDENTITY_DATABASE_URL"])
        notifier_db = pg_dsn(db_env["NOTIFIER_DATABASE_URL"])
        started = time.monotonic()
        try:
            with started_platform(platform, env_float("BENCH_NOTIFIER_START_S", 240.0)):
                url, mail_dir = platform.url, platform.mail_dir
                log(f"platform ready in {time.monotonic() - started:.1f} s at {url}; sink {platform.sink_address}")

                def sent_resets() -> int:
                    return query(notifier_db, "SELECT count(*) FROM deliveries WHERE event_type = %s AND "
                                              "status = 'sent'", RESET)[0][0]

                def unsent(routing_key: str | None = None) -> int:
                    where = " AND routing_key = %s" if routing_key else ""
                    return query(identity_db, f"SELECT count(*) FROM outbox WHERE sent_at IS NULL{where}",
                                 *([routing_key] if routing_key else []))[0][0]

                def events() -> int:
                    return query(identity_db, "SELECT count(*) FROM outbox WHERE routing_key = %s", RESET)[0][0]

                # -- preparation
                t0 = time.monotonic()
                admin = wait_for_admin(url)
                emails = create_users(url, admin["access_token"], n + warm, clients)
                log(f"{n + warm} attendants created in {time.monotonic() - t0:.1f} s")
                t0 = time.monotonic()
                busy = request_resets(url, emails[:warm], clients)
                wait_until("identity's outbox drained", lambda: unsent() == 0, 60, platform)
                warm = events()
                wait_until(f"{warm} warm-up e-mails sent", lambda: sent_resets() >= warm, 120, platform)
                log(f"warm-up: {warm} resets e-mailed in {time.monotonic() - t0:.1f} s")
                before = set(sink_files(mail_dir))

                relay = platform.children[RELAY]
                relay.send_signal(signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    busy += request_resets(url, emails[-n:], clients)
                    if busy:  # a request answered 503 may still commit its event: the outbox says what is
                        time.sleep(5.0)
                    else:  # every 202 was answered after its commit
                        wait_until(f"{n} reset events in identity's outbox", lambda: unsent(RESET) >= n, 10, platform)
                    n = unsent(RESET)
                    if n == 0:
                        raise BenchFailure("no reset event waits in identity's outbox")
                    log(f"resets requested in {time.monotonic() - t0:.1f} s ({busy} answered 503); {n} events wait in "
                        "identity's outbox (its relay paused)")

                    # -- the baseline, the platform idle
                    messages, to = sample_messages(n, "no-reply@upgestao.local", "raw.bench.upgestao.example")
                    raw_runs = [baseline(platform.python, Path(data_dir), messages, to, burst_timeout)]
                    db_names = [url.rsplit("/", 1)[1] for url in (identity_db, notifier_db)]
                    db_before = database_work(db_names)
                    scans_before = {"identity": table_scans(identity_db), "notifier": table_scans(notifier_db)}
                    meter = CpuMeter(platform)
                    spy = start_py_spy(platform.children["notifier"].pid, profile) if profile else None
                    meter.start()
                finally:
                    relay.send_signal(signal.SIGCONT)
                continued = datetime.now(UTC)

                # -- the burst
                try:
                    done_s = wait_until(f"{n} e-mails sent", lambda: sent_resets() >= n + warm, burst_timeout,
                                        platform)
                finally:
                    cpu = meter.stop()
                    time.sleep(1.0)  # the statistics are flushed at most every second
                    cpu["database_per_mail"] = database_work_per(db_before, database_work(db_names), n)
                    cpu["seq_scan_rows_per_mail"] = {
                        "identity": scans_per(scans_before["identity"], table_scans(identity_db), n),
                        "notifier": scans_per(scans_before["notifier"], table_scans(notifier_db), n)}
                    if spy is not None:
                        stop_py_spy(spy)
                        log(f"profile of the notifier during the burst: {profile}")
                log(f"burst CPU seconds in {cpu['wall_s']} s (machine {100 * cpu['machine_busy']:.0f}% busy): "
                    + ", ".join(f"{k} {v}" for k, v in cpu["cpu_s"].items() if v >= 0.05))
                log(f"per e-mail in the burst (the polls included): {cpu['database_per_mail']}; rows read by "
                    f"sequential scans: {cpu['seq_scan_rows_per_mail']}")
                new = lambda: set(sink_files(mail_dir)) - before  # noqa: E731
                wait_until(f"{n} e-mails in the sink", lambda: len(new()) >= n, 30, platform)
                log(f"notifier: {n} deliveries sent {done_s:.1f} s after the relay continued")
                raw_runs.append(baseline(platform.python, Path(data_dir), messages, to, burst_timeout))
                time.sleep(1.0)  # anything sent twice would show up now
                figures = measure(identity_db, notifier_db, mail_dir, before, n, continued)
                figures["burst_cpu"] = cpu
                platform.check_alive()
        finally:
            platform.remove_broker_users()  # the vhost goes with bench_vhost; its users do not

    raw = {"runs": raw_runs, "mails_per_s": round(median([r["mails_per_s"] for r in raw_runs]), 1),
           "bytes_per_mail": raw_runs[0]["bytes_per_mail"]}
    r = ratio(figures["mails_per_s"], raw["mails_per_s"])
    ratios = {"notifier/raw": r, "target": TARGET_NOTIFIER_OVER_RAW,
              "meets_target": r is not None and r >= TARGET_NOTIFIER_OVER_RAW}
    log(f"notifier {figures['mails_per_s']} e-mails/s; raw smtplib {raw['mails_per_s']} e-mails/s "
        f"(runs {', '.join(str(x['mails_per_s']) for x in raw_runs)}); ratio {r}; latency p50 "
        f"{figures['latency_ms']['p50']} ms, p99 {figures['latency_ms']['p99']} ms")
    return result(
        SCENARIO,
        parameters={
            "mails": n,
            "mails_asked": env_int("BENCH_NOTIFIER_MAILS", 2000),
            "reset_requests_answered_503": busy,
            "warmup_mails": warm,
            "profiled": bool(profile),
            "http_clients": clients,
            "kind": KIND,
            "databases": "PostgreSQL for identity and the notifier (fresh databases), SQLite for the others",
            "sink": "python -m upgestao_notifier sink (the platform's, and a second one for the baseline)",
            **{name.lower(): os.environ.get(name) or "default" for name in TUNABLES},
        },
        figures=figures,
        baseline={"raw_smtplib": raw},
        ratios=ratios,
        load_average_1m={"before": load_before, "after": load_average()},
        notes=[
            "notifier e-mails/s = N / (the sink's acceptance of the last message - the relay's confirm of the "
            "first event); the events waited in identity's outbox (relay paused) and were published in one burst",
            "latency per mail: the relay's confirm time of its event (outbox.sent_at, one per batch of <= 500) to "
            "the sink's acceptance (UTC time in the .eml file's name, before the 250 reply)",
            "raw_smtplib: one smtplib.SMTP connection reused, sendmail of N pre-built copies of one rendered "
            "password-reset e-mail (the notifier's templates and build_message, own Message-IDs) to a second "
            "sink of the same command; run before and after the burst, median",
            "the platform (10 processes), RabbitMQ, PostgreSQL, the sinks and this process share the machine's "
            "cores; the load average is recorded",
        ],
    )


def baseline(python: str, data_dir: Path, messages: list[bytes], to: str, timeout: float) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="raw-mail-", dir=data_dir))
    with sink(python, directory) as (host, port):
        got = raw_smtp(host, port, directory, messages, "no-reply@upgestao.local", to, timeout)
    log(f"raw smtplib: {got['mails']} e-mails in {got['seconds']} s = {got['mails_per_s']} e-mails/s "
        f"({got['bytes_per_mail']} bytes each)")
    return got


def measure(identity_db: str, notifier_db: str, mail_dir: Path, before: set[str], n: int,
            continued: datetime) -> dict:
    """Throughput and latency of the burst, and the checks (BenchFailure when one fails)."""
    published = {event_id: sent_at for event_id, sent_at in query(
        identity_db, "SELECT body->>'event_id', sent_at FROM outbox WHERE routing_key = %s AND sent_at >= %s",
        RESET, continued - timedelta(seconds=1))}
    rows = query(notifier_db, "SELECT event_id, message_id, status, attempts, created_at, attempt_started_at, "
                              "sent_at FROM deliveries WHERE event_type = %s", RESET)
    burst = [r for r in rows if r[0] in published]
    files = sorted(set(sink_files(mail_dir)) - before)
    by_hash = Counter(name.rsplit("-", 1)[1].removesuffix(SUFFIX) for name in files)
    file_of = {name.rsplit("-", 1)[1].removesuffix(SUFFIX): name for name in files}

    problems = []
    if len(published) != n:
        problems.append(f"{len(published)} reset events published in the burst, expected {n}")
    if len(burst) != n:
        problems.append(f"{len(burst)} deliveries for the burst's events, expected {n}")
    not_sent = Counter(r[2] for r in burst if r[2] != "sent")
    if not_sent:
        problems.append(f"deliveries not sent: {dict(not_sent)}")
    retried = sum(1 for r in burst if r[3] != 1)
    if retried:
        problems.append(f"{retried} deliveries needed more than one attempt")
    expected = {message_id_hash(r[1]): r for r in burst}
    missing = [h for h in expected if h not in by_hash]
    duplicates = {h: c for h, c in by_hash.items() if c > 1}
    strangers = [h for h in by_hash if h not in expected]
    if missing:
        problems.append(f"{len(missing)} expected messages not in the sink")
    if duplicates:
        problems.append(f"{len(duplicates)} messages in the sink more than once ({sum(duplicates.values())} files)")
    if strangers:
        problems.append(f"{len(strangers)} unexpected messages in the sink")
    ids = [header_message_id(mail_dir / name) for name in files]
    if len(set(ids)) != len(ids) or {message_id_hash(i) for i in ids} != set(by_hash):
        problems.append("the files' Message-ID headers are not distinct or do not match their names")
    if problems:
        raise BenchFailure("; ".join(problems))

    single = single_latencies(identity_db, notifier_db, mail_dir, continued)
    first = min(published.values())
    latencies, accept_times = [], []
    stages: dict[str, list[float]] = {"published_to_queued": [], "queued_to_claimed": [], "claimed_to_accepted": [],
                                      "accepted_to_recorded": []}
    for digest, (event_id, _, _, _, created, claimed, recorded) in expected.items():
        accepted = accepted_at(file_of[digest])
        accept_times.append(accepted)
        latencies.append((accepted - published[event_id]).total_seconds() * 1e3)
        stages["published_to_queued"].append((created - published[event_id]).total_seconds() * 1e3)
        stages["queued_to_claimed"].append((claimed - created).total_seconds() * 1e3)
        stages["claimed_to_accepted"].append((accepted - claimed).total_seconds() * 1e3)
        stages["accepted_to_recorded"].append((recorded - accepted).total_seconds() * 1e3)
    elapsed = (max(accept_times) - first).total_seconds()
    latencies.sort()

    def summary(values: list[float]) -> dict:
        values = sorted(values)
        return {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
                "max": round(values[-1], 1)}

    batches = Counter(published.values())
    return {
        "mails": n,
        "seconds": round(elapsed, 3),
        "mails_per_s": round(n / elapsed, 1),
        "latency_ms": summary(latencies),
        "stages_ms": {name: summary(values) for name, values in stages.items()},
        # the warm-up's events, published as they were requested (no queue of thousands ahead of them)
        "latency_unqueued_ms": summary(single) if single else None,
        "relay": {"batches": len(batches), "first_confirm_after_continue_s":
                  round((first - continued).total_seconds(), 3),
                  "last_confirm_after_first_s": round((max(published.values()) - first).total_seconds(), 3)},
        "checks": {"distinct_message_ids": len(set(ids)), "duplicates": 0, "deliveries_sent": n,
                   "attempts_per_delivery": 1},
        "bytes_per_mail": round(sum((mail_dir / name).stat().st_size for name in files) / len(files)),
    }


def single_latencies(identity_db: str, notifier_db: str, mail_dir: Path, before: datetime) -> list[float]:
    """Published -> accepted of the reset events relayed before ``before`` (the warm-up), in ms."""
    published = {event_id: sent_at for event_id, sent_at in query(
        identity_db, "SELECT body->>'event_id', sent_at FROM outbox WHERE routing_key = %s AND sent_at < %s",
        RESET, before)}
    hashes = {message_id_hash(message_id): event_id for event_id, message_id in query(
        notifier_db, "SELECT event_id, message_id FROM deliveries WHERE event_type = %s", RESET)
        if event_id in published}
    out = []
    for name in sink_files(mail_dir):
        event_id = hashes.get(name.rsplit("-", 1)[1].removesuffix(SUFFIX))
        if event_id is not None:
            out.append((accepted_at(name) - published[event_id]).total_seconds() * 1e3)
    return out


if __name__ == "__main__":
    sys.exit(run_scenario(run, "notifier", "BENCH_NOTIFIER_TIMEOUT_S", 900, (BenchFailure,)))

"""Scenario ``webhooks``: webhook deliveries per second from messaging's events to a local receiver (issue 15).

One fresh platform (every service; identity, messaging and integrations on fresh PostgreSQL databases, the
others on their SQLite defaults), ``UPGESTAO_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8`` so the SSRF guard lets
the local receiver through (every connection is still resolved and checked). The receiver
(``bench/webhook_receiver.py``, a separate process) verifies every delivery with the ``standardwebhooks``
package and records its arrival time.

1. Preparation through the gateway: a customer, one conversation, an integration subscribed to
   ``message.created`` with the fields ``name`` and ``conversations`` (so each delivery opens the customer's
   name at identity and the message's body at messaging, both audited as shares). W messages go through the
   whole path first (warm-up; their latency, with no queue ahead of them, is recorded).
2. messaging's relay is paused (SIGSTOP) and N incoming messages are posted: N ``message_created`` events
   wait in messaging's outbox.
3. ``raw`` (baseline, this process, the platform idle): one ``http.client`` connection kept alive, N POSTs one
   after the other of a payload of the same shape and size (the body and the name in clear), each signed
   (Standard Webhooks headers, HMAC-SHA256) just before it is sent, to a second receiver of the same program.
   Run again after the burst; the figure is the median of the runs.
4. ``integrations``: the relay continues (SIGCONT); integrations consumes the N events, queues one message each,
   opens the data (``identity.share_subjects``, ``messaging.share_messages``), signs and posts. The clock starts
   at the relay's confirm of the first event (``outbox.sent_at``) and stops at the receiver's arrival of the
   last delivery; throughput = N / that time. Latency per delivery: its event's confirm to its arrival.
   Target: integrations >= 0.5 x raw.

Checked afterwards (exit 1 otherwise): the receiver holds, for each of the N messages, a verified delivery,
and every delivery of one message carried one webhook-id. Every wait has a deadline; the platform, its
broker users, vhost, databases and temporary directories are removed afterwards.

    BENCH_WEBHOOKS_N          N, messages of the measured burst (2000)
    BENCH_WEBHOOKS_WARMUP     W, messages through the whole path before it (20)
    BENCH_WEBHOOKS_CLIENTS    HTTP clients posting the messages (8)
    BENCH_WEBHOOKS_TIMEOUT_S  hard limit of the whole scenario (900)
    BENCH_WEBHOOKS_BURST_S    the burst must be delivered within this (300)
    BENCH_WEBHOOKS_START_S    the platform must be ready within this, migrations included (240)
    BENCH_WEBHOOKS_PROFILE    a path: the integrations process under ``py-spy record`` during the burst (.svg flame
                              graph, .json speedscope, anything else raw collapsed stacks); costs some CPU
    INTEGRATIONS_CONCURRENCY, INTEGRATIONS_TIMEOUT_S reach the platform unchanged (recorded)
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import base64  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

from common import (  # noqa: E402
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
from identity import ADMIN_ENV, BenchFailure, call, wait_for_admin  # noqa: E402
from notifier import (  # noqa: E402
    CpuMeter,
    backend_pids,
    broker_pids,
    databases,
    pg_dsn,
    query,
    start_py_spy,
    started_platform,
    stop_py_spy,
    wait_until,
)
from upgestao_platform import Platform, free_address, split_address, tcp_answers  # noqa: E402

SCENARIO = "webhooks"
CREATED = "messaging.message_created.v1"
TARGET_OVER_RAW = 0.5  # deliveries/s of the integrations service >= 0.5 x a raw signed-POST loop
RELAY = "messaging-relay"
PG_SERVICES = ("identity", "messaging", "integrations")
PLATFORM_ENV = {
    **ADMIN_ENV,
    "IDENTITY_BCRYPT_COST": "4",
    "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
}
TUNABLES = ("INTEGRATIONS_CONCURRENCY", "INTEGRATIONS_TIMEOUT_S", "MESSAGING_MAX_WORKERS", "UPGESTAO_LOG_LEVEL")
HERE = Path(__file__).resolve().parent
BODY = ("Olá, boa tarde! Comprei um liquidificador na loja de Campinas na segunda-feira e ele chegou com a "
        "tampa trincada. Podem trocar? O pedido foi pago no Pix. Obrigada, Beatriz.")
CUSTOMER_NAME = "Beatriz Carvalho Nogueira"


class ReceiverProcess:
    """``bench/webhook_receiver.py`` on a free port; its records (one JSON line per request) in ``out``."""

    def __init__(self, python: str, directory: Path, name: str, secret: str | None = None) -> None:
        self.host, self.port = split_address(free_address())
        self.out = directory / f"{name}.jsonl"
        self.secret_file = directory / f"{name}.secret"
        if secret:
            self.secret_file.write_text(secret)
        self.log = directory / f"{name}.log"
        self._args = [python, str(HERE / "webhook_receiver.py"), "--host", self.host, "--port", str(self.port),
                      "--secret-file", str(self.secret_file), "--out", str(self.out)]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/upgestao"

    def __enter__(self) -> ReceiverProcess:
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(self._args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not tcp_answers(self.host, self.port, timeout=1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchFailure(f"the receiver did not listen on {self.host}:{self.port}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def checked(url: str, method: str, path: str, body: object, token: str, expect: tuple[int, ...]) -> dict:
    for attempt in range(5):
        status, answer = call(url, method, path, body, token=token)
        if status in expect:
            return answer if isinstance(answer, dict) else {}
        if status not in (0, 503) or attempt == 4:
            raise BenchFailure(f"{method} {path} answered {status}: {str(answer)[:300]}")
        time.sleep(1.0)
    raise AssertionError("unreachable")


def post_messages(url: str, token: str, conversation_id: str, count: int, clients: int) -> int:
    """``count`` incoming messages (each its own client_message_id, so a retried 503 is one message)."""

    def one(n: int) -> int:
        body = {"body": f"{BODY} (#{n})", "direction": "incoming", "client_message_id": uuid.uuid4().hex}
        checked(url, "POST", f"/v1/conversations/{conversation_id}/messages", body, token, (200, 201))
        return 1

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, range(count)))


# -- the baseline ------------------------------------------------------------------------------


def raw_signed_posts(receiver: ReceiverProcess, secret: str, n: int, timeout: float) -> dict:
    """N signed POSTs over one kept-alive connection, one after the other, until the receiver holds them."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    before = len(receiver.records())
    conn = http.client.HTTPConnection(receiver.host, receiver.port, timeout=30)
    times = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = int(time.time())
        payload = {"type": "message.created", "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                   "data": {"message_id": str(uuid.uuid4()), "conversation_id": str(uuid.uuid4()),
                            "customer_id": str(uuid.uuid4()), "direction": "incoming",
                            "created_at": datetime.now(UTC).isoformat(), "attachment_count": 0,
                            "body": f"{BODY} (#{i})", "customer": {"id": str(uuid.uuid4()), "name": CUSTOMER_NAME}}}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        conn.request("POST", "/hooks/raw", body=body, headers={
            "content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode()})
        response = conn.getresponse()
        response.read()
        if response.status // 100 != 2:
            raise BenchFailure(f"the baseline's receiver answered {response.status}")
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    conn.close()
    wait_until("the baseline's deliveries recorded", lambda: len(receiver.records()) - before >= n, timeout)
    times.sort()
    return {"deliveries": n, "seconds": round(elapsed, 3), "deliveries_per_s": round(n / elapsed, 1),
            "post_p50_ms": round(percentile(times, 50) * 1e3, 2), "post_p99_ms": round(percentile(times, 99) * 1e3, 2),
            "bytes_per_delivery": len(body)}


# -- the scenario ------------------------------------------------------------------------------


def run() -> dict:
    n = env_int("BENCH_WEBHOOKS_N", 2000)
    warm = env_int("BENCH_WEBHOOKS_WARMUP", 20)
    clients = env_int("BENCH_WEBHOOKS_CLIENTS", 8)
    burst_timeout = env_float("BENCH_WEBHOOKS_BURST_S", 300.0)
    load_before = load_average()
    tag = uuid.uuid4().hex[:8]

    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir,
        databases(tag, PG_SERVICES, SCENARIO) as db_env,
    ):
        work = Path(data_dir)
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        messaging_db = pg_dsn(db_env["MESSAGING_DATABASE_URL"])
        started = time.monotonic()
        try:
            with (
                ReceiverProcess(platform.python, work, "platform-receiver") as receiver,
                started_platform(platform, env_float("BENCH_WEBHOOKS_START_S", 240.0)),
            ):
                url = platform.url
                log(f"platform ready in {time.monotonic() - started:.1f} s at {url}; receiver {receiver.url}")
                admin = wait_for_admin(url)["access_token"]
                customer = checked(url, "POST", "/v1/customers", {"full_name": CUSTOMER_NAME,
                                   "email": f"beatriz.{tag}@example.com.br"}, admin, (201,))["id"]
                conversation = checked(url, "POST", "/v1/conversations", {"customer_id": customer, "channel": "web"},
                                       admin, (201,))["id"]
                integration = checked(url, "POST", "/v1/integrations", {
                    "name": "Bench CRM", "url": receiver.url, "events": ["message.created"],
                    "fields": ["name", "conversations"],
                    "privacy_policy_url": "https://crm.bench.example.com/privacy"}, admin, (201,))
                secret = integration["secret"]
                receiver.secret_file.write_text(secret)

                def delivered() -> set[str]:
                    return {r["message_id"] for r in receiver.records() if r["verified"] and r["message_id"]}

                def unsent() -> int:
                    return query(messaging_db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND routing_key = %s",
                                 CREATED)[0][0]

                t0 = time.monotonic()
                post_messages(url, admin, conversation, warm, clients)
                wait_until(f"{warm} warm-up deliveries", lambda: len(delivered()) >= warm, 120, platform)
                log(f"warm-up: {warm} messages delivered in {time.monotonic() - t0:.1f} s")
                warm_done = datetime.now(UTC)

                relay = platform.children[RELAY]
                relay.send_signal(signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    post_messages(url, admin, conversation, n, clients)
                    wait_until(f"{n} events in messaging's outbox", lambda: unsent() >= n, 30, platform)
                    n = unsent()
                    log(f"{n} messages posted in {time.monotonic() - t0:.1f} s; their events wait in messaging's "
                        "outbox (its relay paused)")
                    raw_runs = [baseline(platform.python, work, secret, n, burst_timeout, 1)]
                    meter = CpuMeter(platform, extra={
                        **{f"postgresql {service}": backend_pids([db_env[f"{service.upper()}_DATABASE_URL"]
                                                                  .rsplit("/", 1)[1]])
                           for service in PG_SERVICES},
                        "rabbitmq (the whole broker)": broker_pids,
                        "receiver": lambda: {receiver.proc.pid}})
                    profile = os.environ.get("BENCH_WEBHOOKS_PROFILE") or None
                    spy = start_py_spy(platform.children["integrations"].pid, profile) if profile else None
                    meter.start()
                finally:
                    relay.send_signal(signal.SIGCONT)
                continued = datetime.now(UTC)
                try:
                    done_s = wait_until(f"{n} deliveries", lambda: len(delivered()) >= n + warm, burst_timeout,
                                        platform)
                finally:
                    cpu = meter.stop()
                    if spy is not None:
                        stop_py_spy(spy)
                        log(f"profile of the integrations service during the burst: {profile}")
                log(f"integrations: {n} deliveries {done_s:.1f} s after the relay continued; burst CPU seconds "
                    + ", ".join(f"{k} {v}" for k, v in cpu["cpu_s"].items() if v >= 0.05)
                    + f"; the machine {cpu['machine_cpu_s']} ({1000 * cpu['machine_cpu_s'] / n:.2f} ms per delivery)")
                raw_runs.append(baseline(platform.python, work, secret, n, burst_timeout, 2))
                time.sleep(1.0)  # anything delivered twice shows up now
                figures = measure(messaging_db, receiver.records(), n, continued, warm_done)
                figures["burst_cpu"] = cpu
                platform.check_alive()
        finally:
            platform.remove_broker_users()

    raw = {"runs": raw_runs, "deliveries_per_s": round(median([r["deliveries_per_s"] for r in raw_runs]), 1),
           "bytes_per_delivery": raw_runs[0]["bytes_per_delivery"]}
    r = ratio(figures["deliveries_per_s"], raw["deliveries_per_s"])
    ceiling = ceiling_without_integrations(figures["burst_cpu"], n)
    figures["ceiling_without_integrations"] = ceiling
    ratios = {"integrations/raw": r, "target": TARGET_OVER_RAW, "meets_target": r is not None and r >= TARGET_OVER_RAW,
              "ceiling_without_integrations/raw": ratio(ceiling["deliveries_per_s"], raw["deliveries_per_s"])}
    log(f"the rest of the path (every measured process but integrations, its database and this one) used "
        f"{ceiling['rest_cpu_ms_per_delivery']} ms of CPU per delivery: with integrations free, at most "
        f"{ceiling['deliveries_per_s']} deliveries/s on {ceiling['cores']} cores, "
        f"{ratios['ceiling_without_integrations/raw']} x raw")
    log(f"integrations {figures['deliveries_per_s']} deliveries/s; raw signed POSTs {raw['deliveries_per_s']}/s "
        f"(runs {', '.join(str(x['deliveries_per_s']) for x in raw_runs)}); ratio {r}; event to delivery p50 "
        f"{figures['latency_ms']['p50']} ms, p99 {figures['latency_ms']['p99']} ms (unqueued: "
        f"{figures['latency_unqueued_ms']})")
    return result(
        SCENARIO,
        parameters={"deliveries": n, "deliveries_asked": env_int("BENCH_WEBHOOKS_N", 2000), "warmup": warm,
                    "http_clients": clients, "fields": ["name", "conversations"],
                    "databases": "PostgreSQL for identity, messaging and integrations (fresh), SQLite for the others",
                    "receiver": "bench/webhook_receiver.py (ThreadingHTTPServer, standardwebhooks verify, 204)",
                    **{name.lower(): os.environ.get(name) or "default" for name in TUNABLES}},
        figures=figures,
        baseline={"raw_signed_posts": raw},
        ratios=ratios,
        load_average_1m={"before": load_before, "after": load_average()},
        notes=[
            "integrations deliveries/s = N / (the receiver's arrival of the last delivery - the relay's confirm of "
            "the first event); the events waited in messaging's outbox (relay paused) and were published in one burst",
            "each delivery opens the customer's name (identity.share_subjects) and the message's body "
            "(messaging.share_messages), both audited as shares with the integration as recipient, in batches",
            "raw: one http.client connection kept alive, N POSTs in sequence of a payload of the same shape, each "
            "HMAC-SHA256 signed before it is sent; same receiver program; run before and after the burst, median",
            "the platform, RabbitMQ, PostgreSQL, the receivers and this process share the machine's cores",
        ],
    )


def ceiling_without_integrations(cpu: dict, n: int) -> dict:
    """The most deliveries per second the machine's cores could give if the integrations service and its database
    cost nothing: every other measured process's CPU in the burst (the relays, the owners' share RPCs, privacy's
    audit ingest, the gateway's push stream, the broker, the other databases, the receiver), per delivery, is work
    the path does whatever integrations does. An upper bound: what was not measured (the kernel, other load) is
    left out of that rest, so it can only be larger."""
    mine = {"integrations", "postgresql integrations", "bench"}
    rest = sum(v for k, v in cpu["cpu_s"].items() if k not in mine)
    cores = os.cpu_count() or 1
    return {"cores": cores, "rest_cpu_s": round(rest, 2),
            "rest_cpu_ms_per_delivery": round(1000 * rest / n, 2) if n else None,
            "deliveries_per_s": round(cores * n / rest, 1) if rest > 0 else None}


def baseline(python: str, work: Path, secret: str, n: int, timeout: float, run_no: int) -> dict:
    with ReceiverProcess(python, work, f"raw-receiver-{run_no}", secret=secret) as receiver:
        got = raw_signed_posts(receiver, secret, n, timeout)
    log(f"raw signed POSTs: {got['deliveries']} in {got['seconds']} s = {got['deliveries_per_s']}/s")
    return got


def measure(messaging_db: str, records: list[dict], n: int, continued: datetime, warm_done: datetime) -> dict:
    """Throughput and latency of the burst, and the checks (BenchFailure when one fails)."""
    published = {message_id: sent_at for message_id, sent_at in query(
        messaging_db, "SELECT body->'data'->>'message_id', sent_at FROM outbox WHERE routing_key = %s "
                      "AND sent_at IS NOT NULL", CREATED)}
    burst_ids = {m for m, at in published.items() if at >= continued - timedelta(seconds=1)}
    by_message: dict[str, list[dict]] = {}
    for record in records:
        if record.get("message_id"):
            by_message.setdefault(record["message_id"], []).append(record)
    problems = []
    if len(burst_ids) != n:
        problems.append(f"{len(burst_ids)} message events published in the burst, expected {n}")
    missing = [m for m in burst_ids if not any(r["verified"] for r in by_message.get(m, []))]
    if missing:
        problems.append(f"{len(missing)} messages without a verified delivery")
    unverified = sum(1 for r in records if not r["verified"])
    if unverified:
        problems.append(f"{unverified} deliveries failed verification")
    split_ids = [m for m, rs in by_message.items() if len({r["id"] for r in rs}) > 1]
    if split_ids:
        problems.append(f"{len(split_ids)} messages delivered under more than one webhook-id")
    if problems:
        raise BenchFailure("; ".join(problems))
    first = min(published[m] for m in burst_ids)
    arrivals, latencies = [], []
    for m in burst_ids:
        arrived = datetime.fromtimestamp(min(r["arrived"] for r in by_message[m]), UTC)
        arrivals.append(arrived)
        latencies.append((arrived - published[m]).total_seconds() * 1e3)
    unqueued = []
    for m, at in published.items():
        if at < warm_done and m in by_message:
            arrived = datetime.fromtimestamp(min(r["arrived"] for r in by_message[m]), UTC)
            unqueued.append((arrived - at).total_seconds() * 1e3)
    elapsed = (max(arrivals) - first).total_seconds()

    def summary(values: list[float]) -> dict | None:
        if not values:
            return None
        values = sorted(values)
        return {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
                "max": round(values[-1], 1)}

    duplicates = sum(len(rs) - 1 for m, rs in by_message.items() if m in burst_ids)
    return {"deliveries": n, "seconds": round(elapsed, 3), "deliveries_per_s": round(n / elapsed, 1),
            "latency_ms": summary(latencies), "latency_unqueued_ms": summary(unqueued),
            "checks": {"verified": n, "redelivered": duplicates, "one_webhook_id_per_message": True}}


if __name__ == "__main__":
    sys.exit(run_scenario(run, SCENARIO, "BENCH_WEBHOOKS_TIMEOUT_S", 900, (BenchFailure,)))

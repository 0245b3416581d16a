"""Scenario ``identity``: authentication costs, on one fresh platform (issue 3).

1. ``me_vs_ping``   authenticated GET /v1/me (token verified at the gateway,
                    then one RPC to identity, which decrypts and audits the
                    profile) against GET /v1/ping (one RPC, no auth), at the
                    same connection counts, back to back. Target: /v1/me
                    req/s >= 0.5 x /v1/ping req/s.
2. ``me_under_logins``  p99 of GET /v1/me (10 connections) while 20 clients
                    log in continuously (correct passwords: the lockout and
                    the per-address limit only count failures), against its
                    p99 without them, measured just before. Target: <= 2x.
3. ``logins``       logins/s with N concurrent clients against the bcrypt
                    limit of this machine = cores / one bcrypt check's time,
                    timed in this process (``bcrypt.checkpw``, median of
                    BENCH_BCRYPT_SAMPLES) at the platform's cost.

4. ``metrics_cost``  GET /v1/me on this platform, metrics on and every
                    process's /metrics scraped once a second (15 x a usual
                    Prometheus interval), against GET /v1/me on a second
                    platform started alongside with UPGESTAO_METRICS=off (no
                    series recorded, no listener), alternated on/off/on/off
                    at each connection count (issue 18). Target: on >= 0.95 x
                    off req/s. BENCH_METRICS_COST=0 skips it.

Any non-2xx answer (an expired or refused token, a failed login) fails the
scenario (exit 1) with the first such answer in the log.

The first admin comes from UPGESTAO_ADMIN_* (as in the end-to-end tests);
IDENTITY_IP_FAILURE_LIMIT, IDENTITY_LOCKOUT_THRESHOLD and IDENTITY_LOCKOUT_BASE_S
are relaxed only so that the admin logins tried before identity has created it
cannot slow the run, and so that the login loops (20 clients taking turns with
4 users: 5 logins of one account in flight at once) stay within the budgets,
which are charged before bcrypt and given back on success (issue 11). Other
variables of this process reach the platform unchanged (e.g.
IDENTITY_MAX_WORKERS, recorded in the parameters).

The platform uses the local defaults (SQLite per service) like ``ping``;
BENCH_IDENTITY_DATABASE=postgresql gives every service its own fresh
PostgreSQL database instead (BENCH_PG_DSN, dropped afterwards).

    BENCH_DURATION_S          seconds per HTTP measurement (10)
    BENCH_WARMUP_S            unrecorded warm-up of /v1/ping and /v1/me (3)
    BENCH_IDENTITY_CONCURRENCY  connections for /v1/me vs /v1/ping (10,50)
    BENCH_ME_LOADED_CONNS     connections of the /v1/me p99 measurement (10)
    BENCH_LOGIN_LOAD_CLIENTS  login loops during the loaded measurement (20)
    BENCH_LOGIN_CLIENTS       concurrent clients of the logins/s measurement (4,8)
    BENCH_LOGIN_S             seconds per logins/s measurement (10)
    BENCH_LOGIN_USERS         staff users the login loops take turns with (4)
    BENCH_BCRYPT_SAMPLES      timed bcrypt checks for the limit (7)
    BENCH_IDENTITY_DATABASE   sqlite (default) | postgresql
    BENCH_IDENTITY_TIMEOUT_S  hard limit of the whole scenario (720)
    BENCH_METRICS_COST        1 (default): run phase 4, the metrics' cost; 0: skip it
    BENCH_LOADGEN             wrk | python (default: wrk if installed)
    IDENTITY_BCRYPT_COST      the platform's bcrypt cost, also used for the limit (12)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from urllib.parse import urlsplit

import bcrypt
from common import (
    PG_ADMIN,
    UNTHROTTLED_GATEWAY,
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
)
from loadgen import run_load, wrk_available
from upgestao_platform import SERVICE_NAMES, Platform, free_address

SCENARIO = "identity"
ME = "/v1/me"
PING = "/v1/ping"
LOGIN = "/v1/auth/login"
TARGET_ME_OVER_PING = 0.5  # /v1/me req/s >= 0.5 x /v1/ping req/s
TARGET_P99_UNDER_LOGINS = 2.0  # p99 of /v1/me with login load <= 2 x without
TARGET_METRICS_ON_OVER_OFF = 0.95  # /v1/me req/s with metrics on (scraped) >= 0.95 x with metrics off
SCRAPE_INTERVAL_S = 1.0

ADMIN_EMAIL = "admin@bench.upgestao.example.com"
ADMIN_PASSWORD = "Quartzo-Azul-Girassol-42"
STAFF_PASSWORD = "Girassol-Azul-Quartzo-77"
ADMIN_ENV = {
    "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL,
    "UPGESTAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15",
    "UPGESTAO_ADMIN_NAME": "Admin do Benchmark",
    # Every attempt is charged before bcrypt (atomically: no parallel extra guesses) and given back when
    # the password was right; the only failures here are the first admin's logins tried before identity
    # created it. 20 login loops on 4 users keep 5 attempts of one account (all 20 of one address) in
    # flight: allowances above that. Successful logins do the same work either way.
    "IDENTITY_IP_FAILURE_LIMIT": "1000",
    "IDENTITY_LOCKOUT_THRESHOLD": "100",
    "IDENTITY_LOCKOUT_BASE_S": "1",
    **UNTHROTTLED_GATEWAY,
}
HTTP_TIMEOUT_S = 30.0


class BenchFailure(Exception):
    """A request the scenario needs answered 2xx was not."""


# -- small HTTP client ---------------------------------------------------------------


def call(base_url: str, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    """(status, JSON body or text); status 0 when the connection failed."""
    parts = urlsplit(base_url)
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def _short(answer: object) -> str:
    return json.dumps(answer)[:400] if not isinstance(answer, str) else answer[:400]


def login(base_url: str, email: str, password: str) -> dict:
    status, answer = call(base_url, "POST", LOGIN, {"email": email, "password": password})
    if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
        raise BenchFailure(f"POST {LOGIN} as {email} answered {status}: {_short(answer)}")
    return answer


def wait_for_admin(base_url: str, timeout: float = 60.0) -> dict:
    """identity creates the first admin at start (from UPGESTAO_ADMIN_*): wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = call(base_url, "POST", LOGIN, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        if status == 200 and isinstance(answer, dict):
            return answer
        if status in (404, 405):
            raise BenchFailure(f"POST {LOGIN} answered {status}: the gateway has no login route ({_short(answer)})")
        if time.monotonic() > deadline:
            raise BenchFailure(f"the first admin cannot log in after {timeout:.0f} s: {status} {_short(answer)}")
        time.sleep(1.0)


def _years_ago(years: int) -> str:
    today = date.today()
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28).isoformat()


def staff_payload(n: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    digits = tag[:4].translate(str.maketrans("abcdef", "123456"))
    return {
        "full_name": f"Beatriz Carvalho Bench {n}",
        "email": f"bench.{n}.{tag}@example.com.br",
        "phone": f"(11) 9{n % 10}{digits[:3]}-{(n * 37) % 10000:04d}",
        "birth_date": _years_ago(30),
        "address": {
            "street": "Rua Augusta",
            "number": "1500",
            "complement": "ap 12",
            "district": "Consolação",
            "city": "São Paulo",
            "state": "SP",
            "postal_code": "01304-001",
            "country": "BR",
        },
        "job_title": "Atendente",
        "gender": "feminino",
        "role": "attendant",
        "password": STAFF_PASSWORD,
    }


def create_staff(base_url: str, admin_token: str, n: int) -> str:
    """A new attendant; returns its e-mail (password STAFF_PASSWORD)."""
    payload = staff_payload(n)
    status, answer = call(base_url, "POST", "/v1/users", payload, token=admin_token)
    if status != 201:
        raise BenchFailure(f"POST /v1/users answered {status}: {_short(answer)}")
    return payload["email"]


# -- measurements --------------------------------------------------------------------






def checked_load(base_url: str, path: str, connections: int, duration: float, kind: str, token: str | None = None):
    """run_load, logged; raises BenchFailure on any non-2xx answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    r = run_load(base_url + path, connections, duration, kind, headers=headers)
    log(
        f"{path:<9} c={connections:<3} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
        f"non-2xx {r.non_2xx}  socket errors {r.errors}"
    )
    if r.non_2xx or not r.requests:
        status, answer = call(base_url, "GET", path, token=token)
        raise BenchFailure(
            f"GET {path} at c={connections}: {r.non_2xx} non-2xx of {r.requests} answers "
            f"(a request now answers {status}: {_short(answer)})"
        )
    return r


SHED_STATUS = 503


def _shed(status: int, text: bytes) -> bool:
    """A login refused at once because identity's bcrypt queue is full (not a failure)."""
    return status == SHED_STATUS and b"/problems/service-busy" in text


class LoginLoop:
    """``clients`` threads, each POSTing /v1/auth/login in a closed loop (keep-alive),
    taking turns with the given e-mails; every answer is recorded with its end time."""

    def __init__(self, base_url: str, emails: list[str], clients: int, password: str = STAFF_PASSWORD) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.emails, self.password, self.clients = emails, password, clients
        self.records: list[list[tuple[float, float, int]]] = [[] for _ in range(clients)]  # (end, ms, status)
        self.errors = [0] * clients
        self.first_failure: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _worker(self, i: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S)
        records, k = self.records[i], i
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        perf = time.perf_counter
        while not self._stop.is_set():
            body = json.dumps({"email": self.emails[k % len(self.emails)], "password": self.password})
            k += self.clients
            t0 = perf()
            try:
                conn.request("POST", LOGIN, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.errors[i] += 1
                self.first_failure = self.first_failure or f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S)
                self._stop.wait(0.1)
                continue
            t1 = perf()
            records.append((t1, (t1 - t0) * 1e3, response.status))
            if _shed(response.status, text):
                # identity's bcrypt queue is full: a well-behaved client waits Retry-After
                self._stop.wait(float(response.getheader("Retry-After") or 1))
                continue
            if response.status != 200 and self.first_failure is None:
                self.first_failure = f"{response.status}: {text[:300].decode('utf-8', 'replace')}"
        conn.close()

    def __enter__(self) -> LoginLoop:
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        deadline = time.monotonic() + HTTP_TIMEOUT_S + 5
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            log("WARNING: some login clients did not stop in time (daemon threads, left behind)")

    def window(self, start: float, end: float) -> dict:
        """Answers that arrived between ``start`` and ``end`` (time.perf_counter())."""
        inside = [(ms, status) for records in self.records for (t, ms, status) in list(records) if start <= t < end]
        ok = sorted(ms for ms, status in inside if status == 200)
        shed = sum(1 for _, status in inside if status == SHED_STATUS)
        statuses: dict[str, int] = {}
        for _, status in inside:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        elapsed = end - start
        return {
            "clients": self.clients,
            "window_s": round(elapsed, 2),
            "logins": len(ok),
            "per_s": round(len(ok) / elapsed, 2) if elapsed > 0 else None,
            "p50_ms": round(percentile(ok, 50), 1) if ok else None,
            "p99_ms": round(percentile(ok, 99), 1) if ok else None,
            "shed_503_busy": shed,  # refused at once by identity's full bcrypt queue, retried after Retry-After
            "non_200": len(inside) - len(ok) - shed,
            "statuses": statuses,
            "errors": sum(self.errors),
        }

    def check(self, what: str, figures: dict) -> None:
        if figures["non_200"] or figures["errors"] or not figures["logins"]:
            raise BenchFailure(
                f"{what}: {figures['logins']} logins, {figures['non_200']} non-200, {figures['errors']} "
                f"connection errors; first failure: {self.first_failure}"
            )


def wait_until_busy(loop: LoginLoop, timeout: float) -> None:
    """Until every client of ``loop`` has had one answer (the load is on), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(loop.records[i] or loop.errors[i] for i in range(loop.clients)):
        time.sleep(0.05)


def bcrypt_limit(cost: int, samples: int, cores: int) -> dict:
    """One bcrypt check's time in this process (median of ``samples``) and cores / that time."""
    password = STAFF_PASSWORD.encode()
    t0 = time.perf_counter()
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=cost))
    hash_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        if not bcrypt.checkpw(password, hashed):
            raise RuntimeError("bcrypt.checkpw rejected its own hash")
        times.append((time.perf_counter() - t0) * 1e3)
    check_ms = median(times)
    return {
        "cost": cost,
        "cores": cores,
        "checkpw_ms": round(check_ms, 1),
        "checkpw_samples_ms": [round(x, 1) for x in times],
        "hashpw_ms": round(hash_ms, 1),
        "limit_per_s": round(cores * 1e3 / check_ms, 2),
    }


# -- the platform ----------------------------------------------------------------------


@contextlib.contextmanager
def databases(kind: str) -> Iterator[dict[str, str]]:
    """Environment variables naming each service's database: none for SQLite (the
    local default, under the data dir), fresh PostgreSQL databases otherwise."""
    if kind == "sqlite":
        yield {}
        return
    if kind != "postgresql":
        raise SystemExit(f"BENCH_IDENTITY_DATABASE: sqlite or postgresql, not {kind!r}")
    import psycopg2
    from upgestao_kernel.config import env_prefix

    tag = uuid.uuid4().hex[:8]
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    dsn = admin.get_dsn_parameters()
    user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
    names = {service: f"bench_identity_{service}_{tag}" for service in SERVICE_NAMES}
    created: list[str] = []
    try:
        env = {}
        for service, name in names.items():
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            created.append(name)
            env[f"{env_prefix(service)}_DATABASE_URL"] = f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
        yield env
    finally:
        for name in created:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()




# -- the metrics' cost ------------------------------------------------------------------


class Scraper:
    """GET every process's ``/metrics`` of ``platform`` every ``interval`` seconds (a Prometheus, faster)."""

    def __init__(self, platform: Platform, interval: float = SCRAPE_INTERVAL_S) -> None:
        self.urls = [url for name in sorted(platform.metrics_addresses) if (url := platform.metrics_url(name))]
        self.interval = interval
        self.scrapes = self.failures = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-scraper", daemon=True)

    def _loop(self) -> None:
        import urllib.request

        while not self._stop.wait(self.interval):
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        self.bytes += len(answer.read())
                        self.scrapes += 1
                except OSError:
                    self.failures += 1

    def __enter__(self) -> Scraper:
        if not self.urls:
            raise BenchFailure("the platform serves no /metrics: nothing to scrape")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def metrics_cost(platform: Platform, token_on: str, *, database: str, levels: list[int], duration: float,
                 warmup: float, kind: str) -> dict:
    """/v1/me on ``platform`` (metrics on, scraped) against a second platform with ``UPGESTAO_METRICS=off``,
    alternated twice per connection count."""
    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-off-") as data_dir,
        databases(database) as db_env,
    ):
        off = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                       env={**ADMIN_ENV, **db_env, "UPGESTAO_METRICS": "off"}, echo=log)
        with off:
            admin = wait_for_admin(off.url)
            email = create_staff(off.url, admin["access_token"], 0)
            token_off = login(off.url, email, STAFF_PASSWORD)["access_token"]
            status, answer = call(off.url, "GET", ME, token=token_off)
            if status != 200:
                raise BenchFailure(f"GET {ME} on the metrics-off platform answered {status}: {_short(answer)}")
            on_figures, off_figures, ratios = {}, {}, {}
            with Scraper(platform) as scraper:
                checked_load(platform.url, ME, 10, warmup, kind, token_on)  # warm-up, unrecorded
                checked_load(off.url, ME, 10, warmup, kind, token_off)
                for c in levels:
                    on_runs, off_runs = [], []
                    for _ in range(2):  # on, off, on, off: drift in the machine's load hits both alike
                        on_runs.append(checked_load(platform.url, ME, c, duration, kind, token_on))
                        off_runs.append(checked_load(off.url, ME, c, duration, kind, token_off))
                    platform.check_alive()
                    off.check_alive()
                    on_rps = sum(r.rps for r in on_runs) / len(on_runs)
                    off_rps = sum(r.rps for r in off_runs) / len(off_runs)
                    key = f"c{c}"
                    on_figures[key] = {"rps": round(on_rps, 1), "runs": [r.summary() for r in on_runs]}
                    off_figures[key] = {"rps": round(off_rps, 1), "runs": [r.summary() for r in off_runs]}
                    ratios[key] = {
                        "rps": ratio(on_rps, off_rps),
                        "p50": ratio(median([r.p50_ms for r in on_runs]), median([r.p50_ms for r in off_runs])),
                        "p99": ratio(max(r.p99_ms for r in on_runs), max(r.p99_ms for r in off_runs)),
                    }
                    log(f"metrics cost c={c}: on {on_rps:.1f} req/s, off {off_rps:.1f} req/s = "
                        f"{ratios[key]['rps']} x")
            if scraper.failures:
                raise BenchFailure(f"{scraper.failures} scrapes of the metrics-on platform failed")
            scrapes = {"scrapes": scraper.scrapes, "targets": len(scraper.urls), "interval_s": scraper.interval,
                       "bytes_per_scrape": round(scraper.bytes / max(1, scraper.scrapes))}
    return {"on": on_figures, "off": off_figures, "ratios": ratios, "scrapes": scrapes}


# -- the scenario --------------------------------------------------------------------


def run() -> dict:
    duration = env_float("BENCH_DURATION_S", 10.0)
    warmup = env_float("BENCH_WARMUP_S", 3.0)
    levels = [int(x) for x in (os.environ.get("BENCH_IDENTITY_CONCURRENCY") or "10,50").split(",")]
    loaded_conns = env_int("BENCH_ME_LOADED_CONNS", 10)
    login_load_clients = env_int("BENCH_LOGIN_LOAD_CLIENTS", 20)
    login_clients = [int(x) for x in (os.environ.get("BENCH_LOGIN_CLIENTS") or "4,8").split(",")]
    login_s = env_float("BENCH_LOGIN_S", 10.0)
    login_users = env_int("BENCH_LOGIN_USERS", 4)
    bcrypt_samples = env_int("BENCH_BCRYPT_SAMPLES", 7)
    database = (os.environ.get("BENCH_IDENTITY_DATABASE") or "sqlite").lower()
    cost = env_int("IDENTITY_BCRYPT_COST", 12)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    kind = os.environ.get("BENCH_LOADGEN") or ("wrk" if wrk_available() else "python")
    loadgens: set[str] = set()
    load_before = load_average()
    figures: dict = {}
    baseline: dict = {}
    ratios: dict = {}

    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir,
        databases(database) as db_env,
    ):
        platform = Platform(
            data_dir=data_dir,
            amqp_uri=amqp_uri,
            http_address=free_address(),
            env={**ADMIN_ENV, **db_env},
            echo=log,
        )
        started = time.monotonic()
        with platform:
            url = platform.url
            log(f"platform ready in {time.monotonic() - started:.1f} s at {url} ({database}); load generator {kind}")

            # -- users: the first admin creates one attendant for /v1/me and a few for the login loops
            t0 = time.monotonic()
            admin = wait_for_admin(url)
            me_email = create_staff(url, admin["access_token"], 0)
            login_emails = [create_staff(url, admin["access_token"], n) for n in range(1, login_users + 1)]
            for email in login_emails:  # every login user works before the loops start
                login(url, email, STAFF_PASSWORD)
            log(f"admin + {1 + login_users} attendants ready in {time.monotonic() - t0:.1f} s")

            def me_token(needed_s: float) -> str:
                """A fresh access token for /v1/me, valid for at least ``needed_s`` more seconds."""
                tokens = login(url, me_email, STAFF_PASSWORD)
                ttl = tokens.get("expires_in")
                if isinstance(ttl, int | float) and ttl < needed_s + 30:
                    raise BenchFailure(f"the access token lives {ttl} s, the next phase needs {needed_s:.0f} s")
                status, answer = call(url, "GET", ME, token=tokens["access_token"])
                if status != 200:
                    raise BenchFailure(f"GET {ME} with a fresh token answered {status}: {_short(answer)}")
                return tokens["access_token"]

            # -- 1. /v1/me against /v1/ping, back to back at each connection count
            token = me_token(2 * warmup + 2 * len(levels) * (duration + 5))
            checked_load(url, PING, 10, warmup, kind)  # warm-up, unrecorded
            checked_load(url, ME, 10, warmup, kind, token)
            figures["me"], baseline["ping"], ratios["me/ping"] = {}, {}, {}
            for c in levels:
                key = f"c{c}"
                ping = checked_load(url, PING, c, duration, kind)
                me = checked_load(url, ME, c, duration, kind, token)
                platform.check_alive()
                figures["me"][key], baseline["ping"][key] = me.summary(), ping.summary()
                ratios["me/ping"][key] = {
                    "rps": ratio(me.rps, ping.rps),
                    "p50": ratio(me.p50_ms, ping.p50_ms),
                    "p99": ratio(me.p99_ms, ping.p99_ms),
                }
                loadgens.update((ping.loadgen, me.loadgen))

            # -- 2. /v1/me p99 alone, then with login_load_clients logging in continuously
            token = me_token(3 * duration + 60)
            quiet = checked_load(url, ME, loaded_conns, duration, kind, token)
            with LoginLoop(url, login_emails, login_load_clients) as loop:
                wait_until_busy(loop, timeout=30)
                begin = time.perf_counter()
                loaded = checked_load(url, ME, loaded_conns, duration, kind, token)
                logins = loop.window(begin, time.perf_counter())
            log(
                f"   with {login_load_clients} login clients: {logins['per_s']} logins/s (p50 {logins['p50_ms']} "
                f"ms, p99 {logins['p99_ms']} ms), non-200 {logins['non_200']}"
            )
            loop.check("login loops during GET /v1/me", logins)
            platform.check_alive()
            key = f"c{loaded_conns}"
            baseline["me_quiet"] = {key: quiet.summary()}
            figures["me_under_logins"] = {key: loaded.summary(), "logins": logins}
            ratios["me_under_logins/me_quiet"] = {
                "p99": ratio(loaded.p99_ms, quiet.p99_ms),
                "p50": ratio(loaded.p50_ms, quiet.p50_ms),
                "rps": ratio(loaded.rps, quiet.rps),
            }

            # -- 3. logins/s against cores / one bcrypt check (timed here, the platform idle)
            limit = bcrypt_limit(cost, bcrypt_samples, cores)
            log(
                f"bcrypt cost {cost}: checkpw {limit['checkpw_ms']} ms (median of {bcrypt_samples}), hashpw "
                f"{limit['hashpw_ms']} ms; limit {cores} cores / checkpw = {limit['limit_per_s']} logins/s"
            )
            baseline["bcrypt"] = limit
            figures["logins"], ratios["logins/bcrypt_limit"] = {}, {}
            for n in login_clients:
                with LoginLoop(url, login_emails, n) as loop:
                    wait_until_busy(loop, timeout=30)
                    begin = time.perf_counter()
                    time.sleep(login_s)
                    got = loop.window(begin, time.perf_counter())
                log(
                    f"{LOGIN} x{n:<3} {got['per_s']:6.2f} logins/s  p50 {got['p50_ms']} ms  p99 {got['p99_ms']} ms  "
                    f"= {got['per_s'] / limit['limit_per_s']:.2f} x the bcrypt limit"
                )
                loop.check(f"{n} login clients", got)
                figures["logins"][f"n{n}"] = got
                ratios["logins/bcrypt_limit"][f"n{n}"] = ratio(got["per_s"], limit["limit_per_s"])
            platform.check_alive()

            # -- 4. the metrics' cost: this platform (on, scraped each second) against one with metrics off
            if env_int("BENCH_METRICS_COST", 1):
                me_on = me_token(2 * len(levels) * 2 * (duration + 5) + 120)
                cost = metrics_cost(platform, me_on, database=database, levels=levels, duration=duration,
                                    warmup=warmup, kind=kind)
                figures["me_metrics_on"], baseline["me_metrics_off"] = cost["on"], cost["off"]
                ratios["me_metrics_on/off"] = cost["ratios"]
                figures["scrapes"] = cost["scrapes"]

    ratios["targets"] = {
        "me/ping rps >=": TARGET_ME_OVER_PING,
        "me_under_logins/me_quiet p99 <=": TARGET_P99_UNDER_LOGINS,
    }
    if "me_metrics_on/off" in ratios:
        ratios["targets"]["me_metrics_on/off rps >="] = TARGET_METRICS_ON_OVER_OFF
    ratios["meets"] = {
        **{
            f"me_metrics_on/off {k}": v["rps"] is not None and v["rps"] >= TARGET_METRICS_ON_OVER_OFF
            for k, v in ratios.get("me_metrics_on/off", {}).items()
        },
        **{
            f"me/ping {k}": v["rps"] is not None and v["rps"] >= TARGET_ME_OVER_PING
            for k, v in ratios["me/ping"].items()
        },
        "me_under_logins p99": ratios["me_under_logins/me_quiet"]["p99"] is not None
        and ratios["me_under_logins/me_quiet"]["p99"] <= TARGET_P99_UNDER_LOGINS,
    }
    notes = [
        "closed loop, keep-alive; the platform, the load generators, RabbitMQ and the bcrypt timing share "
        "the machine's cores: every figure is compared with a baseline measured in the same run",
        f"me/ping: GET {ME} (Bearer token, same user throughout) / GET {PING}, back to back per connection count",
        f"me_under_logins: GET {ME} at c={loaded_conns} with {login_load_clients} clients logging in "
        f"(correct passwords, {login_users} users in turn) / the same without them, measured just before",
        "logins/bcrypt_limit: logins/s (HTTP 200 answers in the window) / (cores / median bcrypt.checkpw "
        "time in the bench process at the same cost)",
    ]
    socket_errors = sum(f["errors"] for group in (figures["me"], baseline["ping"]) for f in group.values())
    if socket_errors:
        notes.append(f"WARNING: {socket_errors} socket errors (wrk) in the me/ping measurements")
    return result(
        SCENARIO,
        parameters={
            "duration_s": duration,
            "warmup_s": warmup,
            "concurrency": levels,
            "me_loaded_connections": loaded_conns,
            "login_load_clients": login_load_clients,
            "login_clients": login_clients,
            "login_window_s": login_s,
            "login_users": login_users,
            "bcrypt_cost": cost,
            "bcrypt_samples": bcrypt_samples,
            "loadgen": sorted(loadgens),
            "log_level": os.environ.get("UPGESTAO_LOG_LEVEL", "INFO"),
            "databases": "SQLite (platform defaults)" if database == "sqlite" else "PostgreSQL (fresh databases)",
            "identity_max_workers": os.environ.get("IDENTITY_MAX_WORKERS") or "default",
        },
        figures=figures,
        baseline=baseline,
        ratios=ratios,
        load_average_1m={"before": load_before, "after": load_average()},
        notes=notes,
    )


if __name__ == "__main__":
    raise SystemExit(run_scenario(run, "identity", "BENCH_IDENTITY_TIMEOUT_S", 720, (BenchFailure,)))

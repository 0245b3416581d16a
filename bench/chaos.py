"""``make chaos``: the platform keeps its promises while processes die, the broker and the
database restart and consumers stall (issue 9) -- and this proves it against a client's record.

One run:

1. starts a fresh platform (``Platform``, its supervisor restarting whatever dies) in a fresh
   RabbitMQ vhost, on fresh PostgreSQL databases (``CHAOS_DATABASE=sqlite``: the embedded default);
2. runs a mixed workload through the gateway from a *recording* client: attendants create
   customers (each with a unique e-mail), read them, rename them, read their own profile;
   attendants also open conversations with their customers and send messages into them, each with a
   ``client_message_id`` that a send repeats until it is answered (messaging, issue 13);
   a dpo searches the audit log; every couple of seconds an attendant asks for a password reset
   (``POST /v1/auth/password-reset``) for one of the staff users the run made, or now and then for
   an e-mail nobody has. Every request carries its own ``X-Request-ID`` and is recorded
   with its answer: ``ack`` (2xx), ``rejected`` (4xx: certainly not applied) or ``unknown``
   (5xx, no answer, a timeout: the effect may or may not have happened). Every first login of a
   user (the admin, each staff user) asks identity for a new-login alert;
3. injects faults at moments drawn from a seeded random schedule (``--seed`` reproduces the
   schedule and the workload's choices): ``kill`` (SIGKILL of any service or relay, or of the
   local SMTP sink ``mail-sink``),
   ``stall`` (SIGSTOP of one process for a few seconds, then SIGCONT), ``broker``
   (``rabbitmqctl stop_app`` for a few seconds, then ``start_app``: the machine's own broker, so
   only when the AMQP host is local), ``postgres`` (``pg_ctlcluster ... restart``, PostgreSQL runs only);
4. after the last fault, waits for quiescence (ready, queues drained, the audit log caught up) and
   checks against the client's record:

   * every acknowledged customer exists exactly once (found by its e-mail and in the full
     listing), with the name of its last acknowledged rename (or of a later unknown one);
     no customer exists that the client never asked for; none whose creation was rejected;
   * every acknowledged audited request (personal-data routes, audit queries) has its audit
     record(s), no access is recorded twice, seqs are gap-free, and ``audit verify`` (privacy's
     verifier over HTTP, with the log's public key) passes;
   * every message whose send was acknowledged is in its conversation exactly once, with the body it
     was sent with; one whose every attempt went unanswered at most once; one whose every attempt was
     refused never (the ``client_message_id`` of a repeated send is the same, so a repeat never doubles);
   * the mail (the notifier's deliveries, as ``GET /v1/notifications/deliveries`` answers the dpo,
     once every one is final or the quiescence is over, against the sink's ``.eml`` files): each
     acknowledged reset for a known user has its delivery (at most one more per reset whose answer
     was lost), each user who logged in exactly one new-login alert; every delivery ends ``sent``
     and confirmed (the sink can always say), its Message-ID in exactly one file addressed to its
     recipient; no Message-ID in two files, no file no delivery asked for, none to an unknown
     e-mail. A delivery given up because its notice is gone is listed, not a violation;
   * the webhooks (issue 15: the run registers one integration for ``message.created`` with the field
     ``conversations``, to a receiver in this process that verifies every delivery with the
     ``standardwebhooks`` package): each acknowledged message reached it, every delivery verified, all the
     deliveries of one message under one ``webhook-id``, none of a message whose every send was refused;
   * no message is left in any queue but the parking queues (each parked message is listed
     with its error) and ``upgestao.unrouted`` (events no consumer is bound for yet, by routing key);
   * no request answered 5xx (or 4xx) whose effect was applied anyway: the gateway keys every
     write and asks again with the same key when an answer is lost (``upgestao_kernel.keyed_requests``),
     so a 5xx means "not carried out"; each one found is listed as a violation;
   * recovery: for each fault, the time from injection until the fault is over (the process
     restarted, SIGCONT sent, the broker or PostgreSQL back) and the gateway answers ``/readyz``
     200 again; p50 and p99 by kind.

It prints a table, writes ``bench/results/chaos.json`` and exits 1 on any violation.

    python bench/chaos.py --duration 600 --seed 7
    make chaos DURATION=600 SEED=7 [CHAOS_DATABASE=sqlite] [FAULTS=kill,stall]

Options (and environment): ``--duration`` (CHAOS_DURATION_S, 120), ``--seed`` (CHAOS_SEED,
random; printed), ``--database`` (CHAOS_DATABASE, postgresql), ``--faults`` (CHAOS_FAULTS,
kill,stall,broker,postgres), ``--fault-every`` (CHAOS_FAULT_EVERY_S, mean seconds between
faults, 10), ``--workers`` (CHAOS_WORKERS, 3), ``--plan`` (a fixed schedule instead of a random one:
``kill:identity@10,stall:privacy@20/4,broker@40/5`` -- kind:target@seconds/duration).
``--fault-every`` / ``--duration`` give about duration/fault-every faults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import requests
from common import RESULTS, UNTHROTTLED_GATEWAY, log, machine, percentile
from upgestao_platform import MAIL_SERVICE, MAIL_SINK, SERVICE_NAMES, Platform, RabbitAdmin, RestartPolicy, free_address
from webhook_receiver import Receiver as WebhookReceiver

SCENARIO = "chaos"
# audit records one request of the workload leaves: a create or a rename seals the fields and opens
# them for its answer (two accesses of the subject), a read or an audit query is one access
RECORDS_PER_REQUEST = {"create": 2, "update": 2, "read": 1, "me": 1, "audit": 1}
FAULT_KINDS = ("kill", "stall", "broker", "postgres")
FAULT_WEIGHTS = {"kill": 4, "stall": 2, "broker": 1, "postgres": 1}
ADMIN_EMAIL = "admin@chaos.upgestao.example.com"
ADMIN_PASSWORD = "Quartzo-Azul-Girassol-42"
STAFF_PASSWORD = "Girassol-Azul-Quartzo-77"
PLATFORM_ENV = {
    **UNTHROTTLED_GATEWAY,
    "UPGESTAO_ENV": "test",
    "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL,
    "UPGESTAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15",
    "UPGESTAO_ADMIN_NAME": "Admin do Caos",
    # the chaos client logs in only a few times; failures (before the admin exists) must not lock it out
    "IDENTITY_IP_FAILURE_LIMIT": "100000",
    "IDENTITY_LOCKOUT_BASE_S": "1",
    # logins are not what this measures: a cheaper hash leaves the two cores to the workload
    "IDENTITY_BCRYPT_COST": "4",
    "UPGESTAO_RETRY_DELAYS_MS": "200,1000,5000",
    # password resets are part of the workload: a throttled request is answered 202 too and sends nothing,
    # so neither budget may run out (an account's counts on while its requests come less than a window apart)
    "IDENTITY_RESET_ACCOUNT_LIMIT": "100",
    "IDENTITY_RESET_ADDRESS_LIMIT": "100000",
    "IDENTITY_RESET_WINDOW_S": "60",
    # the mail is checked against the local sink's files: never a server given in the environment
    "SMTP_URL": "",
    # a claim left by a killed notifier is settled (by the sink's word), and a soft failure tried again, within
    # the quiescence: 15 s still outlasts an SMTP transaction through the longest stall (8 s, timeouts 10 s)
    "NOTIFIER_STALE_AFTER_S": "15",
    "NOTIFIER_RETRY_BASE_S": "2",
    "NOTIFIER_RETRY_FACTOR": "1",
    # the webhooks of every message (issue 15) reach the run's own receiver on loopback; an attempt failed by a
    # fault (messaging away, the receiver's connection cut) is tried again within the quiescence
    "UPGESTAO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "INTEGRATIONS_RETRY_DELAYS_S": "0,1,2,4,8,8,8,8,8,8",
    # a claim left by a killed integrations process is settled within the quiescence: claims of 8 per endpoint
    # (one round of POSTs) make the stale window 2 x 15 + 2 x 15 + 30 = 90 s (with the default 64 it is 300 s)
    "INTEGRATIONS_CLAIMED_PER_ENDPOINT": "8",
}
# every so often an attendant asks for a password reset (about RESET_EVERY_S apart), for a staff user of the run
# or, UNKNOWN_RESET_SHARE of the time, for an e-mail nobody has; RESET_TARGETS extra users exist only to be asked
# for, and no account is asked for more than RESETS_PER_ACCOUNT times (its budget above never runs out)
RESET_EVERY_S = 2.5
UNKNOWN_RESET_SHARE = 0.2
RESET_TARGETS = 4
RESETS_PER_ACCOUNT = 80
# a message send whose answer was lost is repeated with the same client_message_id, at most this many times
SEND_ATTEMPTS = 3
# the notifier's deliveries: their final states, and the reason of one given up because its notice is gone
# (upgestao_notifier.domain.deliveries.NOTICE_GONE: an expired or withdrawn notice, a finding, not a violation)
FINAL_DELIVERY_STATES = ("sent", "hard_failed", "suppressed")
NOTICE_GONE = "the notice is no longer available"
RESET_KIND, NEW_LOGIN_KIND = "password_reset", "new_login"
# the gateway asks again for a write whose answer was lost for up to UPGESTAO_RPC_RETRY_BUDGET_S (30 s),
# then makes a last attempt of up to UPGESTAO_RPC_TIMEOUT_S (10 s): a client waits longer than both
HTTP_TIMEOUT_S = 60.0
# a process killed repeatedly from outside is not a crash loop of its own making: allow more deaths
CHAOS_RESTART_POLICY = RestartPolicy(initial_delay_s=0.5, max_delay_s=10.0, reset_after_s=30.0, crash_limit=12,
                                     crash_window_s=60.0)
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PG_VERSION_DIR = Path("/etc/postgresql")


class ChaosError(Exception):
    """The run could not be carried out (not a violation of the platform's promises)."""


# -- the fault schedule ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the workload started
    kind: str  # kill | stall | broker | postgres
    target: str = ""  # the process (kill, stall)
    duration_s: float = 0.0  # stall and broker outage length

    def label(self) -> str:
        what = f"{self.kind}:{self.target}" if self.target else self.kind
        return what + (f"/{self.duration_s:g}s" if self.duration_s else "")


def random_schedule(seed: int, duration_s: float, kinds: tuple[str, ...], every_s: float,
                    targets: list[str]) -> list[Fault]:
    """Faults at exponentially spaced moments over ``duration_s`` (none in the first 5 s nor the
    last 10 %), kinds weighted by FAULT_WEIGHTS; the same seed gives the same schedule."""
    rng = random.Random(seed)
    weights = [FAULT_WEIGHTS[k] for k in kinds]
    faults, t = [], 5.0
    end = duration_s * 0.9
    while True:
        t += rng.expovariate(1.0 / every_s)
        if t >= end:
            return faults
        kind = rng.choices(kinds, weights)[0]
        if kind == "kill":
            faults.append(Fault(round(t, 2), kind, rng.choice(targets)))
        elif kind == "stall":
            faults.append(Fault(round(t, 2), kind, rng.choice(targets), round(rng.uniform(2.0, 8.0), 1)))
        elif kind == "broker":
            faults.append(Fault(round(t, 2), kind, "", round(rng.uniform(2.0, 6.0), 1)))
        else:
            faults.append(Fault(round(t, 2), kind))


def parse_plan(text: str) -> list[Fault]:
    """``kill:identity@10,stall:privacy@20/4,broker@40/5,postgres@60``."""
    faults = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        what, _, when = item.partition("@")
        at, _, duration = when.partition("/")
        kind, _, target = what.partition(":")
        if kind not in FAULT_KINDS or not at:
            raise ChaosError(f"--plan item {item!r}: expected kind[:target]@seconds[/duration], kinds {FAULT_KINDS}")
        if kind in ("kill", "stall") and target not in process_names():
            raise ChaosError(f"--plan item {item!r}: target must be one of {', '.join(process_names())}")
        faults.append(Fault(float(at), kind, target, float(duration or (5 if kind in ("stall", "broker") else 0))))
    return sorted(faults, key=lambda f: f.at_s)


def process_names() -> list[str]:
    """Every process a fault may hit: the services, their relays and the local SMTP sink (the platform starts
    one, supervised like the others, whenever the notifier runs and no SMTP_URL is given: PLATFORM_ENV)."""
    sink = [MAIL_SINK] if MAIL_SERVICE in SERVICE_NAMES else []
    return [*SERVICE_NAMES, *(f"{name}-relay" for name in SERVICE_NAMES), *sink]


# -- the recording client --------------------------------------------------------------------


@dataclass
class Op:
    """One request the client made, and what it learnt."""

    kind: str  # create | read | update | me | audit | reset | conversation | send | page | check-*
    request_id: str
    method: str
    path: str
    status: int = 0  # 0: no answer
    outcome: str = "unknown"  # ack | rejected | not_sent (connection refused) | unknown
    started: float = 0.0
    ended: float = 0.0
    audited: bool = False  # a 2xx here must leave audit record(s)
    email: str | None = None
    customer_id: str | None = None
    value: str | None = None  # the name a create or rename asked for
    user_id: str | None = None  # the staff user a password reset was asked for (None: an e-mail nobody has)
    conversation_id: str | None = None  # the conversation a message was sent to (or that was opened)
    problem: str | None = None  # the problem type's slug, or the connection error


class Client:
    """A gateway client that logs in again when its token is refused and records every request."""

    def __init__(self, base_url: str, record: Callable[[Op], None], email: str, password: str) -> None:
        self.base_url = base_url
        self.record = record
        self.email, self.password = email, password
        self.session = requests.Session()
        self.token: str | None = None

    def login(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                response = self.session.post(self.base_url + "/v1/auth/login", timeout=HTTP_TIMEOUT_S,
                                             json={"email": self.email, "password": self.password})
                if response.status_code == 200:
                    self.token = response.json()["access_token"]
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise ChaosError(f"could not log in as {self.email} within {timeout:.0f} s: {last}")

    def call(self, kind: str, method: str, path: str, *, audited: bool, record: bool = True,
             **fields) -> tuple[Op, object]:
        """One request; on 401 log in again and repeat it (a 401 changes nothing)."""
        for _ in range(3):
            op = Op(kind, f"chaos-{kind}-{uuid.uuid4().hex}", method, path, audited=audited,
                    **{k: v for k, v in fields.items()
                       if k in ("email", "customer_id", "value", "user_id", "conversation_id")})
            body = fields.get("json")
            op.started = time.time()
            answer: object = None
            try:
                response = self.session.request(
                    method, self.base_url + path, json=body, params=fields.get("params"), timeout=HTTP_TIMEOUT_S,
                    headers={"Authorization": f"Bearer {self.token}", "X-Request-ID": op.request_id})
                op.status = response.status_code
                try:
                    answer = response.json()
                except ValueError:
                    answer = response.text
            except requests.RequestException as exc:
                op.problem = type(exc).__name__
                if isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc):
                    op.outcome = "not_sent"  # the connection was refused: nothing reached the gateway
                    time.sleep(0.2)
            op.ended = time.time()
            if op.status == 401:
                self.login()
                continue
            if 200 <= op.status < 300:
                op.outcome = "ack"
            elif 400 <= op.status < 500:
                op.outcome = "rejected"
            if isinstance(answer, dict) and op.status >= 400:
                op.problem = str(answer.get("type", "")).rsplit("/", 1)[-1] or op.problem
            if record:
                self.record(op)
            return op, answer
        raise ChaosError(f"{method} {path}: refused three times after logging in again")


def years_ago(years: int) -> str:
    today = datetime.now(SAO_PAULO).date()
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:
        return date(today.year - years, today.month, 28).isoformat()


def staff_payload(role: str, n: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    return {
        "full_name": f"Caos {role} {n}", "email": f"chaos.{role}{n}.{tag}@example.com.br",
        "phone": f"(11) 9{n % 10}{(uuid.uuid4().int % 1000):03d}-{(uuid.uuid4().int % 10000):04d}",
        "birth_date": years_ago(30), "job_title": "Atendente", "gender": "feminino", "role": role,
        "password": STAFF_PASSWORD,
        "address": {"street": "Rua Augusta", "number": "1500", "complement": "ap 12", "district": "Consolação",
                    "city": "São Paulo", "state": "SP", "postal_code": "01304-001", "country": "BR"},
    }


class Workload:
    """Attendant workers and a dpo, each a thread; every request recorded in ``ops``. ``users`` are the
    accounts of the run (id -> e-mail: the admin, the staff, the reset targets), ``logged_in`` those that
    signed in (each is owed one new-login alert)."""

    def __init__(self, base_url: str, seed: int, workers: int,
                 assign_role: Callable[[str, str], None] | None = None, webhook_url: str | None = None) -> None:
        self.base_url = base_url
        # every message sent is also a webhook to this address (the run's receiver), signed with webhook_secret
        self.webhook_url = webhook_url
        self.webhook_secret: str | None = None
        # the dpo is an attendant made dpo by the system (identity's assign-role): no admin may make one
        self.assign_role = assign_role
        self.seed = seed
        self.workers = workers
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.clients: list[Client] = []
        self.dpo: Client | None = None
        self.users: dict[str, str] = {}
        self.logged_in: set[str] = set()
        self.resets_asked: Counter = Counter()  # user id -> password resets asked for so far
        self.conversations: dict[str, Client] = {}  # conversation id -> the attendant who opened it (sees it)

    def record(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def prepare(self) -> None:
        admin = Client(self.base_url, lambda op: None, ADMIN_EMAIL, ADMIN_PASSWORD)
        admin.login(timeout=180)
        op, me = admin.call("setup-me", "GET", "/v1/me", audited=False, record=False)
        if op.status != 200 or not isinstance(me, dict):
            raise ChaosError(f"reading the admin's profile: {op.status} {me}")
        self.users[me["id"]] = ADMIN_EMAIL
        self.logged_in.add(me["id"])
        if self.webhook_url:
            op, answer = admin.call("setup-integration", "POST", "/v1/integrations", audited=False, record=False,
                                    json={"name": "CRM do caos", "url": self.webhook_url, "events": ["message.created"],
                                          "fields": ["conversations"],
                                          "privacy_policy_url": "https://crm.chaos.example.com/privacy"})
            if op.status != 201:
                raise ChaosError(f"registering the integration: {op.status} {answer}")
            self.webhook_secret = answer["secret"]
        for n in range(self.workers + 1 + RESET_TARGETS):
            role = "dpo" if n == self.workers else "attendant"
            payload = staff_payload("attendant", n)
            op, answer = admin.call("setup-user", "POST", "/v1/users", audited=False, record=False, json=payload)
            if op.status != 201:
                raise ChaosError(f"creating the {role} user: {op.status} {answer}")
            self.users[answer["id"]] = payload["email"]
            if n > self.workers:
                continue  # a reset target: never signs in
            if role == "dpo":
                if self.assign_role is None:
                    raise ChaosError("no way to make the dpo (identity's assign-role) was given")
                self.assign_role(answer["id"], "dpo")
            client = Client(self.base_url, self.record, payload["email"], payload["password"])
            client.login()
            self.logged_in.add(answer["id"])
            (self.clients.append(client) if role == "attendant" else setattr(self, "dpo", client))

    def start(self) -> None:
        for i, client in enumerate(self.clients):
            self.threads.append(threading.Thread(target=self._guard, args=(self._attendant, client, i),
                                                 name=f"attendant-{i}", daemon=True))
        self.threads.append(threading.Thread(target=self._guard, args=(self._dpo, self.dpo, self.workers),
                                             name="dpo", daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=HTTP_TIMEOUT_S * 4)

    def _guard(self, loop: Callable[[Client, random.Random], None], client: Client, i: int) -> None:
        try:
            loop(client, random.Random(self.seed * 1000 + i))
        except Exception as exc:  # noqa: BLE001 - reported as a failed run
            self.errors.append(f"{threading.current_thread().name}: {type(exc).__name__}: {exc}")

    def _attendant(self, client: Client, rng: random.Random) -> None:
        mine: list[str] = []  # ids of this worker's acknowledged customers
        talks: list[str] = []  # ids of the conversations this worker opened (assigned to it: it sees them)
        n = 0
        next_reset = time.monotonic() + rng.uniform(0.0, RESET_EVERY_S)
        while not self.stop.is_set():
            n += 1
            if time.monotonic() >= next_reset:
                self._reset(client, rng)
                next_reset = time.monotonic() + RESET_EVERY_S * rng.uniform(0.5, 1.5)
                continue
            choice = rng.choices(("create", "read", "update", "me", "conversation", "send", "page"),
                                 (4, 3, 2, 1, 1, 4, 1))[0]
            if choice != "create" and not mine:
                choice = "create"
            if choice in ("send", "page") and not talks:
                choice = "conversation"
            if choice == "conversation":
                self._open_conversation(client, rng.choice(mine), talks)
                continue
            if choice == "send":
                self._send(client, rng.choice(talks))
                continue
            if choice == "page":
                conversation = rng.choice(talks)
                # (audited per message opened: a page of a conversation whose sends all failed opens nothing)
                client.call("page", "GET", f"/v1/conversations/{conversation}/messages", audited=False,
                            conversation_id=conversation, params={"limit": 20})
                continue
            if choice == "create":
                email = f"chaos.{uuid.uuid4().hex[:12]}@example.com"
                name = f"Cliente Caos {uuid.uuid4().hex[:6]} v0"
                op, answer = client.call("create", "POST", "/v1/customers", audited=True, email=email, value=name,
                                         json={"full_name": name, "email": email})
                if op.outcome == "ack" and isinstance(answer, dict):
                    op.customer_id = answer.get("id")
                    mine.append(op.customer_id)
            elif choice == "read":
                customer = rng.choice(mine)
                client.call("read", "GET", f"/v1/customers/{customer}", audited=True, customer_id=customer)
            elif choice == "update":
                customer = rng.choice(mine)
                name = f"Cliente Caos {uuid.uuid4().hex[:6]} v{n}"
                client.call("update", "PATCH", f"/v1/customers/{customer}", audited=True, customer_id=customer,
                            value=name, json={"full_name": name})
            else:
                client.call("me", "GET", "/v1/me", audited=True)
            time.sleep(rng.uniform(0.0, 0.05))

    def _open_conversation(self, client: Client, customer_id: str, talks: list[str]) -> None:
        op, answer = client.call("conversation", "POST", "/v1/conversations", audited=False, customer_id=customer_id,
                                 json={"customer_id": customer_id, "channel": "web"})
        if op.outcome == "ack" and isinstance(answer, dict):
            op.conversation_id = answer.get("id")
            talks.append(op.conversation_id)
            with self._lock:
                self.conversations[op.conversation_id] = client

    def _send(self, client: Client, conversation_id: str) -> None:
        """One message, sent again with the same ``client_message_id`` until it is answered (at most
        SEND_ATTEMPTS times): what a chat client does after a lost answer. Its body names the id."""
        client_message_id = f"chaos-{uuid.uuid4().hex}"
        body = message_body(client_message_id)
        for _ in range(SEND_ATTEMPTS):
            op, _answer = client.call("send", "POST", f"/v1/conversations/{conversation_id}/messages", audited=True,
                                      conversation_id=conversation_id, value=client_message_id,
                                      json={"body": body, "direction": "outgoing",
                                            "client_message_id": client_message_id})
            if op.outcome in ("ack", "rejected") or self.stop.is_set():
                return

    def _reset(self, client: Client, rng: random.Random) -> None:
        """A password reset for a staff user of the run (one asked for least so far, below its budget), or for an
        e-mail nobody has (also when every account had its share). Each known one is owed an e-mail."""
        with self._lock:
            staff = [user_id for user_id, address in self.users.items() if address != ADMIN_EMAIL
                     and self.resets_asked[user_id] < RESETS_PER_ACCOUNT]
            user_id = None
            if staff and rng.random() >= UNKNOWN_RESET_SHARE:
                fewest = min(self.resets_asked[u] for u in staff)
                user_id = rng.choice([u for u in staff if self.resets_asked[u] == fewest])
                self.resets_asked[user_id] += 1
        address = self.users[user_id] if user_id else f"chaos.nobody.{uuid.uuid4().hex[:12]}@example.com"
        client.call("reset", "POST", "/v1/auth/password-reset", audited=True, email=address, user_id=user_id,
                    json={"email": address})

    def _dpo(self, client: Client, rng: random.Random) -> None:
        while not self.stop.is_set():
            with self._lock:
                created = [op.customer_id for op in self.ops if op.kind == "create" and op.customer_id]
            params = {"limit": 20}
            if created and rng.random() < 0.7:
                params["subject_id"] = rng.choice(created)
            client.call("audit", "GET", "/v1/audit", audited=True, params=params)
            self.stop.wait(rng.uniform(0.3, 1.0))


# -- fault injection -------------------------------------------------------------------------


@dataclass
class FaultRun:
    fault: Fault
    injected: float = 0.0  # time.time()
    over: float = 0.0  # the fault ended (process back, SIGCONT, broker/PostgreSQL back)
    recovered: float = 0.0  # and /readyz answered 200
    pid: int | None = None
    note: str = ""

    @property
    def recovery_s(self) -> float | None:
        return round(self.recovered - self.injected, 3) if self.recovered else None


class Injector:
    """Carries out a schedule against a platform whose supervisor runs in this process."""

    def __init__(self, platform: Platform, schedule: list[Fault], amqp_uri: str, database: str) -> None:
        self.platform = platform
        self.schedule = schedule
        self.amqp_uri = amqp_uri
        self.database = database
        self.runs: list[FaultRun] = []
        self.errors: list[str] = []
        self.stopped: set[str] = set()  # SIGSTOPped processes, to resume at any exit
        self.broker_down = False

    def run(self, t0: float, stop: threading.Event) -> None:
        for fault in self.schedule:
            if stop.wait(max(0.0, t0 + fault.at_s - time.time())):
                return
            try:
                self.runs.append(self.inject(fault))
            except Exception as exc:  # noqa: BLE001 - reported
                self.errors.append(f"{fault.label()}: {type(exc).__name__}: {exc}")
            finally:
                self.undo()

    def inject(self, fault: Fault) -> FaultRun:
        run = FaultRun(fault)
        log(f"fault {fault.label()} at +{fault.at_s:.1f} s")
        if fault.kind in ("kill", "stall"):
            proc = self._live(fault.target)
            run.pid = proc.pid
            run.injected = time.time()
            if fault.kind == "kill":
                proc.send_signal(signal.SIGKILL)
                run.over = self._restarted(fault.target, proc.pid)
            else:
                os.kill(proc.pid, signal.SIGSTOP)
                self.stopped.add(fault.target)
                time.sleep(fault.duration_s)
                os.kill(proc.pid, signal.SIGCONT)
                self.stopped.discard(fault.target)
                run.over = time.time()
        elif fault.kind == "broker":
            self._check_local_broker()
            run.injected = time.time()
            self.broker_down = True
            rabbitmqctl("stop_app")
            time.sleep(fault.duration_s)
            rabbitmqctl("start_app")
            self.broker_down = False
            run.over = time.time()
        elif fault.kind == "postgres":
            if self.database != "postgresql":
                raise ChaosError("a PostgreSQL restart on a SQLite run")
            run.injected = time.time()
            restart_postgres()
            run.over = time.time()
        run.recovered = self._ready_after(run.over)
        if not run.recovered:
            run.note = "not ready within 120 s"
        return run

    def undo(self) -> None:
        """Never leave a process stopped or the broker down (an exception, the end of the run)."""
        for name in list(self.stopped):
            proc = self.platform.children.get(name)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
            self.stopped.discard(name)
        if self.broker_down:
            rabbitmqctl("start_app")
            self.broker_down = False

    def _live(self, name: str, timeout: float = 60.0):
        """The child ``name`` once it runs (it may be waiting for a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.platform.children[name]
            if proc.poll() is None:
                return proc
            time.sleep(0.1)
        raise ChaosError(f"{name} did not come back within {timeout:.0f} s")

    def _restarted(self, name: str, old_pid: int, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.platform.children[name]
            if proc.pid != old_pid and proc.poll() is None:
                return time.time()
            time.sleep(0.05)
        raise ChaosError(f"{name} was not restarted within {timeout:.0f} s")

    def _ready_after(self, since: float, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            asked = time.time()
            status, _ = self.platform.readyz(timeout=2.0)
            if status == 200 and asked >= since:
                return time.time()
            time.sleep(0.2)
        return 0.0

    def _check_local_broker(self) -> None:
        host = urlsplit(self.amqp_uri).hostname or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ChaosError(f"broker faults only on this machine's broker, not {host}")


def rabbitmqctl(action: str) -> None:
    result = subprocess.run(["rabbitmqctl", "-q", action], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ChaosError(f"rabbitmqctl {action}: exit {result.returncode}: {result.stderr.strip()[:300]}")


def restart_postgres() -> None:
    versions = sorted(p.name for p in PG_VERSION_DIR.iterdir()) if PG_VERSION_DIR.is_dir() else []
    if not versions:
        raise ChaosError(f"no PostgreSQL cluster under {PG_VERSION_DIR}")
    result = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ChaosError(f"pg_ctlcluster restart: exit {result.returncode}: {result.stderr.strip()[:300]}")


class Supervisor:
    """``Platform.supervise()`` every 100 ms in a thread; what it did is kept."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.events: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.1):
            self.events += self.platform.supervise()

    @property
    def gave_up(self) -> list:
        return [e for e in self.events if e.kind == "gave_up"]


# -- the environment: vhost, databases -------------------------------------------------------


@contextmanager
def environment(database: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(amqp_uri, vhost, database environment) -- all fresh, deleted afterwards."""
    from upgestao_kernel.config import env_prefix
    from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database

    tag = uuid.uuid4().hex[:8]
    vhost = f"upgestao-chaos-{tag}"
    amqp_uri = create_vhost(vhost)
    created: list[str] = []
    env: dict[str, str] = {}
    try:
        if database == "postgresql":
            for service in SERVICE_NAMES:
                name = f"chaos_{service}_{tag}"
                env[f"{env_prefix(service)}_DATABASE_URL"] = create_database(name)
                created.append(name)
        elif database != "sqlite":
            raise ChaosError(f"CHAOS_DATABASE: postgresql or sqlite, not {database!r}")
        yield amqp_uri, vhost, env
    finally:
        for name in created:
            for _ in range(30):  # PostgreSQL may be restarting
                try:
                    drop_database(name)
                    break
                except Exception:  # noqa: BLE001 - retried, then left behind (named in the log)
                    time.sleep(2)
            else:
                log(f"could not drop database {name}")
        try:
            delete_vhost(vhost)
        except Exception as exc:  # noqa: BLE001
            log(f"could not delete vhost {vhost}: {exc}")


# -- quiescence and the checks ---------------------------------------------------------------


def assign_role(platform: Platform, user_id: str, role: str) -> None:
    """Give ``user_id`` the ``role`` as the system: identity's ``assign-role`` command (a compliance role
    is never given through the API by an admin: separation of duties)."""
    result = subprocess.run([platform.python, "-m", "upgestao_identity", "assign-role", "--user-id", user_id,
                             "--role", role], env=platform.environment("identity"), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ChaosError(f"assign-role {role}: {result.stderr.strip()[-500:]}")


def wait_ready(platform: Platform, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if platform.readyz(timeout=5.0)[0] == 200:
            return True
        time.sleep(0.5)
    return False


def management(admin: RabbitAdmin, method: str, path: str, body: object | None = None,
               timeout: float = 120.0) -> tuple[int, str]:
    """A management-API call, retried while the API does not answer (the broker may be restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.request(method, path, body)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def queues(admin: RabbitAdmin, vhost: str) -> list[dict]:
    status, body = management(admin, "GET", f"/api/queues/{quote(vhost, safe='')}?columns=name,type,messages,"
                                            "messages_ready,messages_unacknowledged,consumers,arguments")
    if status != 200:
        raise ChaosError(f"management API: GET queues answered {status}: {body[:200]}")
    return json.loads(body)


def peek(admin: RabbitAdmin, vhost: str, queue: str, count: int = 100) -> list[dict]:
    """Up to ``count`` messages of ``queue``, put back where they were."""
    status, body = management(
        admin, "POST", f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get",
        {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 2000})
    return json.loads(body) if status == 200 else []


def is_stream(queue: dict) -> bool:
    return queue.get("type") == "stream" or (queue.get("arguments") or {}).get("x-queue-type") == "stream"


def orphan_reply(queue: dict) -> bool:
    """The RPC reply queue of a caller that died (a killed gateway): nobody consumes it and the
    broker deletes it ``x-expires`` after its last use -- its replies are worthless, not lost work."""
    return (queue["name"].startswith("rpc.reply-") and not queue.get("consumers")
            and bool((queue.get("arguments") or {}).get("x-expires")))


def may_hold_messages(queue: dict) -> bool:
    return (is_stream(queue) or queue["name"].endswith(".parked") or queue["name"] == "upgestao.unrouted"
            or orphan_reply(queue))


def drained(admin: RabbitAdmin, vhost: str) -> list[dict]:
    """Queues that still hold messages and should not."""
    return [q for q in queues(admin, vhost) if (q.get("messages") or 0) > 0 and not may_hold_messages(q)]


def export_records(client: Client) -> tuple[dict, list[dict]]:
    """The audit log's export (header, records) as the dpo."""
    response = client.session.get(client.base_url + "/v1/audit/export", timeout=300,
                                  headers={"Authorization": f"Bearer {client.token}"})
    if response.status_code == 401:
        client.login()
        return export_records(client)
    if response.status_code != 200:
        raise ChaosError(f"GET /v1/audit/export: {response.status_code} {response.text[:300]}")
    lines = [line for line in response.text.splitlines() if line.strip()]
    header = json.loads(lines[0])
    records = []
    for line in lines[1:]:
        item = json.loads(line)  # {"seq", "leaf_hash", "record"}
        records.append({**item["record"], "seq": item["seq"]})
    return header, records


def audit_verify(platform: Platform, client: Client) -> tuple[bool, str]:
    """privacy's ``audit verify`` over HTTP with the log's public key (from the platform's key file)."""
    env = platform.environment()
    key = subprocess.run([platform.python, "-m", "upgestao_privacy", "audit", "public-key"], env=env,
                         capture_output=True, text=True, timeout=120)
    if key.returncode != 0:
        return False, f"audit public-key: exit {key.returncode}: {key.stderr.strip()[-500:]}"
    client.login()  # a fresh access token: the one from the start of a long run has expired (15 min)
    result = subprocess.run(
        [platform.python, "-m", "upgestao_privacy", "audit", "verify", "--url", platform.url,
         "--public-key", key.stdout.strip(), "--samples", "64"],
        env={**env, "UPGESTAO_TOKEN": client.token or ""}, capture_output=True, text=True, timeout=600)
    return result.returncode == 0, (result.stdout.strip() or result.stderr.strip())[-2000:]


@dataclass
class Findings:
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    facts: dict[str, object] = field(default_factory=dict)

    def violation(self, kind: str, detail: str) -> None:
        self.violations[kind].append(detail)


def check(platform: Platform, workload: Workload, vhost: str, quiesce_s: float) -> Findings:
    found = Findings()
    checker = workload.clients[0]
    ops = list(workload.ops)

    def settled_get(path: str, params: dict | None = None, *, method: str = "GET", body: dict | None = None,
                    client: Client | None = None, audited: bool = True) -> object:
        """A check read, repeated until answered (the platform is quiet now: 5xx is a finding)."""
        for _ in range(10):
            op, answer = (client or checker).call("check", method, path, audited=audited, params=params,
                                                  **({"json": body} if body is not None else {}))
            if op.status == 200:
                return answer
            if op.status == 404:
                return None
            time.sleep(1.0)
        raise ChaosError(f"{method} {path} {params or ''}: no 200 after 10 tries (last {op.status} {op.problem})")

    # every customer there is, from the full listing (no customer twice, none the client never asked for)
    log("checking: listing every customer")
    listed: dict[str, dict] = {}
    times_listed: Counter = Counter()
    cursor = None
    while True:
        page = settled_get("/v1/customers", {"limit": 100, **({"cursor": cursor} if cursor else {})})
        for item in page["items"]:
            listed[item["id"]] = item
            times_listed[item["id"]] += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    for customer_id, count in times_listed.items():
        if count > 1:
            found.violation("duplicated", f"customer {customer_id} listed {count} times")
    by_email: dict[str, list[str]] = defaultdict(list)
    for customer_id, item in listed.items():
        by_email[(item.get("email") or "").lower()].append(customer_id)

    # each e-mail asked for: exactly once when acknowledged, never when rejected
    creates = [op for op in ops if op.kind == "create"]
    asked = {op.email for op in creates}
    unknown_applied, unknown_not_applied, fivexx_applied = [], 0, []
    for op in creates:
        ids = by_email.get(op.email, [])
        if len(ids) > 1:
            found.violation("duplicated", f"customer e-mail {op.email}: {len(ids)} customers {ids}")
        if op.outcome == "ack":
            if not ids:
                found.violation("lost", f"acknowledged create {op.request_id} ({op.email}) not found")
            elif op.customer_id not in ids:
                found.violation("lost", f"acknowledged create {op.request_id}: id {op.customer_id}, found {ids}")
        elif op.outcome in ("rejected", "not_sent") and ids:
            found.violation("rejected_then_applied", f"create {op.request_id} answered {op.status} "
                                                     f"({op.problem}) but {op.email} exists")
        elif op.outcome == "unknown":
            if ids:
                unknown_applied.append(op)
                if op.status >= 500:
                    fivexx_applied.append(f"{op.method} {op.path} {op.request_id} answered {op.status} "
                                          f"({op.problem}); the customer exists")
            else:
                unknown_not_applied += 1
    for email, ids in by_email.items():
        if email not in asked:
            found.violation("phantom", f"customers {ids} exist but the client never asked for them")

    # the e-mail lookup (blind index) finds acknowledged customers: a sample
    log("checking: e-mail lookups")
    acked = [op for op in creates if op.outcome == "ack"]
    for op in random.Random(len(acked)).sample(acked, min(25, len(acked))):
        # the e-mail in the body: never in a URL an ingress logs
        items = settled_get("/v1/customers/search", method="POST", body={"email": op.email})["items"]
        if [item["id"] for item in items] != [op.customer_id]:
            found.violation("lost", f"GET /v1/customers?email={op.email}: {[i['id'] for i in items]}, "
                                    f"expected [{op.customer_id}]")

    # renames: the last acknowledged value, or a later unknown one
    by_customer: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in ("create", "update") and op.customer_id:
            by_customer[op.customer_id].append(op)
    renamed_checked = 0
    for customer_id, history in by_customer.items():
        history.sort(key=lambda op: op.started)
        acked_at = [i for i, op in enumerate(history) if op.outcome == "ack"]
        if not acked_at:
            continue
        last = acked_at[-1]
        allowed = {history[last].value} | {op.value for op in history[last + 1:] if op.outcome == "unknown"}
        customer = listed.get(customer_id)
        renamed_checked += 1
        if customer is None:
            continue  # already counted as lost above
        if customer.get("full_name") not in allowed:
            found.violation("lost", f"customer {customer_id}: name {customer.get('full_name')!r}, expected one of "
                                    f"{sorted(allowed)} (the last acknowledged rename lost)")
        for op in history:
            applied = customer.get("full_name") == op.value
            if op.kind == "update" and op.outcome == "unknown" and op.status >= 500 and applied:
                fivexx_applied.append(f"{op.method} {op.path} {op.request_id} answered {op.status} ({op.problem}); "
                                      "the rename is in place")
            if op.kind == "update" and op.outcome in ("rejected", "not_sent") and applied:
                found.violation("rejected_then_applied", f"rename {op.request_id} answered {op.status} but applied")
    found.facts["customers"] = {"asked": len(creates), "listed": len(listed),
                                "acknowledged": len(acked),
                                "rejected": sum(op.outcome == "rejected" for op in creates),
                                "not_sent": sum(op.outcome == "not_sent" for op in creates),
                                "unknown_applied": len(unknown_applied), "unknown_not_applied": unknown_not_applied,
                                "names_checked": renamed_checked}
    found.facts["answered_5xx_then_applied"] = fivexx_applied
    for item in fivexx_applied:  # the gateway keys writes and asks again: a 5xx must mean "not applied"
        found.violation("answered_5xx_then_applied", item)

    check_messages(found, workload, settled_get)

    # the mail: every delivery final (or the quiescence over), then the deliveries against the sink's files
    def deliveries() -> list[dict]:
        items, cursor = [], None
        while True:  # as the dpo (notifications.read)
            page = settled_get("/v1/notifications/deliveries", {"limit": 200, **({"cursor": cursor} if cursor else {})},
                               client=workload.dpo)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    if platform.sink_address is None:
        found.violation("mail_not_checked", "no local SMTP sink ran (SMTP_URL given?): the mail cannot be checked")
    else:
        log("checking: the mail (waiting until every delivery is final)")
        settled = settled_deliveries(deliveries, list(workload.ops), workload.logged_in, quiesce_s)
        found.facts["mail"] = check_mail(found, list(workload.ops), workload.users, workload.logged_in, settled,
                                         sink_mail(platform.mail_dir), confirmable=True)

    # the audit log, once everything it should hold has arrived
    log("checking: the audit log (waiting until it holds every audited request)")
    ops = list(workload.ops)  # with the check reads
    expected = {op.request_id for op in ops if op.audited and op.outcome == "ack"}
    admin = RabbitAdmin(platform.amqp_uri)
    deadline = time.monotonic() + quiesce_s
    next_note = time.monotonic() + 10
    records: list[dict] = []
    header: dict = {}
    while True:
        # (every audit query, this one included, is itself audited: the log never stops growing
        # while it is watched, so "complete" means: every request the client expects is in the export)
        header, records = export_records(workload.dpo)
        missing = expected - {r.get("request_id") for r in records}
        # our own queries keep a few messages moving (the export's audit record, its RPC): a queue
        # counts as not drained only when it holds messages at three looks, a second apart
        busy = drained(admin, vhost)
        for _ in range(2):
            if not busy:
                break
            time.sleep(1.0)
            still = {q["name"] for q in drained(admin, vhost)}
            busy = [q for q in busy if q["name"] in still]
        if not busy and not missing:
            break
        if time.monotonic() >= next_note:
            log(f"waiting: {len(missing)} audited requests not in the export (end_seq {header.get('end_seq')}); "
                f"queues not drained: {[(q['name'], q['messages']) for q in busy]}")
            next_note = time.monotonic() + 10
        if time.monotonic() >= deadline:
            for q in busy:
                found.violation("queue_not_drained", f"{q['name']}: {q['messages']} messages after {quiesce_s:.0f} s")
            break
        time.sleep(2.0)
    seen = Counter(r.get("request_id") for r in records)
    for request_id in sorted(expected - set(seen)):
        op = next(o for o in ops if o.request_id == request_id)
        found.violation("audit_missing", f"{op.method} {op.path} {request_id} answered {op.status}: no audit record")
    seqs = sorted(r["seq"] for r in records)
    if seqs and seqs != list(range(len(seqs))):
        found.violation("audit_gap", f"seqs are not 0..{len(seqs) - 1} without gaps: {len(seqs)} records from "
                                     f"{seqs[0]} to {seqs[-1]}")
    ids = Counter(r.get("audit_id") for r in records)
    for audit_id, count in ids.items():
        if count > 1:
            found.violation("audit_duplicated", f"audit_id {audit_id} stored {count} times")
    # (a notice opened for the notifier, and the address it sends to, are opened again whenever the event that
    # asked for the mail is handled again -- redelivered after a killed notifier, retried after a failed
    # transaction -- under the same request id: each is an access of its own, not one recorded twice)
    accesses = Counter(access_key(r) for r in records if r.get("request_id") in seen and not for_mail(r))
    for key, count in accesses.items():
        if count > 1:
            found.violation("audit_duplicated", f"one access recorded {count} times: {key}")
    # each request of the workload leaves exactly its records (RECORDS_PER_REQUEST); one whose outcome is
    # unknown leaves all of them or none (they are written in the transaction of the access); one
    # refused or never sent leaves none
    per_request: dict[str, Counter] = defaultdict(Counter)
    by_request: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_request[r.get("request_id")].append(r)
    for op in ops:
        if op.kind not in RECORDS_PER_REQUEST:
            continue
        want = RECORDS_PER_REQUEST[op.kind]
        mine = by_request.get(op.request_id, [])
        count = len(mine)
        per_request[op.kind][count] += 1
        allowed = {"ack": {want}, "unknown": {0, want}}.get(op.outcome, {0})
        if count not in allowed:
            kind = "audit_duplicated" if count > want else "audit_missing" if op.outcome == "ack" else "audit_wrong"
            found.violation(kind, f"{op.method} {op.path} {op.request_id} ({op.outcome}, {op.status}): {count} "
                                  f"records, expected {' or '.join(map(str, sorted(allowed)))}")
        if op.kind in ("create", "read", "update") and op.customer_id:
            for record in mine:
                if record.get("subject_id") != op.customer_id:
                    found.violation("audit_wrong", f"{op.request_id}: record subject {record.get('subject_id')}, "
                                                   f"customer {op.customer_id}")
    found.facts["records_per_request"] = {kind: {str(n): c for n, c in sorted(counts.items())}
                                          for kind, counts in sorted(per_request.items())}
    log(f"checking: audit verify over {len(records)} records")
    ok, report = audit_verify(platform, workload.dpo)
    if not ok:
        found.violation("audit_verify", report)
    found.facts["audit"] = {"records": len(records), "expected_requests": len(expected),
                            "verify": report.splitlines()[0] if report else ""}

    # queues: only parking queues and the unrouted queue may hold messages, each one explained
    explained: dict[str, list[str]] = {}
    for q in queues(admin, vhost):
        if is_stream(q) or not q.get("messages"):
            continue
        if q["name"].endswith(".parked"):
            explained[q["name"]] = [
                f"{(m.get('properties') or {}).get('headers', {})}"[:400] for m in peek(admin, vhost, q["name"])]
        elif orphan_reply(q):
            explained[q["name"]] = [f"{q['messages']} replies to a caller that died (no consumer); the broker "
                                    f"deletes the queue {q['arguments']['x-expires'] / 1000:g} s after its last use"]
        elif q["name"] == "upgestao.unrouted":
            sample = peek(admin, vhost, q["name"], 1000)
            keys = Counter(m.get("routing_key") for m in sample)
            explained[q["name"]] = [f"{q['messages']} messages, events no queue is bound for yet; of the first "
                                    f"{len(sample)}: " + ", ".join(f"{count} x {key}" for key, count in
                                                                  keys.most_common())]
    found.facts["queues_explained"] = explained
    return found


# -- the messages --------------------------------------------------------------------------------


def check_messages(found: Findings, workload: Workload, settled_get: Callable[..., object]) -> None:
    """Each message sent: exactly once when a send of it was acknowledged, at most once when none was answered,
    never when every attempt was refused; its body as sent. Read as the attendant who opened the conversation
    (it is assigned to them: the visibility rule lets them see it), every page back to the first."""
    log("checking: the messages of every conversation")
    sends: dict[str, list[Op]] = defaultdict(list)  # client_message_id -> its attempts
    for op in list(workload.ops):
        if op.kind == "send" and op.value:
            sends[op.value].append(op)
    found_bodies: Counter = Counter()
    pages = 0
    for conversation_id, owner in sorted(workload.conversations.items()):
        before = None
        while True:
            params = {"limit": 200, **({"before": before} if before else {})}
            # (each message opened is audited; a conversation whose every send failed opens nothing)
            page = settled_get(f"/v1/conversations/{conversation_id}/messages", params, client=owner, audited=False)
            pages += 1
            if page is None:
                found.violation("lost", f"conversation {conversation_id} (acknowledged) answers 404")
                break
            for item in page["items"]:
                found_bodies[(conversation_id, item.get("body"))] += 1
            if not page.get("has_more_before") or not page["items"]:
                break
            before = page["items"][0]["id"]
    outcomes = Counter()
    for client_message_id, attempts in sends.items():
        conversation_id = attempts[0].conversation_id
        body = message_body(client_message_id)
        count = found_bodies.get((conversation_id, body), 0)
        acked = any(op.outcome == "ack" for op in attempts)
        unknown = any(op.outcome == "unknown" for op in attempts)
        outcome = "ack" if acked else "unknown" if unknown else "refused"
        outcomes[outcome] += 1
        if count > 1:
            found.violation("duplicated", f"message {client_message_id} in conversation {conversation_id} "
                                          f"{count} times ({len(attempts)} attempts)")
        elif acked and count == 0:
            found.violation("lost", f"acknowledged message {client_message_id} not in conversation {conversation_id}")
        elif outcome == "refused" and count:
            found.violation("rejected_then_applied", f"message {client_message_id}: every attempt refused "
                                                     f"({[op.status for op in attempts]}) but it is there")
    found.facts["messages"] = {"sent": len(sends), **{f"sends_{k}": v for k, v in sorted(outcomes.items())},
                               "conversations": len(workload.conversations), "pages_read": pages,
                               "attempts": sum(len(a) for a in sends.values())}


# -- the webhooks ----------------------------------------------------------------------------------


@dataclass
class RunReceiver:
    """The run's webhook receiver (``bench/webhook_receiver.py``'s server in a thread of this process): every
    request verified with the ``standardwebhooks`` package once ``secret_file`` holds the integration's secret."""

    server: WebhookReceiver
    out: Path
    secret_file: Path

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/chaos"

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


@contextmanager
def webhook_receiver(directory: Path) -> Iterator[RunReceiver]:
    out, secret_file = directory / "webhooks.jsonl", directory / "webhooks.secret"
    server = WebhookReceiver(("127.0.0.1", 0), None, secret_file, out)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="webhooks",
                              daemon=True)
    thread.start()
    try:
        yield RunReceiver(server, out, secret_file)
    finally:
        server.shutdown()
        server.server_close()


def message_body(client_message_id: str) -> str:
    return f"Mensagem do caos {client_message_id}: olá, não se preocupe"


def check_webhooks(found: Findings, workload: Workload, receiver: RunReceiver, quiesce_s: float) -> None:
    """Every message whose send was acknowledged reached the integration's endpoint (at least once, each
    delivery signed and verified, every delivery of one message under one webhook-id); none whose every attempt
    was refused did; nothing else arrived."""
    log("checking: the webhooks (waiting until every acknowledged message was delivered)")
    sends: dict[str, list[Op]] = defaultdict(list)
    for op in list(workload.ops):
        if op.kind == "send" and op.value:
            sends[op.value].append(op)
    digest = {cmid: hashlib.sha256(message_body(cmid).encode()).hexdigest() for cmid in sends}
    acked = {cmid for cmid, attempts in sends.items() if any(op.outcome == "ack" for op in attempts)}
    refused = {cmid for cmid, attempts in sends.items()
               if not any(op.outcome in ("ack", "unknown") for op in attempts)}

    def delivered() -> dict[str, list[dict]]:
        by_body: dict[str, list[dict]] = defaultdict(list)
        for record in receiver.records():
            by_body[record.get("body_sha256") or ""].append(record)
        return by_body

    deadline = time.monotonic() + quiesce_s
    while True:
        by_body = delivered()
        missing = [cmid for cmid in acked if not any(r["verified"] for r in by_body.get(digest[cmid], []))]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    time.sleep(2.0)  # a delivery repeated late shows up now
    by_body = delivered()
    records = [r for rs in by_body.values() for r in rs]
    for cmid in missing:
        found.violation("webhook_lost", f"acknowledged message {cmid}: no verified delivery after {quiesce_s:.0f} s")
    for record in records:
        if not record["verified"]:
            found.violation("webhook_unverified", f"delivery {record.get('id')} did not verify")
    known = set(digest.values())
    for body_hash, rs in by_body.items():
        if len({r.get("id") for r in rs}) > 1:
            found.violation("webhook_id_changed", f"one message delivered under {len({r.get('id') for r in rs})} "
                                                  "webhook-ids")
        if body_hash not in known:
            found.violation("webhook_unexpected", f"{len(rs)} deliveries of a message the run never sent")
    for cmid in refused:
        if by_body.get(digest[cmid]):
            found.violation("webhook_of_refused", f"message {cmid}: every send refused, yet delivered")
    per_message = Counter(len(rs) for rs in by_body.values())
    found.facts["webhooks"] = {"deliveries": len(records), "messages_delivered": len(by_body),
                               "acknowledged_sends": len(acked), "delivered_more_than_once":
                               sum(n for k, n in per_message.items() if k > 1)}


# -- the mail -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """One message the sink kept (its file's name, Message-ID and recipients: never its body)."""

    name: str
    message_id: str
    to: frozenset[str]


def sink_mail(directory: Path) -> list[Mail]:
    """Every ``.eml`` file of the sink, oldest first (the sink links a file into place whole)."""
    found = []
    for path in sorted(Path(directory).glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes(), headersonly=True)
        to = message["To"]
        found.append(Mail(path.name, str(message.get("Message-ID") or "").strip(),
                          frozenset(a.addr_spec.lower() for a in (to.addresses if to is not None else ()))))
    return found


def owed_mail(ops: list[Op], logged_in: set[str]) -> Counter:
    """(kind, user id) -> the fewest deliveries the notifier must hold: one per acknowledged reset, one new-login
    alert per user who logged in."""
    owed = Counter((RESET_KIND, op.user_id) for op in ops if op.kind == "reset" and op.user_id and op.outcome == "ack")
    owed.update((NEW_LOGIN_KIND, user_id) for user_id in logged_in)
    return owed


def settled_deliveries(fetch: Callable[[], list[dict]], ops: list[Op], logged_in: set[str], timeout_s: float,
                       pause_s: float = 2.0) -> list[dict]:
    """The notifier's deliveries once each one owed exists and all are final (a claim a killed notifier left is
    settled after NOTIFIER_STALE_AFTER_S, a soft failure tried again after NOTIFIER_RETRY_BASE_S), or as they
    are when ``timeout_s`` is over (what is missing or not final then is a violation)."""
    owed = owed_mail(ops, logged_in)
    deadline = time.monotonic() + timeout_s
    next_note = time.monotonic() + 10
    while True:
        items = fetch()
        held = Counter((d["kind"], d["recipient_id"]) for d in items)
        short = sum(max(0, n - held[key]) for key, n in owed.items())
        pending = [d for d in items if d["status"] not in FINAL_DELIVERY_STATES]
        if (not short and not pending) or time.monotonic() >= deadline:
            return items
        if time.monotonic() >= next_note:
            log(f"waiting: {short} deliveries owed not yet there, {len(pending)} not final "
                f"({dict(Counter(d['status'] for d in pending))})")
            next_note = time.monotonic() + 10
        time.sleep(pause_s)


def check_mail(found: Findings, ops: list[Op], users: dict[str, str], logged_in: set[str], deliveries: list[dict],
               mails: list[Mail], *, confirmable: bool) -> dict:
    """Exactly one e-mail per (event, recipient), checked against what the sink kept; returns the facts.

    ``users``: id -> address of the run's accounts; ``confirmable``: the notifier asks the sink whether it took a
    Message-ID (NOTIFIER_ACCEPTED_LOOKUP_DIR), so an interrupted claim is never settled unconfirmed. Violations
    name ids, Message-IDs and file names only (no address)."""
    files: dict[str, list[Mail]] = defaultdict(list)
    for mail in mails:
        files[mail.message_id].append(mail)
    for message_id, kept in files.items():
        if len(kept) > 1:
            found.violation("mail_duplicated", f"Message-ID {message_id}: {len(kept)} e-mails "
                                               f"({', '.join(m.name for m in kept)})")
    by_message_id = {d["message_id"]: d for d in deliveries}
    for message_id, kept in files.items():
        if message_id not in by_message_id:
            found.violation("mail_phantom", f"{', '.join(m.name for m in kept)}: Message-ID {message_id or '(none)'} "
                                            "is no delivery's")
    listed: list[str] = []  # given up because the notice is gone: a finding, not a violation
    checked = 0
    for d in deliveries:
        what = f"delivery {d['id']} ({d['kind']}, event {d['event_id']}, {d['attempts']} attempts)"
        kept = files.get(d["message_id"], [])
        if d["status"] not in FINAL_DELIVERY_STATES:
            found.violation("mail_not_final", f"{what} still {d['status']} (last: {d.get('last_code')} "
                                              f"{d.get('last_error')})")
        elif d["status"] == "sent":
            checked += 1
            if not kept:
                found.violation("mail_lost", f"{what} is sent but the sink kept no e-mail with Message-ID "
                                             f"{d['message_id']}")
            address = users.get(d["recipient_id"])  # (one for no account of the run is listed below)
            if address is not None and any(address.lower() not in mail.to for mail in kept):
                found.violation("mail_wrong_recipient", f"{what}: {', '.join(m.name for m in kept)} not addressed "
                                                        f"to user {d['recipient_id']}")
            if confirmable and d.get("confirmed") is False:
                found.violation("mail_unconfirmed", f"{what} settled as sent unconfirmed, but the sink can always "
                                                    "say whether it took the message")
        elif d["status"] == "hard_failed" and str(d.get("last_error") or "").startswith(NOTICE_GONE):
            listed.append(f"{what}: hard_failed, {d.get('last_error')}")
        else:  # the sink never refuses for good, so nothing is suppressed or failed for good but a gone notice
            found.violation("mail_failed", f"{what} ended {d['status']} ({d.get('last_code')} {d.get('last_error')})")
        if d["status"] != "sent" and kept:
            found.violation("mail_record_wrong", f"{what} is {d['status']} but the sink kept "
                                                 f"{', '.join(m.name for m in kept)}")
    # what was asked: an acknowledged reset has its delivery, one whose answer was lost may; a user who logged in
    # has one new-login alert (one network, one first login); a reset for an e-mail nobody has sends nothing
    held = Counter((d["kind"], d["recipient_id"]) for d in deliveries)
    resets = [op for op in ops if op.kind == "reset"]
    for user_id in sorted(users):
        mine = [op for op in resets if op.user_id == user_id]
        acked = sum(op.outcome == "ack" for op in mine)
        maybe = sum(op.outcome == "unknown" for op in mine)
        got = held[(RESET_KIND, user_id)]
        if got < acked:
            found.violation("mail_lost", f"user {user_id}: {acked} acknowledged password resets, {got} deliveries")
        elif got > acked + maybe:
            found.violation("mail_duplicated", f"user {user_id}: {got} password-reset deliveries for {acked} "
                                               f"acknowledged requests and {maybe} whose answer was lost")
        alerts = held[(NEW_LOGIN_KIND, user_id)]
        if user_id in logged_in and alerts != 1:
            found.violation("mail_lost" if alerts == 0 else "mail_duplicated",
                            f"user {user_id} logged in: {alerts} new-login alerts, expected 1")
    unknown = {op.email.lower() for op in resets if op.user_id is None and op.email}
    for mail in mails:
        if mail.to & unknown:
            found.violation("mail_to_unknown", f"{mail.name}: a password reset for an e-mail nobody has was sent")
    for d in deliveries:
        if d["recipient_id"] not in users:
            listed.append(f"delivery {d['id']} ({d['kind']}): recipient {d['recipient_id']} is no account of the run")
    return {"deliveries": len(deliveries), "files": len(mails), "sent_checked": checked,
            "by_status": dict(Counter(d["status"] for d in deliveries)),
            "by_kind": dict(Counter(d["kind"] for d in deliveries)),
            "resets": {"acknowledged": sum(op.outcome == "ack" and op.user_id is not None for op in resets),
                       "unknown_outcome": sum(op.outcome == "unknown" and op.user_id is not None for op in resets),
                       "rejected": sum(op.outcome in ("rejected", "not_sent") for op in resets),
                       "unknown_email": len(unknown)},
            "new_login_users": len(logged_in), "listed": listed[:50]}


def for_mail(record: dict) -> bool:
    """An access made to send an e-mail (purpose ``notification``, or the notifier's ``notification: <kind>``)."""
    purpose = str(record.get("purpose") or "")
    return purpose == "notification" or purpose.startswith("notification:")


def access_key(record: dict) -> tuple:
    return (record.get("request_id"), record.get("service"), record.get("action"), record.get("resource_type"),
            record.get("resource_id"), record.get("subject_id"), tuple(sorted(record.get("fields") or ())),
            record.get("outcome"))


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Config:
    duration_s: float = 120.0
    seed: int = 0
    database: str = "postgresql"
    faults: tuple[str, ...] = FAULT_KINDS
    fault_every_s: float = 10.0
    workers: int = 3
    plan: list[Fault] | None = None
    quiesce_s: float = 180.0
    write: bool = True


def run_chaos(config: Config) -> dict:
    """One chaos run; returns the result (also written to bench/results/chaos.json when ``write``)."""
    kinds = tuple(k for k in config.faults if k != "postgres" or config.database == "postgresql")
    schedule = config.plan if config.plan is not None else random_schedule(
        config.seed, config.duration_s, kinds, config.fault_every_s, process_names())
    log(f"seed {config.seed}, {config.duration_s:.0f} s, {config.database}, {len(schedule)} faults planned: "
        + ", ".join(f"+{f.at_s:.0f}s {f.label()}" for f in schedule))
    started = time.time()
    with environment(config.database) as (amqp_uri, vhost, db_env), \
            tempfile.TemporaryDirectory(prefix="upgestao-chaos-") as data_dir, \
            webhook_receiver(Path(data_dir)) as receiver:
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, restart_policy=CHAOS_RESTART_POLICY, echo=log)
        platform.start(timeout=180)
        supervisor = Supervisor(platform)
        supervisor.thread.start()
        injector = Injector(platform, schedule, amqp_uri, config.database)
        workload = Workload(platform.url, config.seed, config.workers, lambda user_id, role: assign_role(
            platform, user_id, role), webhook_url=receiver.url)
        stop = threading.Event()
        try:
            workload.prepare()
            receiver.secret_file.write_text(workload.webhook_secret or "")
            workload.start()
            t0 = time.time()
            faults = threading.Thread(target=injector.run, args=(t0, stop), name="injector", daemon=True)
            faults.start()
            # the workload runs for the duration and until every planned fault is over (a fault waits
            # for the previous one's recovery, so a schedule may run late)
            time.sleep(config.duration_s)
            faults.join(timeout=max(300.0, config.duration_s))
            stop.set()
            faults.join(timeout=60)
            injector.undo()
            workload.finish()
            workload_s = time.time() - t0
            log(f"workload done: {len(workload.ops)} requests in {workload_s:.0f} s; waiting for quiescence")
            ready = wait_ready(platform)
            findings = check(platform, workload, vhost, config.quiesce_s) if ready else Findings()
            if ready:
                check_webhooks(findings, workload, receiver, config.quiesce_s)
            if not ready:
                findings.violation("not_ready", "/readyz did not answer 200 within 180 s after the last fault")
        finally:
            stop.set()
            injector.undo()
            supervisor.stop.set()
            supervisor.thread.join(timeout=5)
            platform.stop()
        logs = {name: platform.log_path(name) for name in platform.children}
        for event in supervisor.gave_up:
            findings.violation("crash_loop", event.message)
        for error in injector.errors:
            findings.violation("fault_not_carried_out", error)
        for error in workload.errors:
            findings.violation("client_error", error)
        tracebacks = {name: count_tracebacks(path) for name, path in logs.items()}
        kept = None
        # a process that died by itself (not our SIGKILL): the supervisor brought it back, but it is a finding
        self_deaths = [e for e in supervisor.events if e.kind in ("died", "gave_up") and (e.returncode or 0) > 0]
        if findings.violations or self_deaths:  # keep the platform's logs for the post-mortem
            kept = RESULTS / "chaos-logs" / f"seed-{config.seed}-{datetime.now():%Y%m%dT%H%M%S}"
            shutil.copytree(platform.log_dir, kept)
    result = summarise(config, schedule, injector, supervisor, workload, findings, started, workload_s)
    result["tracebacks_in_logs"] = {k: v for k, v in tracebacks.items() if v}
    result["logs_kept"] = str(kept) if kept else None
    wall = time.time() - time.monotonic()  # monotonic -> wall clock
    result["died_by_themselves"] = [{"name": e.name, "returncode": e.returncode, "at": wall + e.at,
                                     "after_fault": fault_before(injector.runs, wall + e.at),
                                     "error": last_error(e.message), "message": e.message} for e in self_deaths]
    if config.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{SCENARIO}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def last_error(text: str) -> str:
    """The last line of a log tail that names an exception (else its last line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("---")]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    return (errors or lines or [""])[-1][:300]


def fault_before(runs: list[FaultRun], when: float) -> str | None:
    """The fault injected last before ``when`` (time.time()), with how long before."""
    before = [run for run in runs if run.injected <= when]
    if not before:
        return None
    last = max(before, key=lambda run: run.injected)
    return f"{last.fault.label()} ({when - last.injected:.1f} s before)"


REQUEST_ID = re.compile(r"chaos-[a-z-]+-[0-9a-f]{32}")


def violating_requests(findings: Findings, ops: list[Op], runs: list[FaultRun]) -> list[dict]:
    """Each request a violation names, with when it ran relative to the fault injected last before it."""
    named = {rid for items in findings.violations.values() for item in items for rid in REQUEST_ID.findall(item)}
    out = []
    for op in ops:
        if op.request_id not in named:
            continue
        before = [run for run in runs if run.injected <= op.ended]
        last = max(before, key=lambda run: run.injected) if before else None
        after = [run for run in runs if run.injected > op.ended]
        following = min(after, key=lambda run: run.injected) if after else None
        out.append({**asdict(op), "duration_s": round(op.ended - op.started, 3),
                    "last_fault": last.fault.label() if last else None,
                    "started_after_fault_s": round(op.started - last.injected, 3) if last else None,
                    "next_fault": following.fault.label() if following else None,
                    "next_fault_after_answer_s": round(following.injected - op.ended, 3) if following else None})
    return out[:50]


def count_tracebacks(path: Path) -> int:
    try:
        return path.read_text(errors="replace").count("Traceback")
    except OSError:
        return 0


def summarise(config: Config, schedule: list[Fault], injector: Injector, supervisor: Supervisor,
              workload: Workload, findings: Findings, started: float, workload_s: float) -> dict:
    ops = workload.ops
    work = [op for op in ops if op.kind != "check"]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for run in injector.runs:
        if run.recovery_s is not None:
            by_kind[run.fault.kind].append(run.recovery_s)
    recovery = {}
    for kind, values in sorted(by_kind.items()):
        values.sort()
        recovery[kind] = {"n": len(values), "p50_s": percentile(values, 50), "p99_s": percentile(values, 99),
                          "max_s": values[-1]}
    everything = sorted(v for values in by_kind.values() for v in values)
    if everything:
        recovery["all"] = {"n": len(everything), "p50_s": percentile(everything, 50),
                           "p99_s": percentile(everything, 99), "max_s": everything[-1]}
    customers = findings.facts.get("customers", {})
    mail = findings.facts.get("mail", {})
    counts = {kind: len(items) for kind, items in findings.violations.items()}
    return {
        "scenario": SCENARIO,
        "timestamp": datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": {"seed": config.seed, "duration_s": config.duration_s, "database": config.database,
                       "fault_kinds": list(config.faults), "fault_every_s": config.fault_every_s,
                       "workers": config.workers, "plan": [f.label() + f"@{f.at_s:g}" for f in schedule]},
        "faults": {"planned": len(schedule), "injected": len(injector.runs),
                   "by_kind": dict(Counter(run.fault.kind for run in injector.runs)),
                   "runs": [{**asdict(run.fault), "injected": run.injected, "over_s": round(run.over - run.injected, 3),
                             "recovery_s": run.recovery_s, "pid": run.pid, "note": run.note}
                            for run in injector.runs]},
        "restarts": [{"name": e.name, "kind": e.kind, "returncode": e.returncode, "delay_s": e.delay_s}
                     for e in supervisor.events],
        "requests": {"total": len(work), "workload_s": round(workload_s, 1),
                     "by_kind": dict(Counter(op.kind for op in work)),
                     "by_outcome": dict(Counter(op.outcome for op in work)),
                     "by_status": dict(Counter(str(op.status) for op in work)),
                     "check_requests": len(ops) - len(work)},
        "effects_checked": {"customers": customers.get("asked", 0), "names": customers.get("names_checked", 0),
                            "audited_requests": (findings.facts.get("audit") or {}).get("expected_requests", 0),
                            "mails": mail.get("sent_checked", 0),
                            "messages": (findings.facts.get("messages") or {}).get("sent", 0)},
        "customers": customers,
        "messages": findings.facts.get("messages", {}),
        "mail": mail,
        "audit": {**findings.facts.get("audit", {}),
                  "records_per_request": findings.facts.get("records_per_request", {})},
        "lost": counts.get("lost", 0) + counts.get("mail_lost", 0),
        # effects applied more than once: customers, e-mails, or requests whose audit records repeat
        "duplicated": counts.get("duplicated", 0) + counts.get("mail_duplicated", 0) + len({
            (REQUEST_ID.findall(item) or [item])[0] for item in findings.violations.get("audit_duplicated", [])}),
        "answered_5xx_then_applied": findings.facts.get("answered_5xx_then_applied", []),
        "queues_explained": findings.facts.get("queues_explained", {}),
        "recovery": recovery,
        "violations": {kind: items[:50] for kind, items in findings.violations.items()},
        "violating_requests": violating_requests(findings, workload.ops, injector.runs),
        "ok": not findings.violations,
    }


def messages_line(messages: dict) -> str:
    return (f"  messages            {messages.get('sent', 0)} sent ({messages.get('attempts', 0)} attempts: "
            f"acknowledged {messages.get('sends_ack', 0)}, unknown {messages.get('sends_unknown', 0)}, refused "
            f"{messages.get('sends_refused', 0)}) into {messages.get('conversations', 0)} conversations, "
            f"{messages.get('pages_read', 0)} pages checked")


def render(result: dict) -> str:
    p = result["parameters"]
    faults, requests_, customers, audit = result["faults"], result["requests"], result["customers"], result["audit"]
    lines = [f"chaos: seed {p['seed']}, {p['duration_s']:.0f} s, {p['database']}, {p['workers']} attendants + 1 dpo",
             "", f"  faults injected     {faults['injected']} of {faults['planned']}: "
             + (", ".join(f"{k} {v}" for k, v in sorted(faults['by_kind'].items())) or "none"),
             f"  restarts            {sum(1 for r in result['restarts'] if r['kind'] == 'restarted')}",
             f"  requests            {requests_['total']} ("
             + ", ".join(f"{k} {v}" for k, v in sorted(requests_["by_outcome"].items()))
             + f") + {requests_['check_requests']} check reads",
             f"  effects checked     {customers.get('asked', 0)} creates, {customers.get('names_checked', 0)} names, "
             f"{audit.get('expected_requests', 0)} audited requests ({audit.get('records', 0)} records)",
             f"  unknown outcomes    creates applied {customers.get('unknown_applied', 0)}, not applied "
             f"{customers.get('unknown_not_applied', 0)}; answered 5xx then applied "
             f"{len(result['answered_5xx_then_applied'])}",
             messages_line(result.get("messages") or {}),
             mail_line(result.get("mail") or {}),
             f"  lost                {result['lost']}",
             f"  duplicated          {result['duplicated']}",
             f"  audit verify        {audit.get('verify', '-')}",
             "", "  recovery (s)        kind       n    p50     p99     max"]
    for kind, r in result["recovery"].items():
        lines.append(f"                      {kind:<9} {r['n']:>3}  {r['p50_s']:>6.2f}  {r['p99_s']:>6.2f}  "
                     f"{r['max_s']:>6.2f}")
    for death in result.get("died_by_themselves", []):
        lines.append(f"  died by itself      {death['name']} (exit code {death['returncode']}) after "
                     f"{death['after_fault']}: {death['error'][:160]}")
    for queue, items in result["queues_explained"].items():
        lines.append(f"  left in {queue}: " + "; ".join(items[:5]))
    if result["violations"]:
        lines.append("")
        lines.append("  VIOLATIONS")
        for kind, items in result["violations"].items():
            lines.append(f"    {kind}: {len(items)}")
            lines.extend(f"      {item}" for item in items[:5])
        for op in result.get("violating_requests", [])[:10]:
            lines.append(f"    request {op['request_id']}: {op['method']} {op['path']} -> {op['status']} "
                         f"({op['outcome']}) in {op['duration_s']} s, started {op['started_after_fault_s']} s "
                         f"after {op['last_fault']}; answered {op['next_fault_after_answer_s']} s before "
                         f"{op['next_fault']}")
        if result.get("logs_kept"):
            lines.append(f"    platform logs kept in {result['logs_kept']}")
    lines.append("")
    lines.append("  OK: every promise held" if result["ok"] else "  FAILED")
    return "\n".join(lines)


def mail_line(mail: dict) -> str:
    if not mail:
        return "  mail                not checked"
    resets = mail["resets"]
    return (f"  mail                {mail['files']} e-mails in the sink, {mail['deliveries']} deliveries ("
            + ", ".join(f"{k} {v}" for k, v in sorted(mail["by_status"].items())) + "): "
            + ", ".join(f"{k} {v}" for k, v in sorted(mail["by_kind"].items()))
            + f"; resets acknowledged {resets['acknowledged']}, lost answers {resets['unknown_outcome']}, "
            f"unknown e-mails {resets['unknown_email']}; {mail['new_login_users']} users logged in"
            + (f"; listed: {'; '.join(mail['listed'][:3])}" if mail["listed"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("CHAOS_DURATION_S") or 120))
    parser.add_argument("--seed", type=int, default=int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED")
                        else None)
    parser.add_argument("--database", default=os.environ.get("CHAOS_DATABASE") or "postgresql",
                        choices=("postgresql", "sqlite"))
    parser.add_argument("--faults", default=os.environ.get("CHAOS_FAULTS") or ",".join(FAULT_KINDS))
    parser.add_argument("--fault-every", type=float, default=float(os.environ.get("CHAOS_FAULT_EVERY_S") or 10))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CHAOS_WORKERS") or 3))
    parser.add_argument("--plan", default=os.environ.get("CHAOS_PLAN") or None)
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        parser.error(f"--faults: unknown {sorted(unknown)}; choose from {', '.join(FAULT_KINDS)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    try:
        config = Config(duration_s=args.duration, seed=seed, database=args.database, faults=kinds,
                        fault_every_s=args.fault_every, workers=args.workers,
                        plan=parse_plan(args.plan) if args.plan else None)
        result = run_chaos(config)
    except ChaosError as exc:
        log(f"chaos run could not be carried out: {exc}")
        return 2
    print(render(result))
    print(f"\n  written: {RESULTS / (SCENARIO + '.json')}   (reproduce: --seed {seed} --duration {args.duration:g} "
          f"--database {args.database})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Scenario ``erasure``: erasing a person with 10 messages and with 10,000, and the access bundle of a person with
10,000 messages (issue 14).

Measured on messaging's own use cases, in this process, on a fresh PostgreSQL database at messaging's head
migration (no platform: the figures are messaging's part, without RabbitMQ or the gateway in the way), acting
as privacy's broker user (``caller_service="privacy"``, what messaging checks). The erasure's time is the
``erase_subject`` call until its unit of work has committed: the key shredded, the read models and the search
index purged, the attachments' sealed values dropped and the ``messaging.subject_erased.v1`` confirmation in
the outbox (its relay publishes it within milliseconds; that part does not depend on the person's data). The
same call the ``privacy.erasure_requested.v1`` handler makes, on the handler's unit of work.

The database: a help desk of ``BENCH_ERASURE_BACKGROUND`` messages of other customers (the search index and the
read models are not empty), then, for each of ``BENCH_ERASURE_REPEAT`` repetitions, a "small" customer (S
messages, 10, in one conversation) and a "big" one (B, 10,000, over B/1,000 conversations), each with 3
attachments; the messages written as messaging's send path writes them (the ``message_created`` event with the
body sealed under the customer's key by the kernel's vault, the read-model rows of the projection's own row
changes, the search entries of the words' keyed hashes), the conversations and attachments through the use
cases. The bodies are the messaging scenario's Portuguese help-desk text.

1. ``export``: ``export_subject`` of a big and of a small customer, each in a child process of its own (so its
   peak RSS is the export's): seconds, the answer's JSON size, VmHWM after it and VmRSS before it.
2. ``erase``: the small and the big customers erased in turn (small, big, small, big...): seconds each, the SQL
   statements and the slowest of them; then checked: nothing of theirs readable (every body opened: erased),
   no search entry of theirs, another customer intact.

Ratios: big over small, erasure (target <= 1.5) and export. Written to bench/results/erasure.json.

    BENCH_ERASURE_SMALL         S (10)
    BENCH_ERASURE_BIG           B (10000)
    BENCH_ERASURE_REPEAT        pairs erased (3)
    BENCH_ERASURE_BACKGROUND    other customers' messages (20000, over 20 customers)
    BENCH_ERASURE_PLATFORM      1: also the end-to-end part on a fresh platform (erasure_platform.py); 0: not
    BENCH_ERASURE_START_S       the platform must be ready within this (240)
    BENCH_ERASURE_TIMEOUT_S     hard limit of the whole scenario (900)
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg2  # noqa: E402
from common import PG_ADMIN, env_float, env_int, load_average, log, ratio, result, run_scenario  # noqa: E402

SCENARIO = "erasure"
MIGRATIONS = "upgestao_messaging:migrations"
MiB = 1024 * 1024
TARGETS = {"erase_big_over_small <=": 1.5}
ATTACHMENTS = 3


from identity import BenchFailure  # noqa: E402  (one failure type for every bench module this scenario uses)


def _memory() -> dict[str, float]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = round(int(rest.split()[0]) * 1024 / MiB, 1)
    return values


@contextmanager
def fresh_database(tag: str) -> Iterator[str]:
    name = f"bench_erasure_{tag}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    dsn = admin.get_dsn_parameters()
    user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class Messaging:
    """Messaging's use cases on the database, acting as privacy's broker user (or as an admin for the setup)."""

    def __init__(self, url: str | None = None, data_dir: str | None = None, environ: dict | None = None) -> None:
        """On ``url`` (keys under ``data_dir``), or as a platform's messaging sees it (``environ``)."""
        from upgestao_kernel.config import load_settings
        from upgestao_kernel.db import create_engine
        from upgestao_kernel.vault import Vault, load_keys
        from upgestao_messaging.adapters.search_index import load_search_key
        from upgestao_messaging.domain.search import TermHasher

        self.environ = environ or {"MESSAGING_DATABASE_URL": url, "UPGESTAO_DATA_DIR": data_dir,
                                   "UPGESTAO_ENV": "test"}
        self.settings = load_settings("messaging", self.environ)
        url = self.settings.database_url
        self.keys = load_keys(self.settings, self.environ)
        self.vault = Vault(*self.keys)
        self.hasher = TermHasher(load_search_key(self.settings, self.environ))
        self.engine = create_engine(url)
        self.people: dict[str, object] = {}

    def api(self, *, actor: str | None = None, role: str | None = None, caller_service: str | None = None):
        from upgestao_kernel.context import RequestContext
        from upgestao_kernel.events import new_id
        from upgestao_kernel.unit_of_work import UnitOfWork
        from upgestao_messaging.adapters.projections import projections
        from upgestao_messaging.adapters.sql_repositories import with_sql_repositories
        from upgestao_messaging.service_layer.access import Deps
        from upgestao_messaging.service_layer.api import MessagingApi
        from upgestao_messaging.service_layer.attachments import SealedAttachments

        context = RequestContext(request_id=new_id(), actor_id=actor, actor_role=role, caller_service=caller_service)
        people = self.people

        class Directory:
            def lookup(self, ids):
                return {i: people[i] for i in ids if i in people}

        admin = frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                           "conversations.read_all", "teams.manage", "chats.use", "messages.moderate"})
        deps = Deps(unit_of_work=lambda: with_sql_repositories(UnitOfWork(
            self.engine, "messaging", context, projections=projections(), vault=self.vault)),
            permissions_of=lambda r: admin if r == "admin" else frozenset(), directory=Directory(),
            hasher=self.hasher, attachments=SealedAttachments(now=lambda: datetime.now(UTC)))
        return MessagingApi(deps)

    def person(self, kind: str) -> str:
        from upgestao_messaging.adapters.ports import Person

        pid = str(uuid.uuid4())
        self.people[pid] = Person(pid, kind, "admin" if kind == "staff" else None, True)
        return pid


def seed_customer(m: Messaging, text, admin: str, messages: int, per_conversation: int = 1000,
                  attachments: int = ATTACHMENTS) -> dict:
    """A customer with ``messages`` messages over ``ceil(messages / per_conversation)`` conversations (opened
    through the use cases), written in bulk as the send path writes them, and ``attachments`` files sent."""
    from erasure_seed import seed_messages

    customer = m.person("customer")
    api = m.api(actor=admin, role="admin")
    count = max(1, -(-messages // per_conversation))
    conversations = [api.open_conversation({"customer_id": customer, "channel": "email",
                                            "subject": f"Pedido de {customer[:8]}", "assignee_id": admin})["id"]
                     for _ in range(count)]
    seed_messages(m, text, customer, admin, conversations, messages)
    files = []
    for n in range(attachments):
        content = f"%PDF-1.4\n% exame {customer} {n}\n".encode() + os.urandom(2048)
        up = api.upload_attachment({"conversation_id": conversations[0], "name": f"exame-{n}.pdf",
                                    "content_b64": base64.b64encode(content).decode()})
        api.send_message(conversations[0], {"body": f"Segue o arquivo {n}", "direction": "incoming",
                                            "attachment_ids": [up["id"]]})
        files.append(up["id"])
    return {"id": customer, "conversations": conversations, "attachments": files}


def export_child(url: str, data_dir: str, subject_id: str) -> None:
    """``--export-child``: one export_subject in this fresh process, its time and memory as a JSON line."""
    m = Messaging(url, data_dir)
    privacy = m.api(caller_service="privacy")
    before = _memory()
    started = time.perf_counter()
    answer = privacy.export_subject(subject_id)
    seconds = time.perf_counter() - started
    size = len(json.dumps(answer))
    after = _memory()
    messages = sum(len(c["messages"]) for c in answer["conversations"])
    print(json.dumps({"seconds": round(seconds, 3), "bytes": size, "messages": messages,
                      "rss_before_mib": before["VmRSS"], "peak_rss_mib": after["VmHWM"],
                      "peak_over_before_mib": round(after["VmHWM"] - before["VmRSS"], 1)}))


def export(url: str, data_dir: str, subject_id: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--export-child", url, data_dir, subject_id],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise BenchFailure(f"export of {subject_id} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Statements:
    """Every SQL statement of the engine while counting: how many, and the slowest."""

    def __init__(self, engine) -> None:
        import sqlalchemy as sa

        self.items: list[tuple[float, str]] = []
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.on:
            self.items.append((time.perf_counter() - conn.info.pop("bench_t0"), " ".join(statement.split())[:90]))

    @contextmanager
    def counting(self) -> Iterator[list[tuple[float, str]]]:
        self.items, self.on = [], True
        try:
            yield self.items
        finally:
            self.on = False


def check_erased(m: Messaging, subject: dict, other: dict) -> None:
    """Nothing of ``subject`` readable: every sealed body in the event log opens as erased, no search entry, no
    attachment content; ``other`` intact."""
    import sqlalchemy as sa
    from upgestao_kernel.vault import is_erased

    with m.engine.connect() as conn:
        for who, expect_erased in ((subject, True), (other, False)):
            rows = conn.execute(sa.text(
                "SELECT data FROM events WHERE type = 'messaging.message_created.v1' AND data->>'key_subject_id' = :s"),
                {"s": who["id"]}).scalars().all()
            opened = [m.vault.decrypt(conn, who["id"], "body", row["sealed"]["body"]) for row in rows[:50]]
            if not rows or any(is_erased(v) != expect_erased for v in opened):
                raise BenchFailure(f"{'erased' if expect_erased else 'intact'} customer: bodies not as expected")
            entries = conn.execute(sa.text("SELECT count(*) FROM search_terms WHERE subject_id = :s"),
                                   {"s": who["id"]}).scalar_one()
            if (entries == 0) != expect_erased:
                raise BenchFailure(f"search entries of the {'erased' if expect_erased else 'intact'} customer: "
                                   f"{entries}")
            sealed = conn.execute(sa.text("SELECT count(*) FROM attachments WHERE subject_id = :s AND "
                                          "content_sealed IS NOT NULL"), {"s": who["id"]}).scalar_one()
            if (sealed == 0) != expect_erased:
                raise BenchFailure("attachments not as expected")


def run() -> dict:
    import sqlalchemy as sa
    from messaging import HelpDeskText
    from upgestao_kernel.migrations import upgrade

    small_n, big_n = env_int("BENCH_ERASURE_SMALL", 10), env_int("BENCH_ERASURE_BIG", 10000)
    repeat, background = env_int("BENCH_ERASURE_REPEAT", 3), env_int("BENCH_ERASURE_BACKGROUND", 20000)
    parameters = {"small_messages": small_n, "big_messages": big_n, "repeat": repeat,
                  "background_messages": background, "attachments_each": ATTACHMENTS, "database": "postgresql",
                  "measured": "messaging's use cases in-process, as privacy's broker user; then a platform, "
                              "privacy's requests through the gateway (erasure_platform.py)"}
    load_before = load_average()
    with fresh_database(uuid.uuid4().hex[:8]) as url, tempfile.TemporaryDirectory() as data_dir:
        upgrade(MIGRATIONS, url)
        m = Messaging(url, data_dir)
        text = HelpDeskText(14)
        admin = m.person("staff")
        started = time.monotonic()
        for _ in range(20 if background else 0):
            seed_customer(m, text, admin, background // 20, attachments=0)
        pairs = [(seed_customer(m, text, admin, small_n), seed_customer(m, text, admin, big_n)) for _ in range(repeat)]
        control = seed_customer(m, text, admin, small_n)  # never erased: must stay intact
        with m.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            seeded = {"messages": conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one(),
                      "search_entries": conn.execute(sa.text("SELECT count(*) FROM search_terms")).scalar_one(),
                      "seconds": round(time.monotonic() - started, 1)}
        log(f"seeded {seeded}")

        exports = {"small": export(url, data_dir, pairs[0][0]["id"]), "big": export(url, data_dir, pairs[0][1]["id"])}
        if exports["big"]["messages"] != big_n + ATTACHMENTS:
            raise BenchFailure(f"the big export holds {exports['big']['messages']} messages")
        log(f"export {exports}")

        privacy = m.api(caller_service="privacy")
        system = m.api(actor="system", role="system")
        statements = Statements(m.engine)
        times: dict[str, list[float]] = {"small": [], "big": []}
        purges: dict[str, list[float]] = {"small": [], "big": []}
        details: dict[str, list[dict]] = {"small": [], "big": []}
        for small, big in pairs:
            for size, who in (("small", small), ("big", big)):
                expected = (small_n if size == "small" else big_n) + ATTACHMENTS
                with m.engine.connect() as conn:  # the previous purge's writes flushed: not this erasure's cost
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("CHECKPOINT")
                with statements.counting() as found:
                    t0 = time.perf_counter()
                    answer = privacy.erase_subject(who["id"], "deletion", str(uuid.uuid4()))
                    seconds = time.perf_counter() - t0
                if not answer["shredded"]:
                    raise BenchFailure(f"erasure answer {answer}")
                times[size].append(seconds)
                slowest = sorted(found, reverse=True)[:4]
                t0 = time.perf_counter()
                if system.purge_erased() != 1:  # the sweep's part, after the answer
                    raise BenchFailure("the purge found nothing to do")
                purges[size].append(time.perf_counter() - t0)
                with m.engine.connect() as conn:
                    counted = conn.execute(sa.text("SELECT messages FROM subject_purges WHERE subject_id = :s"),
                                           {"s": who["id"]}).scalar_one()
                if counted != expected:
                    raise BenchFailure(f"the purge counted {counted} messages, not {expected}")
                details[size].append({"seconds": round(seconds, 4), "statements": len(found),
                                      "sql_ms": round(sum(t for t, _ in found) * 1000, 2),
                                      "slowest": [{"ms": round(s * 1000, 2), "sql": q} for s, q in slowest],
                                      "purge_seconds": round(purges[size][-1], 4)})
                check_erased(m, who, control)
            log(f"erase small {times['small'][-1] * 1000:.1f} ms, big {times['big'][-1] * 1000:.1f} ms; purge small "
                f"{purges['small'][-1] * 1000:.1f} ms, big {purges['big'][-1] * 1000:.1f} ms")
        m.engine.dispose()
    platform = None
    if env_int("BENCH_ERASURE_PLATFORM", 1):
        from erasure_platform import run_platform

        platform = run_platform(small_n, big_n, repeat, env_float("BENCH_ERASURE_START_S", 240))
    erase = {size: round(statistics.median(values) * 1000, 2) for size, values in times.items()}
    purge = {size: round(statistics.median(values) * 1000, 2) for size, values in purges.items()}
    figures = {"seed": seeded, "erase_ms_median": erase, "purge_ms_median": purge,
               "erase_ms_all": {k: [round(v * 1000, 2) for v in vs] for k, vs in times.items()},
               "erase_detail": details, "export": exports}
    ratios = {"erase_big_over_small": ratio(erase["big"], erase["small"]),
              "purge_big_over_small": ratio(purge["big"], purge["small"]),
              "export_seconds_big_over_small": ratio(exports["big"]["seconds"], exports["small"]["seconds"]),
              "export_peak_rss_big_over_small": ratio(exports["big"]["peak_rss_mib"], exports["small"]["peak_rss_mib"])}
    met = {"erase_big_over_small <=": ratios["erase_big_over_small"] is not None
           and ratios["erase_big_over_small"] <= TARGETS["erase_big_over_small <="]}
    if platform is not None:
        figures["platform"] = platform
        med = {size: {key: statistics.median(e[key] for e in platform["erase"][size])
                      for key in ("messaging_confirmed_s", "completed_s", "purged_s")} for size in ("small", "big")}
        figures["platform_median"] = med
        access = platform["access"]
        ratios.update({
            "platform_messaging_confirmed_big_over_small": ratio(med["big"]["messaging_confirmed_s"],
                                                                 med["small"]["messaging_confirmed_s"]),
            "platform_completed_big_over_small": ratio(med["big"]["completed_s"], med["small"]["completed_s"]),
            "platform_access_seconds_big_over_small": ratio(access["big"]["seconds"], access["small"]["seconds"]),
        })
        met["platform_messaging_confirmed_big_over_small <="] = (
            ratios["platform_messaging_confirmed_big_over_small"] <= TARGETS["erase_big_over_small <="])
    return result(SCENARIO, parameters, figures, {"erase_ms_small": erase["small"], "export_small": exports["small"]},
                  ratios, targets=TARGETS, met=met, load_average={"before": load_before, "after": load_average()})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if len(sys.argv) == 5 and sys.argv[1] == "--export-child":
        export_child(*sys.argv[2:])
        raise SystemExit(0)
    raise SystemExit(run_scenario(run, SCENARIO, "BENCH_ERASURE_TIMEOUT_S", env_float("BENCH_ERASURE_TIMEOUT_S", 900),
                                  failures=(BenchFailure, psycopg2.Error)))

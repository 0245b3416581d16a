"""Round trips and CPU of messaging's send and page, in-process, on a real PostgreSQL (issue 13's hot paths).

Starts no service: messaging's use cases run in this process on the kernel's real unit of work, vault,
projections, outbox and keyed requests, over a fresh migrated PostgreSQL database (dropped at the end),
as the service runs them behind its ``rpc`` entrypoint:

- ``send``: POST /v1/conversations/{id}/messages as the gateway makes it: a keyed request (its
  idempotency key checked, claimed, and its reply committed with the effects), an attendant assigned to
  the conversation and member of its team sending an outgoing message;
- ``page``: GET /v1/conversations/{id}/messages?limit=50 by the same attendant (50 bodies opened, audited);
- ``older``: the same with ``before=<a message>`` (the bench's page asks that 4 times in 5);
- ``search``: GET /v1/messages/search?q=...&limit=20 by the same attendant over SEARCH_MESSAGES messages of
  the bench's help-desk text (``bench/messaging.py``'s ``HelpDeskText``, its seed) sent to SEARCH_CONVERSATIONS
  conversations of as many customers (one in five to the first, as the bench's big conversation), the
  bench's query mix cut to queries of a first page of 20 hits (their bodies opened, audited): hits of many
  conversations, so of many data subjects, as the bench's search finds them.

For each, per operation over N repetitions: SQL statements (SQLAlchemy ``before_cursor_execute``), round
trips to PostgreSQL (those statements, plus each ``BEGIN`` psycopg2 sends before a transaction's first
statement, each ping of a pooled connection, each ``COMMIT``/``ROLLBACK`` of an open transaction), this
process's CPU (``time.process_time``: PostgreSQL's own work is not in it; the mean, and the least of ten
blocks, which other processes' load on the machine disturbs least), and the function calls (Python and C)
of 50 more operations, a count of this process's work that the load does not change at all.

    .venv/bin/python bench/send_statements.py [N] [send|page|older|search]   # N of each (default 300, all four)
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.keyed_requests import KeyedRequest, fingerprint
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.testing import create_database, drop_database
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_messaging.adapters.ports import Person
from upgestao_messaging.adapters.projections import projections
from upgestao_messaging.adapters.sql_repositories import with_sql_repositories
from upgestao_messaging.domain.search import TermHasher
from upgestao_messaging.service_layer.access import Deps
from upgestao_messaging.service_layer.api import MessagingApi
from upgestao_messaging.service_layer.attachments import SealedAttachments

ROLES = {
    "admin": frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                        "conversations.read_all", "teams.manage", "chats.use", "messages.moderate"}),
    "attendant": frozenset({"conversations.read", "conversations.write", "conversations.record_incoming",
                            "chats.use"}),
}
SEARCH_MESSAGES = 600
SEARCH_CONVERSATIONS = 24
BODY = "Olá, o pedido {n} chegou ontem em Belo Horizonte mas a caixa veio amassada; podem trocar o produto?"


class Trips:
    """Statements and round trips on one engine, counted by kind."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.counts: Counter[str] = Counter()
        dialect = engine.dialect

        def in_transaction(dbapi_conn: Any) -> bool:
            return getattr(dbapi_conn, "status", None) == psycopg2.extensions.STATUS_IN_TRANSACTION

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _statement(conn, cursor, statement, parameters, context, executemany) -> None:
            self.counts["statements"] += 1
            raw = conn.connection.dbapi_connection
            if not raw.autocommit and not in_transaction(raw):
                self.counts["begin"] += 1  # psycopg2 sends BEGIN first, a round trip of its own

        def counting(name: str, fn: Callable, only_in_transaction: bool) -> Callable:
            def wrapper(dbapi_conn: Any, *args: Any, **kwargs: Any) -> Any:
                raw = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
                if not only_in_transaction or in_transaction(raw):
                    self.counts[name] += 1
                return fn(dbapi_conn, *args, **kwargs)
            return wrapper

        dialect.do_ping = counting("ping", dialect.do_ping, False)
        dialect.do_commit = counting("commit", dialect.do_commit, True)
        dialect.do_rollback = counting("rollback", dialect.do_rollback, True)

    def take(self) -> Counter[str]:
        out, self.counts = self.counts, Counter()
        return out


class Directory:
    def __init__(self) -> None:
        self.people: dict[str, Person] = {}

    def lookup(self, ids: list[str]) -> dict[str, Person]:
        return {i: self.people[i] for i in ids if i in self.people}


class Desk:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.vault = Vault(MasterKeyring(b"\x42" * 32), b"\x22" * 32)
        self.projections = tuple(projections())
        self.directory = Directory()
        self.hasher = TermHasher(b"bench-search-key-0123456789abcdef")

    def person(self, kind: str, role: str | None) -> str:
        pid = str(uuid.uuid4())
        self.directory.people[pid] = Person(pid, kind, role, True)
        return pid

    def api(self, user_id: str, role: str, request: KeyedRequest | None = None) -> MessagingApi:
        context = RequestContext(request_id=str(uuid.uuid4()), actor_id=user_id, actor_role=role)

        def unit() -> UnitOfWork:
            return with_sql_repositories(UnitOfWork(self.engine, "messaging", context, projections=self.projections,
                                                    vault=self.vault, request=request))

        return MessagingApi(Deps(unit_of_work=unit, permissions_of=lambda r: ROLES.get(r or "", frozenset()),
                                 directory=self.directory, hasher=self.hasher,
                                 attachments=SealedAttachments(now=lambda: datetime.now(UTC))))

    def keyed(self, user_id: str, role: str, method: str, *args: Any) -> Any:
        """``method`` as the kernel's ``rpc`` entrypoint runs a request carrying an idempotency key."""
        request = KeyedRequest(self.engine, self.vault, key=str(uuid.uuid4()), method=method,
                               fingerprint=fingerprint(method, args, {}), actor_id=user_id)
        found, stored = request.before_run()
        if found:  # pragma: no cover - every key here is new
            return stored
        try:
            result = getattr(self.api(user_id, role, request), method)(*args)
        except Exception:
            result, exc_info = request.finish(None, sys.exc_info())
        else:
            result, exc_info = request.finish(result, None)
        if exc_info is not None:
            raise exc_info[1]
        return result


def measure(label: str, trips: Trips, n: int, op: Callable[[int], Any]) -> dict[str, float]:
    for i in range(min(20, n)):  # warm up: statement caches, the vault's key cache, imports
        op(-1 - i)
    trips.take()
    block = max(1, n // 10)
    cpu = wall = 0.0
    best = float("inf")  # the least CPU per operation of a block of n/10: the figure others' load disturbs least
    for start in range(0, n, block):
        count = min(block, n - start)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(start, start + count):
            op(i)
        spent = time.process_time() - cpu0
        cpu, wall = cpu + spent, wall + time.perf_counter() - wall0
        best = min(best, spent / count)
    counts = trips.take()
    calls = python_calls(op, n, min(n, 50))
    trips.take()
    per = {k: v / n for k, v in sorted(counts.items())}
    round_trips = sum(per.values())
    print(f"{label:>6}: {per.get('statements', 0):5.2f} statements, {round_trips:5.2f} round trips "
          f"({', '.join(f'{k} {v:.2f}' for k, v in per.items())}), "
          f"{cpu / n * 1000:6.3f} ms CPU (best block {best * 1000:6.3f}), {calls:7.0f} function calls, "
          f"{wall / n * 1000:6.3f} ms wall per operation (N={n})")
    return {"statements": per.get("statements", 0), "round_trips": round_trips, "cpu_ms": cpu / n * 1000,
            "best_cpu_ms": best * 1000, "calls": calls}


def python_calls(op: Callable[[int], Any], first: int, n: int) -> float:
    """Function calls (Python and C) per operation over ``n`` more operations: a count of the work done in this
    process that the machine's load does not disturb (CPU time on a shared machine varies by half)."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        for i in range(first, first + n):
            op(i)
    finally:
        sys.setprofile(None)
    return count / n


def searching(desk: Desk, admin: str, attendant: str, team: str) -> Callable[[int], Any]:
    """Seeds the search's conversations and messages; the operation: the i-th query of the mix, first page."""
    from messaging import HelpDeskText
    from upgestao_messaging.domain.search import normalise_words

    text = HelpDeskText(7)
    conversations = []
    for n in range(SEARCH_CONVERSATIONS):
        conversations.append(desk.api(admin, "admin").open_conversation(
            {"customer_id": desk.person("customer", None), "channel": "whatsapp", "team_id": team,
             "assignee_id": attendant, "subject": f"Pedido {n}"})["id"])
    for i in range(SEARCH_MESSAGES):
        direction = "incoming" if i % 2 else "outgoing"
        body = text.body(direction)
        text.observe(normalise_words(body))
        conversation = conversations[0] if i % 5 == 0 else conversations[i % SEARCH_CONVERSATIONS]
        desk.api(attendant, "attendant").send_message(conversation, {"body": body, "direction": direction})
    queries = [q for q in text.queries(200, normalise_words)
               if len(desk.api(attendant, "attendant").search(q, limit=20)["items"]) == 20][:20]
    assert len(queries) >= 5, queries

    def search(i: int) -> Any:
        answer = desk.api(attendant, "attendant").search(queries[i % len(queries)], limit=20)
        assert len(answer["items"]) == 20, answer
        return answer

    return search


def main(n: int, only: tuple[str, ...] = ("send", "page", "older", "search")) -> None:
    name = f"bench_send_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        upgrade("upgestao_messaging:migrations", url)
        desk = Desk(url)
        trips = Trips(desk.engine)
        admin = desk.person("staff", "admin")
        attendant = desk.person("staff", "attendant")
        customer = desk.person("customer", None)
        team = desk.api(admin, "admin").create_team("Suporte", [attendant])["id"]
        conversation = desk.api(admin, "admin").open_conversation(
            {"customer_id": customer, "channel": "whatsapp", "team_id": team, "assignee_id": attendant,
             "subject": "Troca"})["id"]

        def send(i: int) -> Any:
            answer = desk.keyed(attendant, "attendant", "send_message", conversation,
                                {"body": BODY.format(n=i), "direction": "outgoing"})
            assert answer["created"], answer
            return answer

        def page(_: int) -> Any:
            answer = desk.api(attendant, "attendant").messages(conversation, limit=50)
            assert len(answer["items"]) == 50, answer
            return answer

        if "send" in only:
            measure("send", trips, n, send)
        if "page" in only or "older" in only:
            for i in range(101):  # two full pages, whatever N
                send(10_000 + i)
        if "page" in only:
            measure("page", trips, n, page)
        if "older" in only:
            anchor = desk.api(attendant, "attendant").messages(conversation, limit=51)["items"][0]["id"]

            def older(_: int) -> Any:
                answer = desk.api(attendant, "attendant").messages(conversation, before=anchor, limit=50)
                assert len(answer["items"]) == 50, answer
                return answer

            measure("older", trips, n, older)
        if "search" in only:
            search = searching(desk, admin, attendant, team)
            measure("search", trips, n, search)
        desk.engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, tuple(sys.argv[2:]) or ("send", "page", "older", "search"))

"""Messaging's search index alone, at the bench's size: ``SqlSearchIndex.find`` timed query kind by query kind,
its SQL statements counted and EXPLAIN ANALYZEd, every answer checked against a brute-force search (H4).

Not a scenario of ``bench/run.py``: a harness for working on the index without the platform. It builds, once,
a database holding what the messaging scenario (``bench/messaging.py``) seeds for the search: its help desk
(one team, V conversations, 70 % assigned to attendant A, the first one the "big" conversation holding BIG
of the M messages) and the index rows of M messages of its Portuguese help-desk text (the same generator, the
same seed, hashed by ``TermHasher``), at consecutive positions; then it asks the bench's queries (the same
mix: 1-3 words, very common to rare, ``HelpDeskText.queries``) as A (visibility by
``SqlRepositories.search_visibility``, the service's own rule as SQL), first pages of ``limit + 1`` = 21, as
the use case asks. Each answer is compared with the brute-force answer computed from the seeded words (every
word, A's conversations, newest first, cut at ``resume_before`` when the call's work ran out): any difference
fails the run.

    .venv/bin/python bench/search_index.py [--db postgresql|sqlite] [--messages 100000] [--queries 400]
        [--repeat 3] [--explain] [--fresh] [--baseline REV]

The database is kept between runs (PostgreSQL ``h4_search_<M>``; SQLite under ``$TMPDIR``) and brought to
messaging's head migration on each run; ``--fresh`` seeds it again. Prints, per query kind, the latency
(median and p99 of ``find`` over the repetitions, ms), the Python CPU per call (ms), the CPU of the database's
process serving the harness per call (ms, PostgreSQL on this machine: its /proc; parallel workers not counted)
and the SQL statements per call; ``--explain`` adds EXPLAIN ANALYZE (PostgreSQL) or EXPLAIN QUERY PLAN
(SQLite) of every statement of one query of each kind. ``--baseline REV`` (a git revision) times, in the same
run, the index module of that revision too, each query asked of both in turn (on a shared machine, only a
comparison in one run holds), and prints both tables; ``--slowest N`` lists each one's N slowest queries.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from common import PG_ADMIN  # noqa: E402
from messaging import HelpDeskText  # noqa: E402
from upgestao_kernel.db import create_engine  # noqa: E402
from upgestao_kernel.migrations import upgrade  # noqa: E402
from upgestao_messaging.adapters import search_index  # noqa: E402
from upgestao_messaging.adapters.sql_repositories import SqlRepositories  # noqa: E402
from upgestao_messaging.adapters.tables import conversations, team_members, teams  # noqa: E402
from upgestao_messaging.domain.search import TermHasher, normalise_words  # noqa: E402
from upgestao_messaging.domain.visibility import READ, USE_CHATS, WRITE, Viewer, conversation_scope  # noqa: E402

MIGRATIONS = "upgestao_messaging:migrations"
KEY = b"\x0d" * 32
SHAPES = ("very", "common", "rare", "order", "very+common", "common+rare", "very+very", "common+common",
          "very+common+rare", "very+common+common")  # HelpDeskText.queries' shapes, in its order
LIMIT = 20
ATTENDANT_A, ATTENDANT_B = str(uuid.UUID(int=0xA)), str(uuid.UUID(int=0xB))
TEAM = str(uuid.UUID(int=0x7EA))


class Seeded:
    """What was seeded, to answer by brute force: each message's words and container, A's conversations."""

    def __init__(self, messages: int, conversations_n: int, big: int, seed: int) -> None:
        import random

        self.text = HelpDeskText(seed)
        r = random.Random(seed + 1)
        self.conversations = [str(uuid.UUID(int=0xC0000 + n)) for n in range(conversations_n)]
        self.assignee = {cid: ATTENDANT_A if n == 0 or r.random() < 0.7 else ATTENDANT_B
                         for n, cid in enumerate(self.conversations)}
        self.customer = {cid: str(uuid.UUID(int=0xCC000 + n % 50)) for n, cid in enumerate(self.conversations)}
        self.words: list[frozenset[str]] = []
        self.container: list[str] = []
        big_id, others = self.conversations[0], self.conversations[1:]
        for _ in range(messages):
            cid = big_id if r.random() < big / messages else r.choice(others)
            incoming = r.random() < 0.45
            private = not incoming and r.random() < 0.05
            words = normalise_words(self.text.body("incoming" if incoming else "outgoing", private))
            self.text.observe(words)
            self.words.append(frozenset(words))
            self.container.append(cid)
        self.postings: dict[str, list[int]] = defaultdict(list)  # word -> positions (1-based), ascending
        for n, words in enumerate(self.words):
            for w in words:
                self.postings[w].append(n + 1)

    def expected(self, words: list[str], visible: set[str]) -> list[int]:
        """Every position holding every word, in a visible conversation, newest first."""
        lists = sorted((self.postings.get(w, []) for w in words), key=len)
        rest = [set(p) for p in lists[1:]]
        return [p for p in reversed(lists[0]) if self.container[p - 1] in visible and all(p in s for s in rest)]


def database(kind: str, messages: int, fresh: bool) -> tuple[str, bool]:
    """The harness database's URL, and whether it must be seeded."""
    if kind == "sqlite":
        path = Path(tempfile.gettempdir()) / f"h4_search_{messages}.sqlite3"
        if fresh and path.exists():
            path.unlink()
        return f"sqlite:///{path}", not path.exists()
    name = f"h4_search_{messages}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            if fresh:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cur.fetchone() is not None
            if not exists:
                cur.execute(f'CREATE DATABASE "{name}"')
        dsn = admin.get_dsn_parameters()
    finally:
        admin.close()
    return f"postgresql+psycopg2://{dsn.get('user', 'postgres')}@{dsn.get('host')}:{dsn.get('port')}/{name}", not exists


def seed(engine: sa.Engine, data: Seeded, hasher: TermHasher) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(teams.insert().values(id=TEAM, name="Atendimento", created_at=now, updated_at=now))
        conn.execute(team_members.insert(), [{"team_id": TEAM, "user_id": u} for u in (ATTENDANT_A, ATTENDANT_B)])
        conn.execute(conversations.insert(), [
            {"id": cid, "customer_id": data.customer[cid], "channel": "web", "status": "open", "priority": "medium",
             "labels": [], "assignee_id": data.assignee[cid], "team_id": TEAM, "erased": False, "created_at": now,
             "updated_at": now, "last_activity_at": now} for cid in data.conversations])
    hashed: dict[str, str] = {}
    columns = [c.name for c in search_index.search_terms.columns]
    batch = 10_000
    for first in range(0, len(data.words), batch):
        rows = []
        for n in range(first, min(first + batch, len(data.words))):
            cid = data.container[n]
            terms = [hashed.get(w) or hashed.setdefault(w, hasher.hash(w)) for w in data.words[n]]
            entry = {"position": n + 1, "message_id": str(uuid.UUID(int=n + 1)), "container_kind": "conversation",
                     "container_id": cid, "subject_id": data.customer[cid], "signature": search_index.signature(terms)}
            rows.extend(tuple({**entry, "term": term}[c] for c in columns) for term in terms)
        rows.sort()
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                buffer = io.StringIO("".join("\t".join(map(str, row)) + "\n" for row in rows))
                with conn.connection.dbapi_connection.cursor() as cur:
                    cur.copy_expert(f"COPY search_terms ({', '.join(columns)}) FROM STDIN", buffer)
            else:
                marks = ", ".join("?" for _ in columns)
                conn.exec_driver_sql(f"INSERT INTO search_terms ({', '.join(columns)}) VALUES ({marks})", rows)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


class Statements:
    """SQL statements executed on an engine (``before_cursor_execute``), kept while ``keep`` is set, and the
    time spent in each kind of them (by its first 60 characters, numbers and ``%(...)s`` aside)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count, self.keep, self.kept = 0, False, []
        self.label = "?"
        self.time: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.count += 1
        self.started = time.perf_counter()
        if self.keep:
            self.kept.append((statement, parameters))

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        kind = " ".join(statement.split())[:60]
        self.time[self.label][kind] += time.perf_counter() - self.started


def backend_cpu(conn: sa.Connection):
    """A function giving the CPU seconds the connection's database process has used so far (PostgreSQL, on this
    machine: /proc; SQLite runs in this process, its time is in the Python CPU: 0). Clock ticks: meaningful summed
    over many calls, not for one."""
    if conn.dialect.name != "postgresql":
        return lambda: 0.0
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    conn.rollback()
    ticks = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return seconds


def explain(engine: sa.Engine, statements: list[tuple[str, object]]) -> None:
    """Print each statement and its plan, all in one transaction (a ``SET`` among them is executed: it
    changes the plans after it)."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection.cursor()
        for statement, parameters in statements:
            print(" ".join(statement.split()))
            if statement.lstrip().upper().startswith("SET "):
                raw.execute(statement, parameters)
                continue
            if engine.dialect.name == "postgresql":
                raw.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            else:
                raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            print("\n".join("  " + " | ".join(str(v) for v in row) for row in raw.fetchall()))
        raw.close()
        conn.rollback()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=None, help="messages of the big conversation (M / 5)")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--slowest", type=int, default=0, help="print the N slowest queries of each index")
    parser.add_argument("--baseline", help="a git revision whose search index to time beside this one")
    args = parser.parse_args()

    t0 = time.monotonic()
    data = Seeded(args.messages, args.conversations, args.big or args.messages // 5, args.seed)
    hasher = TermHasher(KEY)
    url, empty = database(args.db, args.messages, args.fresh)
    upgrade(MIGRATIONS, url)
    engine = create_engine(url)
    if empty:
        seed(engine, data, hasher)
        print(f"seeded {args.messages} messages in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    with engine.connect() as conn:
        entries = conn.execute(sa.select(sa.func.count()).select_from(search_index.search_terms)).scalar_one()
    print(f"{args.db}: {args.messages} messages, {entries} index entries", file=sys.stderr)

    viewer = Viewer(user_id=ATTENDANT_A, permissions=frozenset({READ, WRITE, USE_CHATS}), team_ids=frozenset({TEAM}))
    scope = conversation_scope(viewer)
    visible_sql = SqlRepositories.search_visibility(viewer.user_id, scope, True)
    visible_a = {cid for cid, who in data.assignee.items() if who == ATTENDANT_A}
    queries = data.text.queries(args.queries, normalise_words)
    statements = Statements(engine)
    implementations = {"this tree": search_index}
    if args.baseline:
        implementations = {f"baseline {args.baseline}": baseline_module(args.baseline), **implementations}
    tables = {name: defaultdict(lambda: defaultdict(list)) for name in implementations}
    explained: set[str] = set()
    slow: dict[str, list[tuple]] = defaultdict(list)
    failures = 0
    with engine.connect() as conn:
        backend = backend_cpu(conn)
        for rep, i, (name, module) in itertools.product(range(args.repeat), range(len(queries)),
                                                        implementations.items()):
            q = queries[i]
            index, by_shape = module.SqlSearchIndex(conn), tables[name]
            shape = SHAPES[i % len(SHAPES)]
            words = normalise_words(q)
            terms = hasher.hashes(q)
            statements.count, statements.kept, statements.label = 0, [], name
            statements.keep = args.explain and rep == 0 and (name, shape) not in explained
            db, cpu, wall = backend(), time.process_time(), time.perf_counter()
            hits = index.find(terms, visible=visible_sql, limit=LIMIT + 1)
            wall, cpu, db = time.perf_counter() - wall, time.process_time() - cpu, backend() - db
            conn.rollback()  # each search its own transaction, as each request's unit of work
            got = [p for p, _ in hits]
            resume = hits.resume_before
            expected = [p for p in data.expected(words, visible_a) if resume is None or p >= resume]
            if got != expected[:LIMIT + 1] or (resume is not None and len(got) > LIMIT):
                failures += 1
                print(f"WRONG {q!r}: got {got[:5]}... ({len(got)}, resume {resume}), expected {expected[:5]}... "
                      f"({len(expected)})", file=sys.stderr)
            if any(p != int(m.split("-")[-1], 16) for p, m in hits):
                failures += 1
                print(f"WRONG {q!r}: a message id does not match its position", file=sys.stderr)
            figures = by_shape[shape]
            figures["ms"].append(wall * 1000)
            figures["cpu_ms"].append(cpu * 1000)
            figures["db_cpu_ms"].append(db * 1000)
            figures["statements"].append(statements.count)
            figures["hits"].append(len(got))
            figures["resumed"].append(resume is not None)
            slow[name].append((wall * 1000, q, shape, statements.count, len(got), resume))
            if statements.keep:
                explained.add((name, shape))
                statements.keep = False
                print(f"\n== {name}: {shape}: {q!r} -> {len(got)} hits, resume {resume}")
                explain(engine, statements.kept)

    for name, by_shape in tables.items():
        print(f"\n{name}: {args.db}, {args.messages} messages, {len(queries)} queries x {args.repeat}, limit "
              f"{LIMIT + 1}, as attendant A ({len(visible_a)} of {args.conversations} conversations)")
        report(by_shape)
        for kind, seconds in sorted(statements.time[name].items(), key=lambda kv: -kv[1]):
            print(f"  {seconds * 1000:9.1f} ms in  {kind}")
        for ms, q, shape, n, found, resume in sorted(slow[name], reverse=True)[:args.slowest]:
            print(f"  slow: {ms:7.2f} ms {shape:<20} {q!r}: {n} statements, {found} hits, resume {resume}")
    print(f"answers checked against brute force: {sum(len(t[s]['ms']) for t in tables.values() for s in SHAPES)}, "
          f"wrong: {failures}")
    engine.dispose()
    return 1 if failures else 0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(by_shape: dict[str, dict[str, list[float]]]) -> None:
    print(f"{'kind':<20}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'cpu ms':>9}{'db cpu':>9}{'stmts':>7}{'max':>5}"
          f"{'hits':>6}{'resumed':>9}")
    everything: dict[str, list[float]] = defaultdict(list)
    for shape in SHAPES:
        f = by_shape[shape]
        for k, v in f.items():
            everything[k].extend(v)
        print(f"{shape:<20}{statistics.median(f['ms']):9.2f}{pct(f['ms'], 99):9.2f}{max(f['ms']):9.2f}"
              f"{statistics.mean(f['cpu_ms']):9.2f}{statistics.mean(f['db_cpu_ms']):9.2f}{statistics.mean(f['statements']):7.2f}{max(f['statements']):5d}"
              f"{statistics.mean(f['hits']):6.1f}{sum(f['resumed']):9d}")
    f = everything
    print(f"{'all':<20}{statistics.median(f['ms']):9.2f}{pct(f['ms'], 99):9.2f}{max(f['ms']):9.2f}"
          f"{statistics.mean(f['cpu_ms']):9.2f}{statistics.mean(f['db_cpu_ms']):9.2f}{statistics.mean(f['statements']):7.2f}{max(f['statements']):5d}"
          f"{statistics.mean(f['hits']):6.1f}{sum(f['resumed']):9d}")


def baseline_module(revision: str):
    """The search index module of a git revision, loaded under another name (its tables on their own metadata:
    only its ``SqlSearchIndex`` is used, over the same table)."""
    import importlib.util
    import subprocess

    path = "services/messaging/src/upgestao_messaging/adapters/search_index.py"
    source = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    spec = importlib.util.spec_from_loader("upgestao_messaging.adapters._baseline_search_index", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "upgestao_messaging.adapters"
    source = source.replace('"search_terms", metadata,', '"search_terms", sa.MetaData(),', 1)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


if __name__ == "__main__":
    sys.exit(main())

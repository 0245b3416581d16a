"""The embedded SQLite store never stalls the process (issue 9, defect 1).

Before the write gate, a green thread waiting for SQLite's write lock slept
inside SQLite's C busy handler: the whole eventlet hub stopped, including the
green thread that held the lock and would have released it, so both waited out
the 30 s timeout ("database is locked") while every request of the process
stalled. These tests run under eventlet (the root conftest monkey-patches).
"""

from __future__ import annotations

import subprocess
import sys
import time

import eventlet
import pytest
import sqlalchemy as sa
from upgestao_kernel import db

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = db.create_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    yield engine
    engine.dispose()


class StallProbe:
    """A green thread ticking every 10 ms; the longest gap between ticks is how long the hub stalled."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._running = True
        self._thread = eventlet.spawn(self._run)
        eventlet.sleep(0.02)  # let it take its first tick before the caller may block

    def _run(self) -> None:
        last = time.monotonic()
        while self._running:
            eventlet.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def stop(self) -> float:
        self._running = False
        self._thread.wait()
        return self.longest


def test_a_writer_waiting_for_another_green_thread_never_stalls_the_process(sqlite_engine):
    """Green thread A holds the write transaction and yields (as across an RPC or a broker
    round trip); B wants to write meanwhile. B must wait without stopping the hub."""
    probe = StallProbe()
    order = []

    def holder():
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('a')"))
            order.append("a-holds")
            eventlet.sleep(0.5)  # yields while holding the write lock
            order.append("a-commits")

    def waiter():
        eventlet.sleep(0.05)
        with sqlite_engine.begin() as conn:
            order.append("b-writes")
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('b')"))

    started = time.monotonic()
    threads = [eventlet.spawn(holder), eventlet.spawn(waiter)]
    for thread in threads:
        thread.wait()
    elapsed = time.monotonic() - started
    longest = probe.stop()

    assert order == ["a-holds", "a-commits", "b-writes"]
    assert elapsed < 5, f"the writers took {elapsed:.1f} s: the process stalled"
    assert longest < 0.25, f"the event loop stalled for {longest:.2f} s"
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT who FROM t ORDER BY id")).scalars().all() == ["a", "b"]


def test_readers_are_not_held_up_by_a_writer(sqlite_engine):
    probe = StallProbe()
    seen = []

    def holder():
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('a')"))
            eventlet.sleep(0.3)

    def reader():
        eventlet.sleep(0.05)
        with db.read_only(sqlite_engine.connect()) as conn:
            seen.append(conn.execute(sa.text("SELECT count(*) FROM t")).scalar())
            seen.append(time.monotonic())

    started = time.monotonic()
    threads = [eventlet.spawn(holder), eventlet.spawn(reader)]
    for thread in threads:
        thread.wait()
    assert seen[0] == 0  # the snapshot before A's commit
    assert seen[1] - started < 0.25  # it did not wait for the writer
    assert probe.stop() < 0.25


def test_a_lock_held_by_another_process_is_waited_for_cooperatively(sqlite_engine, tmp_path):
    """Another process (the service's relay, say) holds the write lock for 1 s: this process
    keeps running meanwhile, and its write goes through as soon as the lock is free."""
    path = tmp_path / "gate.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute(\"INSERT INTO t (who) VALUES ('other')\")\n"
            "print('locked', flush=True); time.sleep(1.0); c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        probe = StallProbe()
        started = time.monotonic()
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('me')"))
        waited = time.monotonic() - started
        longest = probe.stop()
    finally:
        holder.wait(10)
    assert 0.5 < waited < 5
    assert longest < 0.25, f"the event loop stalled for {longest:.2f} s"
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT who FROM t ORDER BY id")).scalars().all() == ["other", "me"]


def test_the_gate_is_released_by_rollback_and_by_a_failed_statement(sqlite_engine):
    for _ in range(3):
        with pytest.raises(sa.exc.IntegrityError):
            with sqlite_engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO t (id, who) VALUES (1, 'x')"))
                conn.execute(sa.text("INSERT INTO t (id, who) VALUES (1, 'y')"))
        conn = sqlite_engine.connect()
        conn.execute(sa.text("INSERT INTO t (who) VALUES ('z')"))
        conn.rollback()
        conn.close()
    with eventlet.Timeout(2):  # the gate is free: no wait at all
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('last')"))


def test_a_writer_gives_up_with_database_locked_after_the_timeout(sqlite_engine, monkeypatch):
    monkeypatch.setattr(db, "SQLITE_LOCK_TIMEOUT_S", 0.3)
    failures = []

    def holder():
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (who) VALUES ('a')"))
            eventlet.sleep(1.0)

    def waiter():
        eventlet.sleep(0.05)
        try:
            with sqlite_engine.begin():
                pass
        except sa.exc.OperationalError as exc:
            failures.append(str(exc.orig))

    threads = [eventlet.spawn(holder), eventlet.spawn(waiter)]
    for thread in threads:
        thread.wait()
    assert len(failures) == 1 and "database is locked" in failures[0]

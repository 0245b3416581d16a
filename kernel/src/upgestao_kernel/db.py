"""SQLAlchemy engines for a service's own database (PostgreSQL or SQLite)."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

READ_ONLY = "upgestao_read_only"

# A pooled PostgreSQL connection is pinged (``SELECT 1``, a round trip) on checkout only when in doubt:
# idle longer than this, or its socket has something to read (a healthy idle connection is sent nothing;
# a server that restarted or ended the session sent its FATAL notice and closed it).
PING_IDLE_S = 5.0
_LAST_USED = "upgestao_last_used"
_os_select: Any = None


def _plain_select() -> Any:
    """The ``select`` module as the OS gives it: eventlet's green one would switch to its hub even for a zero
    timeout, and has no ``poll``."""
    global _os_select
    if _os_select is None:
        patcher = sys.modules.get("eventlet.patcher")
        _os_select = patcher.original("select") if patcher is not None else __import__("select")
    return _os_select


def read_only(conn: sa.engine.Connection) -> sa.engine.Connection:
    """Mark a connection that will only read (on SQLite: no write lock taken)."""
    return conn.execution_options(**{READ_ONLY: True})


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """PostgreSQL through psycopg2, or an embedded SQLite file in WAL mode."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    options: dict[str, Any] = {}
    if sa.engine.make_url(url).drivername == "postgresql+psycopg2":
        # an UPDATE or DELETE with many parameter sets (a projection's batch, a batch of claims) goes in pages
        # of statements (psycopg2's execute_batch), not one round trip per row; no caller reads such a
        # statement's rowcount, which this mode does not give
        options["executemany_mode"] = "values_plus_batch"
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, **options)
    _ping_when_in_doubt(engine)
    return engine


def _readable(dbapi_conn: Any) -> bool:
    """Something waits on the idle connection's socket (the server's goodbye, or its end of file). ``poll``
    where there is one: ``select`` cannot look at a descriptor numbered 1024 or more."""
    os_select = _plain_select()
    try:
        fd = dbapi_conn.fileno()
        if hasattr(os_select, "poll"):
            poller = os_select.poll()
            poller.register(fd, os_select.POLLIN | os_select.POLLPRI)
            return bool(poller.poll(0))
        ready, _, _ = os_select.select([fd], [], [], 0)
    except (OSError, ValueError, TypeError, AttributeError):  # closed, or no socket to look at: in doubt
        return True
    return bool(ready)


def _ping_when_in_doubt(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, without its round trip on every checkout of a busy pool.

    A connection that went back to the pool less than :data:`PING_IDLE_S` ago with nothing on its socket
    is handed out as it is; any other is pinged first. A failed ping invalidates the whole pool, as a
    pre-ping does (after a restart of the database every pooled connection is gone): the checkout gets a
    new connection. A connection that breaks in use anyway (the database went away between the check and
    the statement) fails that statement, and SQLAlchemy invalidates the pool on the disconnect it sees.
    """
    dialect = engine.dialect

    @sa.event.listens_for(engine, "connect")
    def _connected(_dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()  # just made: nothing to doubt

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get(_LAST_USED, float("-inf"))
        if idle < PING_IDLE_S and not _readable(dbapi_conn):
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.InvalidatePoolError(f"ping on checkout failed: {exc}") from exc


# SQLite's own busy handler sleeps inside C: under eventlet that stalls every
# green thread of the process, including the one holding the lock it waits for.
# So SQLite is asked never to wait long; writers of one process queue on a
# cooperative lock, and a lock held by another process is waited for here, in
# short steps that let the rest of the process run.
SQLITE_BUSY_STEP_MS = 20  # the longest one attempt may stall the process
SQLITE_LOCK_TIMEOUT_S = 30.0  # then "database is locked", as pysqlite's own timeout did

_GATE_HOLDER = "upgestao_write_gate"


class SqliteWriteGate:
    """One writer at a time per SQLite file in this process, waited for cooperatively.

    A ``threading.Lock``: eventlet's after monkey-patching (a waiting green thread
    yields), a real one otherwise. Released when the transaction ends.
    """

    _gates: dict[str, SqliteWriteGate] = {}
    _gates_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def for_path(cls, path: str) -> SqliteWriteGate:
        key = os.path.realpath(path) if path and path != ":memory:" else f"memory:{id(object())}"
        with cls._gates_lock:
            gate = cls._gates.get(key)
            if gate is None:
                gate = cls._gates[key] = cls()
            return gate

    def acquire(self, timeout_s: float) -> None:
        if not self._lock.acquire(timeout=timeout_s):
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError(f"database is locked (by this process, for {timeout_s:.0f} s)"),
            )

    def release(self) -> None:
        self._lock.release()


def _locked(exc: Exception) -> bool:
    """SQLITE_BUSY: another process holds the lock (raw, or wrapped by SQLAlchemy)."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(orig, sqlite3.OperationalError) and ("locked" in str(orig) or "busy" in str(orig))


def _retry_while_locked(run, deadline: float):
    """``run()`` again, after a short cooperative sleep, while another process holds the lock."""
    pause = 0.002
    while True:
        try:
            return run()
        except (sqlite3.OperationalError, sa.exc.OperationalError) as exc:
            if not _locked(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # green after monkey-patching: the process goes on meanwhile
        pause = min(pause * 2, 0.05)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_STEP_MS / 1000, "check_same_thread": False}
    )
    gate = SqliteWriteGate.for_path(path)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
        # Let SQLAlchemy, not pysqlite, decide where transactions begin.
        dbapi_conn.isolation_level = None
        deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT_S
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"):
            _retry_while_locked(lambda pragma=pragma: dbapi_conn.execute(pragma).close(), deadline)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        # A connection marked read_only (``read_only(conn)``) never writes: in WAL
        # mode it reads a snapshot and holds nobody up.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: two deferred transactions upgrading to
        # writers would deadlock instead of waiting.
        deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT_S
        gate.acquire(SQLITE_LOCK_TIMEOUT_S)
        conn.info[_GATE_HOLDER] = True
        try:
            _retry_while_locked(lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"), deadline)
        except BaseException:
            _release(conn.info)
            raise

    def _release(info: dict) -> None:
        if info.pop(_GATE_HOLDER, False):
            gate.release()

    # The transaction ends (the gate is let go before SQLite's COMMIT runs, but
    # no other green thread runs in between: nothing yields there).
    sa.event.listen(engine, "commit", lambda conn: _release(conn.info))
    sa.event.listen(engine, "rollback", lambda conn: _release(conn.info))
    # ... or the connection goes back to the pool or away without either event.
    sa.event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record.info))
    sa.event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: _release(record.info))
    sa.event.listen(engine.pool, "close", lambda _dbapi, record: _release(record.info))

    return engine


def green_postgres() -> None:
    """Make psycopg2 cooperate with eventlet (call once, after monkey-patching)."""
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()

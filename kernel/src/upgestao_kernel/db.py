"""SQLAlchemy engines for a service's own database (PostgreSQL or SQLite)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

READ_ONLY = "upgestao_read_only"


def read_only(conn: sa.engine.Connection) -> sa.engine.Connection:
    """Mark a connection that will only read (on SQLite: no write lock taken)."""
    return conn.execution_options(**{READ_ONLY: True})


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """PostgreSQL through psycopg2, or an embedded SQLite file in WAL mode."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
        # Let SQLAlchemy, not pysqlite, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        # Take the write lock up front: two deferred transactions upgrading
        # to writers would deadlock instead of waiting on busy_timeout. A
        # connection marked read_only (``read_only(conn)``) never writes, so
        # it need not hold up the writers.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def green_postgres() -> None:
    """Make psycopg2 cooperate with eventlet (call once, after monkey-patching)."""
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()

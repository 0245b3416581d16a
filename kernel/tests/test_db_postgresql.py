"""A pooled PostgreSQL connection is pinged on checkout only when in doubt (issue 13: a ``SELECT 1`` round
trip on every unit of work was a tenth of a message send's statements), and a connection the server ended
is still never handed out."""

from __future__ import annotations

import os
import resource
import socket
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from upgestao_kernel import db

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pg(database_factory):
    engine = db.create_engine(database_factory("pool"), pool_size=2)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_conn):
        pings.append(dbapi_conn)
        return real_ping(dbapi_conn)

    engine.dialect.do_ping = counting_ping
    yield engine, pings
    engine.dispose()


def backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_back_from_use_a_moment_ago_is_not_pinged(pg) -> None:
    engine, pings = pg
    first = backend_pid(engine)
    for _ in range(5):
        assert backend_pid(engine) == first  # the same pooled connection every time
    assert pings == []


def test_a_connection_idle_for_long_is_pinged_first(pg, monkeypatch) -> None:
    engine, pings = pg
    first = backend_pid(engine)
    monkeypatch.setattr(db, "PING_IDLE_S", 0.0)
    assert backend_pid(engine) == first
    assert len(pings) == 1


def test_a_connection_the_server_ended_is_replaced_on_checkout_with_every_other_pooled_one(pg) -> None:
    engine, pings = pg
    # two pooled connections, both idle
    with engine.connect() as a, engine.connect() as b:
        pids = {a.execute(sa.text("SELECT pg_backend_pid()")).scalar_one(),
                b.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()}
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:  # the server ends both sessions, as a restart of the database does
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    deadline = time.monotonic() + 10
    while not all(db._readable(rec.dbapi_connection) for rec in list(engine.pool._pool.queue)):
        assert time.monotonic() < deadline, "the server's goodbye never reached the sockets"
        time.sleep(0.05)
    # no statement fails: the first checkout sees the goodbye, pings, and the pool starts afresh
    with engine.connect() as a, engine.connect() as b:
        now = {a.execute(sa.text("SELECT pg_backend_pid()")).scalar_one(),
               b.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()}
    assert now.isdisjoint(pids)
    assert len(pings) == 1  # the failed one; the new connections were not pinged


def test_a_socket_is_looked_at_whatever_its_descriptor_number() -> None:
    """A busy process may hold a descriptor numbered over 1023, which ``select`` cannot look at."""
    high = 1500
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= high:
        pytest.skip("this process may not open a descriptor that high")
    ours, theirs = socket.socketpair()
    try:
        os.dup2(ours.fileno(), high)
        conn = SimpleNamespace(fileno=lambda: high)
        assert not db._readable(conn)  # quiet: handed out without a ping
        theirs.sendall(b"E")  # the server's goodbye
        assert db._readable(conn)
        assert db._readable(SimpleNamespace(fileno=lambda: -1))  # no socket to look at: in doubt
    finally:
        os.close(high)
        ours.close()
        theirs.close()


def test_an_update_with_many_parameter_sets_goes_in_pages_not_a_round_trip_per_row(pg, monkeypatch) -> None:
    """A projection's batch (say, 100 webhook messages' states) is one UPDATE with many parameter sets:
    psycopg2's ``executemany`` sends one statement per row and waits for each; the engine sends them in
    pages (``execute_batch``, 100 statements a page)."""
    engine, _ = pg
    table = sa.Table("batched", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("n", sa.Integer))
    table.metadata.create_all(engine)
    pages: list[int] = []
    extras = engine.dialect._psycopg2_extras
    real = extras.execute_batch

    def counting(cursor, statement, parameters, **kwargs):
        parameters = list(parameters)
        pages.append(len(parameters))
        return real(cursor, statement, parameters, **kwargs)

    monkeypatch.setattr(extras, "execute_batch", counting)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "n": 0} for i in range(250)])
        conn.execute(table.update().where(table.c.id == sa.bindparam("b_id")).values(n=sa.bindparam("b_n")),
                     [{"b_id": i, "b_n": i * 2} for i in range(250)])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(table.c.n))).scalar_one() == sum(i * 2 for i in range(250))
    assert pages == [250]  # one call of execute_batch, which pages it (100 a page: 3 round trips, not 250)

"""The login budgets' SQL on PostgreSQL and SQLite (issue 11, finding 13): an attempt is counted in one
conditional statement, so two requests charging one key at once are counted one after the other, and a
request that arrives while the first one blocks the key is refused, never let through on an old count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from upgestao_identity.adapters.sql_repositories import SqlLoginBudgets
from upgestao_identity.adapters.tables import login_budgets, metadata
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import wait_for

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
QUIET = NOW - timedelta(minutes=15)


class _On:
    """What a repository asks of its unit of work: the connection of the open transaction."""

    def __init__(self, conn) -> None:
        self.conn = conn


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, tmp_path):
    url = (request.getfixturevalue("database_factory")("budgets") if request.param == "postgresql"
           else f"sqlite:///{tmp_path}/budgets.sqlite3")
    engine = create_engine(url)
    metadata.create_all(engine, tables=[login_budgets])
    yield engine
    engine.dispose()


def charge(engine, key: str, *, hold: eventlet.event.Event | None = None, block_s: int = 0) -> int | None:
    with engine.begin() as conn:
        budgets = SqlLoginBudgets(_On(conn))
        attempts = budgets.charge(key, NOW, QUIET)
        if attempts is not None and block_s:
            budgets.block(key, NOW + timedelta(seconds=block_s))
        if hold is not None:
            hold.wait()  # the transaction stays open: a second request arrives meanwhile
        return attempts


def test_attempts_are_counted_one_after_the_other_and_a_block_refuses_the_next(engine):
    assert [charge(engine, "account:a") for _ in range(3)] == [1, 2, 3]
    hold = eventlet.event.Event()
    first = eventlet.spawn(charge, engine, "account:b", hold=hold, block_s=60)  # the allowance's last attempt
    eventlet.sleep(0.2)
    second = eventlet.spawn(charge, engine, "account:b")  # at the same moment: must wait for the first
    eventlet.sleep(0.2)
    assert not second.dead  # blocked behind the first one's row lock (or SQLite's write lock)
    hold.send()
    assert first.wait() == 1
    assert second.wait() is None  # refused: the first one's block is what it sees, never the old count
    with engine.begin() as conn:
        budgets = SqlLoginBudgets(_On(conn))
        assert budgets.blocked_until("account:b") == NOW + timedelta(seconds=60)
        budgets.refund("account:a")
        assert budgets.charge("account:a", NOW, QUIET) == 3  # the refunded attempt is given back
        assert budgets.charge("account:a", NOW + timedelta(hours=1), NOW + timedelta(minutes=45)) == 1  # new window
        budgets.forget_idle(NOW + timedelta(days=1), NOW + timedelta(days=1))
        assert budgets.blocked_until("account:a") is None and budgets.blocked_until("account:b") is None


class _Interleaved(SqlLoginBudgets):
    """A charge that stops once its row is ensured (before counting) until ``go`` is sent."""

    def __init__(self, uow, ensured: eventlet.event.Event, go: eventlet.event.Event) -> None:
        super().__init__(uow)
        self.ensured, self.go = ensured, go

    def _ensure(self, key: str) -> None:
        super()._ensure(key)
        if not self.ensured.ready():
            self.ensured.send()
            self.go.wait()


def test_a_charge_waiting_on_a_row_a_successful_login_clears_counts_afresh_instead_of_refusing(database_factory):
    """A right password clears its account's row (in its own unit of work) between another login's check
    that the row exists and its count: that login waits on the row, then finds it gone -- its attempt is
    counted on a new row, not refused as if the key were blocked (a 429 for a right password, found by
    logging in several times at once)."""
    engine = create_engine(database_factory("budgets"))  # PostgreSQL: on SQLite the writers are serial anyway
    metadata.create_all(engine, tables=[login_budgets])
    try:
        charge(engine, "account:c")
        ensured, deleted, hold = eventlet.event.Event(), eventlet.event.Event(), eventlet.event.Event()

        def waiting_charge() -> int | None:
            with engine.begin() as conn:
                return _Interleaved(_On(conn), ensured, deleted).charge("account:c", NOW, QUIET)

        def succeed() -> None:
            with engine.begin() as conn:
                SqlLoginBudgets(_On(conn)).clear("account:c")
                deleted.send()
                hold.wait()

        waiting = eventlet.spawn(waiting_charge)
        ensured.wait()
        cleared = eventlet.spawn(succeed)
        wait_for(lambda: _waiting_on_a_lock(engine))  # the waiting charge counts, behind the clearing row lock
        hold.send()
        cleared.wait()
        assert waiting.wait() == 1
    finally:
        engine.dispose()


def _waiting_on_a_lock(engine) -> bool:
    """Some session of this database waits on a lock (PostgreSQL's own view of it)."""
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).scalar())

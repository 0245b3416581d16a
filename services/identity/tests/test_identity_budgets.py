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

"""Who received whose data (``shared_subjects``: it decides which integrations are told of a person's
correction or erasure, R4.3) stays whole when two transactions record successes for the same integration and
person at once: the dispatcher records up to four batches side by side, and one customer's messages fill
them all.

Found by ``bench/webhook_dispatch.py``: the merge read the pair, then inserted or updated it. Two batches
adding the first share of a pair both inserted (a duplicate key: the whole batch's record failed, its
messages stayed claimed until the stale window and were POSTed again); two adding fields to an existing pair
each wrote their own union (one field lost: a later correction of it would not reach that integration)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_integrations.adapters.projections import _merge_shares
from upgestao_integrations.adapters.tables import shared_subjects
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import wait_for_a_lock_waiter

pytestmark = [pytest.mark.infra, pytest.mark.timeout(60)]

PAIR = ("int_crm", "5f0c6a8e-0000-4000-8000-000000000001")
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _share(fields: set[str], at: datetime) -> dict:
    return {PAIR: {"fields": fields, "first_at": at, "last_at": at}}


def _row(engine: sa.Engine) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(shared_subjects)).one()


def _race(engine: sa.Engine, first: dict, second: dict) -> list[BaseException]:
    """``first`` merged and held uncommitted while ``second`` merges in another transaction; then both commit."""
    errors: list[BaseException] = []
    waiting = threading.Event()

    def other() -> None:
        try:
            with engine.begin() as conn:
                waiting.set()
                _merge_shares(conn, second)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    with engine.begin() as conn:
        _merge_shares(conn, first)
        thread = threading.Thread(target=other)
        thread.start()
        waiting.wait(5)
        wait_for_a_lock_waiter(engine, "the other merge")  # it reached the pair's row and waits for this one
    thread.join(20)
    assert not thread.is_alive()
    return errors


@pytest.fixture
def engine(database_factory):
    engine = create_engine(database_factory("integrations_shares", "upgestao_integrations:migrations"))
    yield engine
    engine.dispose()


def test_two_first_shares_of_a_pair_at_once_both_count(engine) -> None:
    errors = _race(engine, _share({"name"}, T0), _share({"conversations"}, T0 + timedelta(seconds=1)))
    assert errors == []
    row = _row(engine)
    assert sorted(row.fields) == ["conversations", "name"]
    assert (row.first_at, row.last_at) == (T0, T0 + timedelta(seconds=1))


def test_two_merges_into_an_existing_pair_at_once_lose_no_field(engine) -> None:
    with engine.begin() as conn:
        _merge_shares(conn, _share({"email"}, T0))
    errors = _race(engine, _share({"name"}, T0 + timedelta(seconds=2)),
                   _share({"conversations"}, T0 + timedelta(seconds=1)))
    assert errors == []
    row = _row(engine)
    assert sorted(row.fields) == ["conversations", "email", "name"]
    assert (row.first_at, row.last_at) == (T0, T0 + timedelta(seconds=2))  # the latest, whatever the order


def test_on_sqlite_the_merge_is_the_same(tmp_path) -> None:
    from upgestao_kernel.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'integrations.db'}"
    upgrade("upgestao_integrations:migrations", url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _merge_shares(conn, _share({"name"}, T0))
        with engine.begin() as conn:
            _merge_shares(conn, _share({"phone"}, T0 + timedelta(seconds=3)))
        row = _row(engine)
        assert sorted(row.fields) == ["name", "phone"]
        assert (row.first_at, row.last_at) == (T0, T0 + timedelta(seconds=3))
    finally:
        engine.dispose()

"""Event store (D2): append with expected version, read a stream, read all."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from upgestao_kernel import eventstore
from upgestao_kernel.context import RequestContext
from upgestao_kernel.events import NewEvent
from upgestao_kernel.schema import events

CTX = RequestContext(request_id="req-1", actor_id="u1", actor_role="admin", correlation_id="req-1")


def _append(engine, stream, expected, *types):
    with engine.begin() as conn:
        return eventstore.append(conn, stream, expected, [NewEvent(t, {"n": i}) for i, t in enumerate(types)], CTX)


def test_append_and_read_stream_with_full_envelope(engine):
    stored = _append(engine, "account-1", 0, "ledger.account_opened.v1", "ledger.money_deposited.v1")
    assert [e.version for e in stored] == [1, 2]
    with engine.connect() as conn:
        read = eventstore.read_stream(conn, "account-1")
    assert [(e.type, e.version, e.data) for e in read] == [
        ("ledger.account_opened.v1", 1, {"n": 0}),
        ("ledger.money_deposited.v1", 2, {"n": 1}),
    ]
    first = read[0]
    assert first.event_id == stored[0].event_id and len(first.event_id) == 36
    assert first.actor.id == "u1" and first.actor.role == "admin"
    assert first.correlation_id == "req-1" and first.causation_id == "req-1"
    assert first.occurred_at.utcoffset().total_seconds() == 0


def test_conflicting_append_raises_and_writes_nothing(engine):
    _append(engine, "account-1", 0, "ledger.account_opened.v1")
    with pytest.raises(eventstore.ConcurrencyError) as err:
        _append(engine, "account-1", 0, "ledger.money_deposited.v1", "ledger.money_deposited.v1")
    assert (err.value.expected, err.value.actual) == (0, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1


def test_a_refused_append_leaves_nothing_of_itself_and_its_transaction_usable(engine):
    """Two events after a version another writer took: the second's version was free, yet neither stays, and
    the caller may still read (and write) in the same transaction."""
    _append(engine, "account-1", 0, "ledger.account_opened.v1")
    with engine.begin() as conn:
        with pytest.raises(eventstore.ConcurrencyError) as err:
            eventstore.append(conn, "account-1", 0, [NewEvent("ledger.money_deposited.v1", {"n": 1}),
                                                      NewEvent("ledger.money_withdrawn.v1", {"n": 2})], CTX)
        assert (err.value.expected, err.value.actual) == (0, 1)
        assert eventstore.current_version(conn, "account-1") == 1
        eventstore.append(conn, "account-1", 1, [NewEvent("ledger.money_deposited.v1", {"n": 3})], CTX)
    with engine.connect() as conn:
        read = eventstore.read_stream(conn, "account-1")
    assert [(e.type, e.version, e.data) for e in read] == [
        ("ledger.account_opened.v1", 1, {"n": 0}), ("ledger.money_deposited.v1", 2, {"n": 3})]


def test_racing_writers_one_wins(pg_engine):
    """Both read version 1; the unique (stream, version) index settles it.

    (SQLite takes its write lock at BEGIN, so writers never overlap there.)
    """
    engine = pg_engine
    _append(engine, "account-1", 0, "ledger.account_opened.v1")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def writer():
        try:
            with engine.begin() as conn:
                barrier.wait(timeout=5)
                eventstore.append(conn, "account-1", 1, [NewEvent("ledger.money_deposited.v1", {})], CTX)
            results.append("ok")
        except eventstore.ConcurrencyError:
            results.append("conflict")

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["conflict", "ok"]
    with engine.connect() as conn:
        assert eventstore.current_version(conn, "account-1") == 2


def test_read_all_in_global_order(engine):
    _append(engine, "a-1", 0, "ledger.account_opened.v1")
    _append(engine, "b-1", 0, "ledger.account_opened.v1")
    _append(engine, "a-1", 1, "ledger.money_deposited.v1")
    with engine.connect() as conn:
        everything = list(eventstore.read_all(conn, batch_size=2))
        after_first = list(eventstore.read_all(conn, after_position=everything[0].position))
    assert [(e.stream_id, e.version) for e in everything] == [("a-1", 1), ("b-1", 1), ("a-1", 2)]
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert after_first == everything[1:]


def test_any_version_appends_without_check(engine):
    _append(engine, "a-1", 0, "ledger.account_opened.v1")
    stored = _append(engine, "a-1", None, "ledger.money_deposited.v1")
    assert stored[0].version == 2


def test_event_types_are_dotted_past_tense_and_versioned():
    with pytest.raises(ValueError):
        NewEvent("AccountOpened", {})
    with pytest.raises(ValueError):
        NewEvent("ledger.account_opened", {})

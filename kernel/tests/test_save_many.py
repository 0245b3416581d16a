"""Appending to several streams at once (``eventstore.append_many``, ``UnitOfWork.save_many``): all or
nothing, with each stream's expected version checked as a single append checks it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from kernel_sample import Account
from test_fakes import BOTH, CTX
from upgestao_kernel import eventstore
from upgestao_kernel.events import NewEvent
from upgestao_kernel.schema import events, outbox


def _new(*types):
    return [NewEvent(t, {"n": i}) for i, t in enumerate(types)]


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()


def test_append_many_appends_each_stream_after_its_version(engine):
    with engine.begin() as conn:
        eventstore.append(conn, "account-1", 0, _new("ledger.account_opened.v1"), CTX)
    with engine.begin() as conn:
        out = eventstore.append_many(conn, [
            ("account-1", 1, _new("ledger.money_deposited.v1", "ledger.money_deposited.v1")),
            ("account-2", 0, _new("ledger.account_opened.v1")),
            ("account-3", None, []),
        ], CTX)
    assert [[(e.stream_id, e.version) for e in item] for item in out] == [
        [("account-1", 2), ("account-1", 3)], [("account-2", 1)], []]
    assert all(e.position is not None for item in out for e in item)
    with engine.connect() as conn:
        assert [e.version for e in eventstore.read_stream(conn, "account-1")] == [1, 2, 3]
        assert eventstore.current_versions(conn, ["account-1", "account-2", "account-9"]) == {
            "account-1": 3, "account-2": 1, "account-9": 0}


@pytest.mark.parametrize("stale", [("account-1", 0), ("account-1", 2), ("account-2", 1)])
def test_append_many_with_one_stale_stream_writes_nothing(engine, stale):
    with engine.begin() as conn:
        eventstore.append(conn, "account-1", 0, _new("ledger.account_opened.v1"), CTX)
    before = _count(engine)
    batch = {"account-1": 1, "account-2": 0, "account-3": 0}
    batch[stale[0]] = stale[1]
    with engine.begin() as conn, pytest.raises(eventstore.ConcurrencyError) as err:
        eventstore.append_many(conn, [(sid, v, _new("ledger.money_deposited.v1")) for sid, v in batch.items()], CTX)
    assert err.value.stream_id == stale[0] and err.value.expected == stale[1]
    assert _count(engine) == before


def test_append_many_refuses_a_stream_twice(engine):
    with engine.begin() as conn, pytest.raises(ValueError):
        eventstore.append_many(conn, [("account-1", 0, _new("a.b.v1")), ("account-1", 1, _new("a.c.v1"))], CTX)


def _scenario(side) -> dict:
    with side.uow() as uow:
        first, second = Account.open("acc-1", "x", "i1"), Account.open("acc-2", "y", "i2")
        uow.save_many([first, second])
        assert (first.version, second.version) == (1, 1)
    with side.uow() as uow:
        a1, a2 = uow.load(Account, "acc-1"), uow.load(Account, "acc-2")
        a1.deposit(5)
        a1.deposit(2)
        a2.deposit(3)
        uow.save_many([a1, a2, Account("acc-3")])  # an aggregate with nothing to save is left alone
        assert (a1.version, a2.version) == (3, 2)
    with pytest.raises(eventstore.ConcurrencyError), side.uow() as uow:
        a1, a2 = uow.load(Account, "acc-1"), uow.load(Account, "acc-2")
        a2.version = 1  # stale: its deposit above is missed
        a1.deposit(100)
        a2.deposit(100)
        uow.save_many([a1, a2])
    return side.observed()


@BOTH
def test_save_many_projects_queues_and_is_all_or_nothing(make, tmp_path):
    observed = _scenario(make(tmp_path))
    assert observed["read_model"] == [("acc-1", 7, 3), ("acc-2", 3, 2)]
    assert [(sid.removeprefix("account-acc-"), v) for sid, v, *_ in observed["events"]] == [
        ("1", 1), ("2", 1), ("1", 2), ("1", 3), ("2", 2)]
    assert [key for _, key, _, _ in observed["outbox"]] == ["ledger.account_opened.v1"] * 2 + [
        "ledger.money_deposited.v1"] * 3


def test_the_fake_saves_many_like_the_real_unit_of_work(tmp_path):
    from test_fakes import Fake, Real

    assert _scenario(Fake(tmp_path)) == _scenario(Real(tmp_path))


def test_save_many_uses_a_projections_apply_many(tmp_path):
    from kernel_sample import AccountsProjection
    from test_fakes import Real
    from upgestao_kernel.unit_of_work import UnitOfWork

    class Batched(AccountsProjection):
        batches: list[list[str]] = []

        def apply_many(self, conn, envelopes) -> None:
            self.batches.append([e.stream_id for e in envelopes])
            for envelope in envelopes:
                self.apply(conn, envelope)

    real = Real(tmp_path)
    with UnitOfWork(real.engine, "ledger", CTX, projections=[Batched()], vault=real.vault) as uow:
        uow.save_many([Account.open("acc-1", "x", "i1"), Account.open("acc-2", "y", "i2")])
    assert Batched.batches == [["account-acc-1", "account-acc-2"]]
    assert real.observed()["read_model"] == [("acc-1", 0, 1), ("acc-2", 0, 1)]
    with real.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 2


@BOTH
def test_save_many_records_each_aggregate_under_its_own_context(make, tmp_path):
    """Work caused by several events in one unit (a batch consumer): each aggregate's events, and their outbox
    headers, carry the context given for it; without contexts, the unit's own."""
    from dataclasses import replace

    side = make(tmp_path)
    caused = [replace(CTX, causation_id=f"event-{n}", correlation_id=f"corr-{n}") for n in (1, 2)]
    with side.uow() as uow:
        uow.save_many([Account.open("acc-1", "x", "i1"), Account.open("acc-2", "y", "i2")], contexts=caused)
        uow.save_many([Account.open("acc-3", "z", "i3")])
    with pytest.raises(ValueError), side.uow() as uow:
        uow.save_many([Account.open("acc-4", "w", "i4")], contexts=caused)
    observed = side.observed()
    assert [(sid, corr, cause) for sid, _, _, _, corr, cause, _ in observed["events"]] == [
        ("account-acc-1", "corr-1", "event-1"), ("account-acc-2", "corr-2", "event-2"),
        ("account-acc-3", "req-7", "req-7")]
    assert [h.get("nameko.correlation_id") for _, _, _, h in observed["outbox"]] == ["corr-1", "corr-2", "req-7"]

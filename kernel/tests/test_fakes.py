"""The in-memory unit of work behaves like the real one: the same scenarios on both.

Each scenario drives a unit of work through the port only (events, personal data, audit, denials,
claims) and returns what a use case or a consumer downstream can observe: the events, their
published bodies, the audit records and the read model. It runs on the real unit of work (SQLite,
no server needed) and on :class:`FakeUnitOfWork`; the observations must be equal.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from kernel_sample import Account, AccountsProjection, accounts, sample_metadata
from upgestao_kernel.audit import is_batch, records_in
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import EventEnvelope, NewEvent
from upgestao_kernel.eventstore import ConcurrencyError, read_all
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore, MemoryTransaction
from upgestao_kernel.schema import kernel_metadata, outbox
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import ERASED, MasterKeyring, Vault, VaultError

CTX = RequestContext(request_id="req-7", actor_id="staff-1", actor_role="attendant", source_ip="10.0.0.9",
                     correlation_id="req-7")


class MemoryAccounts:
    """The sample's accounts read model, in memory (what AccountsProjection does in SQL)."""

    def apply(self, tx: MemoryTransaction, event: EventEnvelope) -> None:
        account_id = event.stream_id.removeprefix("account-")
        if event.type == "ledger.account_opened.v1":
            tx.put("accounts", account_id, {"id": account_id, "email": event.data["email"],
                                            "email_index": event.data["email_index"], "balance": 0,
                                            "version": event.version})
        elif event.type == "ledger.money_deposited.v1":
            row = tx.get("accounts", account_id)
            tx.update("accounts", account_id, balance=row["balance"] + event.data["amount"], version=event.version)


class Real:
    """The real unit of work on a SQLite file, and what it stored."""

    def __init__(self, tmp_path) -> None:
        self.engine = create_engine(f"sqlite:///{tmp_path / 'real.sqlite3'}")
        kernel_metadata.create_all(self.engine)
        sample_metadata.create_all(self.engine)
        self.vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)

    def uow(self, ctx: RequestContext = CTX) -> UnitOfWork:
        return UnitOfWork(self.engine, "ledger", ctx, projections=[AccountsProjection()], vault=self.vault)

    def observed(self) -> dict:
        with self.engine.connect() as conn:
            messages = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
            stored = list(read_all(conn))
            rows = conn.execute(sa.select(accounts.c.id, accounts.c.balance, accounts.c.version)
                                .order_by(accounts.c.id)).all()
        return _observation(stored, [(m.exchange, m.routing_key, m.body, m.headers) for m in messages],
                            [tuple(r) for r in rows])


class Fake:
    def __init__(self, tmp_path) -> None:
        self.store = MemoryStore(service="ledger")
        self.vault = FakeVault(blind_index_key=b"\x22" * 32)  # the real one's: the same blind indexes

    def uow(self, ctx: RequestContext = CTX) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, ctx, projections=[MemoryAccounts()], vault=self.vault)

    def observed(self) -> dict:
        rows = sorted((r["id"], r["balance"], r["version"]) for r in self.store.rows("accounts"))
        return _observation(self.store.events, [(m["exchange"], m["routing_key"], m["body"], m["headers"])
                                                for m in self.store.outbox], rows)


_VOLATILE = {"event_id", "audit_id", "occurred_at", "nameko.causation_id"}


def _stable(value):
    """``value`` without what differs on every run (ids, clocks) and without ciphertexts."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str) and value.startswith(("v1:", "fake1:")):
        return "<sealed>"
    return value


def _observation(events: list[EventEnvelope], messages: list[tuple], rows: list[tuple]) -> dict:
    return {
        "events": [(e.stream_id, e.version, e.type, e.actor, e.correlation_id, e.causation_id, _stable(dict(e.data)))
                   for e in events],
        "outbox": [(exchange, key, _stable(body), _stable(headers)) for exchange, key, body, headers in messages],
        "read_model": rows,
    }


def open_account(uow, account_id: str, email: str) -> Account:
    sealed = uow.personal.seal(subject_id=account_id, resource_type="account", resource_id=account_id,
                               values={"email": email}, purpose="account_opening")
    account = Account.open(account_id, sealed["email"], uow.personal.blind_index("email", email))
    uow.save(account)
    return account


def email_of(uow, account_id: str, sealed: str):
    return uow.personal.open(subject_id=account_id, resource_type="account", resource_id=account_id,
                             sealed={"email": sealed}, purpose="support")["email"]


BOTH = pytest.mark.parametrize("make", [Real, Fake], ids=["real", "fake"])


def _scenario_commit_and_rollback(side) -> dict:
    with side.uow() as uow:
        account = open_account(uow, "acc-1", "Maria@Example.com")
        account.deposit(5)
        uow.save(account)
        uow.audit_access(action="list", resource_type="account", resource_id=None, subject_id=None, fields=(),
                         purpose="statement")
    with pytest.raises(RuntimeError), side.uow() as uow:
        open_account(uow, "acc-2", "joao@example.com")
        raise RuntimeError("boom")  # nothing of acc-2 remains: event, read model, audit, message
    with side.uow() as uow:
        loaded = uow.load(Account, "acc-1")
        assert (loaded.balance, loaded.version, loaded.opened) == (5, 2, True)
        assert uow.load(Account, "acc-2") is None
        assert uow.stream_version("account-acc-1") == 2 and uow.stream_version("account-acc-2") == 0
    return side.observed()


def _scenario_concurrency(side) -> dict:
    with side.uow() as uow:
        open_account(uow, "acc-1", "a@example.com")
    with side.uow() as uow:
        stale = uow.load(Account, "acc-1")
    with side.uow() as uow:
        fresh = uow.load(Account, "acc-1")
        fresh.deposit(1)
        uow.save(fresh)
    stale.deposit(100)
    with pytest.raises(ConcurrencyError) as caught, side.uow() as uow:
        uow.save(stale)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    with pytest.raises(ConcurrencyError), side.uow() as uow:  # a new stream is version 0
        uow.record("account-acc-1", 0, [NewEvent("ledger.money_deposited.v1", {"amount": 3})])
    return side.observed()


def _scenario_denial_survives_rollback(side) -> dict:
    with pytest.raises(PermissionError), side.uow() as uow:
        open_account(uow, "acc-9", "x@example.com")
        uow.deny(action="read", resource_type="account", resource_id="acc-9", subject_id="acc-9",
                 fields=["email"], purpose="support")
        raise PermissionError("no")
    with side.uow() as uow:  # and on success it is written with the unit's work
        uow.deny(action="update", resource_type="account", resource_id="acc-8", subject_id="acc-8", fields=(),
                 purpose="authorization")
    return side.observed()


def _scenario_personal_data(side) -> dict:
    with side.uow() as uow:
        open_account(uow, "acc-a", "a@example.com")
        open_account(uow, "acc-b", "b@example.com")
        sealed = {e.stream_id: e.data["email"] for e in uow.recorded}
        assert uow.personal.blind_index("email", " A@EXAMPLE.com") == uow.personal.blind_index("email", "a@example.com")
    with side.uow() as uow:
        assert email_of(uow, "acc-a", sealed["account-acc-a"]) == "a@example.com"
        with pytest.raises(VaultError):  # a ciphertext opens only as the subject's own field
            email_of(uow, "acc-b", sealed["account-acc-a"])
    with side.uow() as uow:
        assert uow.personal.shred(subject_id="acc-a", resource_type="account", purpose="erasure_request") is True
        assert uow.personal.shred(subject_id="acc-a", resource_type="account", purpose="erasure_request") is False
    with side.uow() as uow:
        assert email_of(uow, "acc-a", sealed["account-acc-a"]) is ERASED
        assert email_of(uow, "acc-b", sealed["account-acc-b"]) == "b@example.com"
        with pytest.raises(VaultError):
            uow.personal.seal(subject_id="acc-a", resource_type="account", resource_id="acc-a",
                              values={"email": "again@example.com"}, purpose="account_opening")
    return side.observed()


def _scenario_claims(side) -> dict:
    with side.uow() as uow:
        assert uow.claim("tally.on_opened", "evt-1") is True
        assert uow.claim("tally.on_opened", "evt-1") is False
        assert uow.claim("other.handler", "evt-1") is True
    with pytest.raises(RuntimeError), side.uow() as uow:
        assert uow.claim("tally.on_opened", "evt-2") is True
        raise RuntimeError("handler failed: the claim goes with it")
    with side.uow() as uow:
        assert uow.claim("tally.on_opened", "evt-1") is False
        assert uow.claim("tally.on_opened", "evt-2") is True
    return side.observed()


def _scenario_open_many(side) -> dict:
    """A page of one subject's values: the records of one open each, in one statement, one key lookup."""
    with side.uow() as uow:
        sealed = [uow.personal.seal(subject_id="acc-p", resource_type="note", resource_id=f"note-{n}",
                                    values={"text": f"nota {n}"}, purpose="notes")["text"] for n in range(3)]
    items = [(f"note-{n}", {"text": sealed[n]}) for n in range(3)] + [("note-empty", {"text": None})]
    with side.uow() as uow:
        opened = uow.personal.open_many(subject_id="acc-p", resource_type="note", items=items, purpose="page")
        assert [o["text"] for o in opened] == ["nota 0", "nota 1", "nota 2", None]
        assert uow.personal.open_many(subject_id="acc-p", resource_type="note", items=[], purpose="page") == []
    with side.uow() as uow:
        uow.personal.shred(subject_id="acc-p", resource_type="note", purpose="erasure_request")
    with side.uow() as uow:
        assert [o["text"] for o in uow.personal.open_many(subject_id="acc-p", resource_type="note", items=items,
                                                          purpose="page")] == [ERASED, ERASED, ERASED, None]
    observed = side.observed()
    pages = [body for exchange, key, body, headers in observed["outbox"] if is_batch(body)]
    assert len(pages) == 2  # each page's records in one message
    reads = [r for body in pages for r in records_in(body)]
    assert [(r["action"], r["resource_id"], r["subject_id"], r["fields"], r["purpose"]) for r in reads] == 2 * [
        ("read", resource_id, "acc-p", ["text"], "page")
        for resource_id in ("note-0", "note-1", "note-2", "note-empty")]
    return observed


SCENARIOS = [_scenario_commit_and_rollback, _scenario_concurrency, _scenario_denial_survives_rollback,
             _scenario_personal_data, _scenario_claims, _scenario_open_many]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("_scenario_"))
def test_the_fake_observes_like_the_real_unit_of_work(scenario, tmp_path):
    real, fake = scenario(Real(tmp_path)), scenario(Fake(tmp_path))
    assert fake == real
    assert real["events"] or real["outbox"] or scenario is _scenario_claims  # the scenario observed something


def test_the_fake_store_reads_a_batch_of_audit_records_as_its_records(tmp_path):
    fake = Fake(tmp_path)
    _scenario_open_many(fake)
    pages = fake.store.audit_records(purpose="page")
    assert [(r["resource_id"], r["fields"]) for r in pages] == 2 * [
        (resource_id, ["text"]) for resource_id in ("note-0", "note-1", "note-2", "note-empty")]
    assert len({r["audit_id"] for r in pages}) == 8
    assert [r["action"] for r in fake.store.audit_records(resource_id="note-1")] == ["create", "read", "read"]


@BOTH
def test_an_audit_record_names_fields_and_purpose_never_values(make, tmp_path):
    side = make(tmp_path)
    with side.uow() as uow:
        open_account(uow, "acc-1", "maria@example.com")
    (audit,) = [m[2] for m in side.observed()["outbox"] if m[0] == "audit"]
    assert audit["action"] == "create" and audit["fields"] == ["email"] and audit["purpose"] == "account_opening"
    assert audit["actor_id"] == "staff-1" and audit["request_id"] == "req-7" and audit["source_ip"] == "10.0.0.0/24"
    assert "maria" not in repr(side.observed())


def test_the_fake_vault_keeps_values_out_of_its_ciphertexts_and_forgets_them_on_shred():
    store, vault = MemoryStore(), FakeVault()
    tx = store.begin()
    sealed = vault.encrypt(tx, "s-1", "email", "maria@example.com")
    assert sealed.startswith("fake1:") and "maria" not in sealed
    store._commit(tx)
    tx = store.begin()
    assert vault.decrypt(tx, "s-1", "email", sealed) == "maria@example.com"
    vault.shred(tx, "s-1")
    store._commit(tx)
    assert "maria@example.com" not in repr(store.tables)
    assert vault.decrypt(store.begin(), "s-1", "email", sealed) is ERASED
    with pytest.raises(VaultError):
        vault.decrypt(store.begin(), "s-2", "email", sealed)  # no key for s-2


def test_a_rolled_back_shred_leaves_the_values_readable():
    store, vault = MemoryStore(service="ledger"), FakeVault()
    with FakeUnitOfWork(store, CTX, vault=vault) as uow:
        sealed = uow.personal.seal(subject_id="s-1", resource_type="account", resource_id="s-1",
                                   values={"email": "m@example.com"}, purpose="account_opening")["email"]
    with pytest.raises(RuntimeError), FakeUnitOfWork(store, CTX, vault=vault) as uow:
        uow.personal.shred(subject_id="s-1", resource_type="account", purpose="erasure_request")
        raise RuntimeError("boom")
    with FakeUnitOfWork(store, CTX, vault=vault) as uow:
        assert email_of(uow, "s-1", sealed) == "m@example.com"
    assert [a["action"] for a in store.audit_records()] == ["create", "read"]
    assert [(op, subject) for op, subject, _ in store.vault_log] == [("seal", "s-1"), ("open", "s-1")]


def test_the_fake_runs_no_sql():
    with FakeUnitOfWork(MemoryStore(), CTX) as uow, pytest.raises(TypeError, match="no SQL"):
        uow.conn.execute(sa.select(accounts))


class _Named:
    def __init__(self, uow) -> None:
        self.uow = uow
        self.ledger = ("ledger of", uow)


@BOTH
def test_repositories_are_built_once_per_unit_and_reached_by_name(make, tmp_path):
    side = make(tmp_path)
    uow = side.uow().with_repositories(_Named)
    assert uow.ledger == ("ledger of", uow) and uow.repositories is uow.repositories
    with pytest.raises(AttributeError):
        uow.no_such_repository  # noqa: B018
    with pytest.raises(RuntimeError, match="no repositories"):
        side.uow().repositories  # noqa: B018

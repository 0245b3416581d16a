"""Unit of work: events, read models, outbox and audit commit or vanish together.

Covers D2 (projections and rebuild), D3 (audit by construction), R3.1/R5.3
(ciphertext only; crypto-shredding one subject).
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from kernel_sample import Account, AccountsProjection, accounts, open_account, read_email
from upgestao_kernel.context import RequestContext
from upgestao_kernel.projections import rebuild, snapshot
from upgestao_kernel.schema import events, outbox
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import ERASED

CTX = RequestContext(request_id="req-42", actor_id="staff-1", actor_role="attendant", source_ip="10.0.0.9",
                     correlation_id="req-42")
PROJECTIONS = (AccountsProjection(),)


def uow_for(engine, vault, ctx=CTX):
    return UnitOfWork(engine, "ledger", ctx, projections=PROJECTIONS, vault=vault)


def _outbox(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()


def test_event_projection_outbox_and_audit_in_one_transaction(engine, vault):
    with uow_for(engine, vault) as uow:
        open_account(uow, "acc-1", "maria@example.com")
    rows = _outbox(engine)
    assert [(r.exchange, r.routing_key) for r in rows] == [
        ("audit", "audit.ledger.create"),
        ("ledger.events", "ledger.account_opened.v1"),
    ]
    audit, event = rows[0].body, rows[1].body
    assert audit["action"] == "create" and audit["subject_id"] == "acc-1" and audit["fields"] == ["email"]
    assert audit["request_id"] == "req-42" and audit["source_ip"] == "10.0.0.0/24" and audit["actor_id"] == "staff-1"
    assert audit["purpose"] == "account_opening" and audit["outcome"] == "success"
    # the published view carries ids and field names only
    assert event["data"] == {"account_id": "acc-1", "fields": ["email"]}
    assert rows[1].headers["nameko.request_id"] == "req-42"
    with engine.connect() as conn:
        assert conn.execute(sa.select(accounts.c.balance, accounts.c.version)).one() == (0, 1)


def test_failure_rolls_back_events_read_models_outbox_and_audit(engine, vault):
    with pytest.raises(RuntimeError):
        with uow_for(engine, vault) as uow:
            open_account(uow, "acc-1", "maria@example.com")
            raise RuntimeError("boom")
    assert _outbox(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 0


def test_reading_personal_data_writes_the_audit_record_first(engine, vault):
    with uow_for(engine, vault) as uow:
        open_account(uow, "acc-1", "maria@example.com")
    with uow_for(engine, vault) as uow:
        assert read_email(uow, "acc-1") == "maria@example.com"
    read = [r.body for r in _outbox(engine) if r.routing_key == "audit.ledger.read"]
    assert len(read) == 1
    assert read[0]["fields"] == ["email"] and read[0]["purpose"] == "support"


def test_open_each_audits_every_value_of_every_subject_in_one_statement(engine, vault):
    """Values of several subjects (a search's hits): one audit record each, in one outbox row written first,
    one statement for every key; the values in the order asked, a shredded subject's erased."""
    with uow_for(engine, vault) as uow:
        sealed = {(s, n): uow.personal.seal(subject_id=s, resource_type="note", resource_id=f"{s}-{n}",
                                            values={"body": f"{s} note {n}"}, purpose="test")
                  for s in ("a", "b", "c") for n in range(2)}
        uow.personal.shred(subject_id="c", resource_type="note", purpose="test")
    order = [("b", 1), ("a", 0), ("c", 0), ("b", 0), ("a", 1)]
    statements = []
    with uow_for(engine, vault) as uow:
        uow.personal  # noqa: B018 - the unit's connection is open
        listener = lambda *a: statements.append(a[2])  # noqa: E731
        sa.event.listen(uow.conn, "before_cursor_execute", listener)
        opened = uow.personal.open_each(resource_type="note", purpose="search",
                                        items=[(s, f"{s}-{n}", sealed[s, n]) for s, n in order])
        sa.event.remove(uow.conn, "before_cursor_execute", listener)
        assert uow.personal.open_each(resource_type="note", purpose="search", items=[]) == []
    assert opened == [{"body": "b note 1"}, {"body": "a note 0"}, {"body": ERASED}, {"body": "b note 0"},
                      {"body": "a note 1"}]
    assert len(statements) == 2 and "outbox" in statements[0].lower()  # the audit first, then the keys
    (row,) = [r for r in _outbox(engine) if r.routing_key == "audit.ledger.read"]
    records = row.body["records"]
    assert [(m["subject_id"], m["resource_id"], m["fields"], m["purpose"]) for m in records] == [
        (s, f"{s}-{n}", ["body"], "search") for s, n in order]
    assert len({m["audit_id"] for m in records}) == 5 and row.message_id == records[0]["audit_id"]


def test_a_share_names_its_recipient_in_every_record(engine, vault):
    """An opening for a third party (action ``share``, R4.2): each record, alone or in a batch, names it."""
    with uow_for(engine, vault) as uow:
        sealed = {s: uow.personal.seal(subject_id=s, resource_type="note", resource_id=s, values={"body": s},
                                       purpose="test") for s in ("a", "b")}
    with uow_for(engine, vault) as uow:
        assert uow.personal.open(subject_id="a", resource_type="note", resource_id="a", sealed=sealed["a"],
                                 purpose="delivery", action="share", recipient="integration:crm") == {"body": "a"}
        opened = uow.personal.open_each(resource_type="note", purpose="delivery", action="share",
                                        recipient="integration:crm", items=[(s, s, sealed[s]) for s in ("a", "b")])
        assert opened == [{"body": "a"}, {"body": "b"}]
        uow.personal.open(subject_id="a", resource_type="note", resource_id="a", sealed=sealed["a"], purpose="x")
    shares = [r.body for r in _outbox(engine) if r.routing_key == "audit.ledger.share"]
    records = [m for body in shares for m in body.get("records", [body])]
    assert [(m["subject_id"], m["recipient"]) for m in records] == [("a", "integration:crm"), ("a", "integration:crm"),
                                                                    ("b", "integration:crm")]
    reads = [r.body for r in _outbox(engine) if r.routing_key == "audit.ledger.read"]
    assert [m["recipient"] for m in reads] == [None]


def test_denied_attempt_is_recorded_even_though_the_work_rolls_back(engine, vault):
    with pytest.raises(PermissionError):
        with uow_for(engine, vault) as uow:
            uow.deny(action="read", resource_type="account", resource_id="acc-9", subject_id="acc-9",
                     fields=["email"], purpose="support")
            raise PermissionError("attendant may not read this account")
    (row,) = _outbox(engine)
    assert row.body["outcome"] == "denied" and row.body["resource_id"] == "acc-9"


def test_no_personal_value_in_clear_in_events_or_outbox(engine, vault):
    email = f"joana.{uuid.uuid4().hex[:6]}@example.com"
    with uow_for(engine, vault) as uow:
        open_account(uow, "acc-1", email)
        read_email(uow, "acc-1")
    with engine.connect() as conn:
        stored = json.dumps([dict(r._mapping) for r in conn.execute(sa.select(events))], default=str)
    published = json.dumps([dict(r._mapping) for r in _outbox(engine)], default=str)
    assert email not in stored and email not in published
    assert email.split("@")[0] not in stored + published


def test_rebuild_reproduces_read_models_exactly(engine, vault):
    for n in range(5):
        with uow_for(engine, vault) as uow:
            account = open_account(uow, f"acc-{n}", f"p{n}@example.com")
            for amount in range(1, n + 2):
                account.deposit(amount)
            uow.save(account)
    with engine.connect() as conn:
        before = snapshot(conn, PROJECTIONS)
        conn.execute(accounts.update().values(balance=-1))  # damage it
        conn.commit()
    assert rebuild(engine, PROJECTIONS) == 5 + sum(n + 1 for n in range(5))  # opens + deposits
    with engine.connect() as conn:
        assert snapshot(conn, PROJECTIONS) == before
    assert before["accounts"][4][3] == 15  # acc-4: 1+2+3+4+5


def test_aggregate_reloads_from_its_stream(engine, vault):
    with uow_for(engine, vault) as uow:
        account = open_account(uow, "acc-1", "a@example.com")
        account.deposit(10)
        uow.save(account)
    with uow_for(engine, vault) as uow:
        loaded = uow.load(Account, "acc-1")
    assert loaded.balance == 10 and loaded.version == 2 and loaded.opened


def test_shred_makes_one_subjects_data_unreadable_others_stay(engine, vault):
    with uow_for(engine, vault) as uow:
        open_account(uow, "acc-a", "a@example.com")
        open_account(uow, "acc-b", "b@example.com")
    with uow_for(engine, vault) as uow:
        assert uow.personal.shred(subject_id="acc-a", resource_type="account", purpose="erasure_request")
    with uow_for(engine, vault) as uow:
        assert read_email(uow, "acc-a") is ERASED
        assert read_email(uow, "acc-b") == "b@example.com"
        # the stored event of the shredded subject is still there, and is noise
        (event,) = [e for e in uow.conn.execute(sa.select(events)) if e.stream_id == "account-acc-a"]
        assert vault.decrypt(uow.conn, "acc-a", "email", event.data["email"]) is ERASED
    erase = [r.body for r in _outbox(engine) if r.routing_key == "audit.ledger.erase"]
    assert erase and erase[0]["subject_id"] == "acc-a"


def test_blind_index_finds_by_email_case_insensitively(engine, vault):
    with uow_for(engine, vault) as uow:
        open_account(uow, "acc-1", "Maria.Silva@Example.com")
    with uow_for(engine, vault) as uow:
        index = uow.personal.blind_index("email", "maria.silva@example.COM")
        found = uow.conn.execute(sa.select(accounts.c.id).where(accounts.c.email_index == index)).scalars().all()
    assert found == ["acc-1"]


def test_claim_is_once_per_consumer(engine, vault):
    with uow_for(engine, vault) as uow:
        assert uow.claim("tally.on_opened", "evt-1") is True
        assert uow.claim("tally.on_opened", "evt-1") is False
        assert uow.claim("other.handler", "evt-1") is True


def test_claim_many_claims_in_one_statement_only_the_ids_not_processed_before(engine, vault):
    with uow_for(engine, vault) as uow:
        assert uow.claim("tally.on_opened", "evt-1") is True
        assert uow.claim_many("tally.on_opened", ["evt-3", "evt-1", "evt-2", "evt-3"]) == {"evt-2", "evt-3"}
        assert uow.claim_many("tally.on_opened", ["evt-2"]) == set()
        assert uow.claim_many("tally.on_opened", []) == set()
        assert uow.claim_many("other.handler", ["evt-1"]) == {"evt-1"}
